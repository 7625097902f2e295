//! Capital.com: the REST client, the price stream, the host feed and
//! collector built on them, and the encrypted store of the account's
//! credentials. (The local mock is its own crate, `stratbox-capital-mock`.)
//!
//! It is responsible for talking to Capital.com within its limits and for
//! keeping its secrets: tokens and passwords are zeroised, never logged and
//! never leave this crate except as HTTP headers. It must never decide to
//! trade: orders reach it only as requests from the trading crate's
//! Capital.com broker.
//!
//! - [`wire`]: the JSON shapes, shared by the client and the mock
//! - `error.rs`: every documented `errorCode` as a typed [`ApiCode`]
//! - `rest.rs`: session, tokens, keep-alive, rate limits, 429 backoff
//! - [`transport`]: HTTPS, or the mock's handlers in process (the simulation's seam)
//! - `stream.rs`: subscriptions in batches of 40, ping, reconnect, backfill, de-duplication
//! - `feed.rs`: [`CapitalFeed`] (a host [`stratbox_market::Feed`]) and the [`Collector`] that stores what streams
//! - `credentials.rs`: broker secrets encrypted at rest (AES-256-GCM, Argon2id)

mod credentials;
mod error;
mod feed;
mod rest;
mod stream;
pub mod transport;
pub mod wire;

pub use credentials::{CapitalCredentials, CredentialStore, CredentialsError};
pub use error::{ApiCode, CapitalError};
pub use feed::{CapitalFeed, CapitalFeedConfig, Collector, CollectorConfig, CollectorStats};
pub use rest::{CallKind, DEMO_URL, LIVE_URL, RestClient, RestConfig};
pub use stream::{MAX_EPICS_PER_SUBSCRIPTION, PriceStream, StreamConfig, StreamEvent};
