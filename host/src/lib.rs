//! The Stratbox host: everything dangerous and valuable lives here, and
//! plugins reach it only through the WIT world in `wit/`.
//!
//! - [`runtime`]: the wasm sandbox (engine, limits, load-time checks, instances, faults)
//! - [`supervisor`]: plugin lifecycle (start, dispatch by role, quarantine, restart, hot swap)
//! - [`market`]: market events, validation, aggregation, history, the built-in simulator
//! - [`store`]: market-data storage in sled (journal + delta-encoded blocks)
//! - [`broker`]: the ledger and the paper broker
//! - [`risk`]: the risk engine every order passes (limits, throttles, loss limits, circuit breaker)
//! - [`validation`]: contract checks on every intent
//! - [`runner`]: the event loop tying them together
//! - [`control`]: the local control API and its client
//! - [`authoring`]: `plugin new`, `plugin build`, `plugin inspect`
//! - [`config`]: the TOML configuration
//! - [`capital`]: the Capital.com REST and streaming client, its feed and collector, and its mock
//! - [`execution`]: orders as the host tracks them (state machine, client ids, slippage)
//! - [`credentials`]: broker secrets encrypted at rest (AES-256-GCM, Argon2id)

pub mod authoring;
pub mod broker;
pub mod capital;
pub mod config;
pub mod control;
pub mod credentials;
pub mod execution;
pub mod market;
pub mod risk;
pub mod runner;
pub mod runtime;
pub mod store;
pub mod supervisor;
mod util;
pub mod validation;
pub mod world;
