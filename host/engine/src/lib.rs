//! The engine: the host's event loop and what configures and operates it.
//!
//! [`Host`] sequences the parts one event at a time: the feed's event into
//! the shared world (clock, history) and the order path (fills), fills and
//! bars to the plugins by role through the sandbox's supervisor, their
//! intents and stop decisions back into the order path, then the risk update
//! and the journal commit. Control commands (load, swap, unload, flatten,
//! resume, de-leverage, journal pages) are served between two events.
//!
//! It owns the wiring, not the rules: what a plugin can do is the sandbox's,
//! what becomes an order is the order path's (`stratbox-trading`). Nothing in
//! the crates below depends on this one.
//!
//! - [`config`]: the TOML configuration, every key with a default
//! - [`Host`] (`runner.rs`): the event loop
//! - [`ControlServer`], [`ControlClient`] (`control.rs`): the local HTTP/JSON control API

pub mod board;
pub mod config;
mod control;
mod models;
mod runner;
mod view;

pub use control::{accept_within, control_routes, ServerThread, BODY_TIMEOUT, CONNECTION_TIMEOUT, HEADER_TIMEOUT, MAX_CONNECTIONS, CONTROL_FILE, ControlClient, ControlEndpoint, ControlError, ControlServer, AdoptRequest, DeleverageRequest, JournalPage, LoadRequest};
pub use runner::{Command, Host, HostError, LatencySummary, RunOptions, RunStats, RunSummary, StatusView, format_time};
pub use stratbox_trading::{ADOPTED, AdoptReport, DeleveragePlan, FlattenReport, RECONCILIATION_FAILED};
pub use view::{PluginView, PluginWorld};
pub use models::{HostModels, load as load_models};
pub use stratbox_ml::ModelDecl;
