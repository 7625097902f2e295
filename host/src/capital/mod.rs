//! Capital.com: the REST client, the price stream, the host feed and
//! collector built on them, and a faithful mock server for tests and demos.
//!
//! - [`wire`]: the JSON shapes, shared by the client and the mock
//! - [`error`]: every documented `errorCode` as a typed [`ApiCode`]
//! - [`rest`]: session, tokens, keep-alive, rate limits, 429 backoff
//! - [`stream`]: subscriptions in batches of 40, ping, reconnect, backfill, de-duplication
//! - [`feed`]: [`CapitalFeed`] (a host [`crate::market::Feed`]) and the [`Collector`] that stores what streams
//! - [`mock`]: the local Capital.com

pub mod error;
pub mod feed;
pub mod mock;
pub mod rest;
pub mod stream;
pub mod wire;

pub use error::{ApiCode, CapitalError};
pub use feed::{CapitalFeed, CapitalFeedConfig, Collector, CollectorConfig, CollectorStats};
pub use rest::{CallKind, RestClient, RestConfig};
pub use stream::{PriceStream, StreamConfig, StreamEvent};
