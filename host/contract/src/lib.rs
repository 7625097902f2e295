//! The contract between the host and its plugins, `wit/stratbox.wit` (world
//! `plugin`), as Rust: wasmtime's bindgen generates the types (bars, quotes,
//! intents, fills, positions, descriptors), the host traits behind every
//! import and the typed entry points of every export.
//!
//! This is the vocabulary every host crate speaks, so a bar or an intent is
//! the same value from the feed to the broker, with no conversion on the way.
//! It holds types and a few helpers, and nothing that decides: no state, no
//! policy, no network. The
//! import implementations (what a plugin can do) live in `stratbox-sandbox`
//! alone.

// The generated items document themselves from the WIT; our own items are documented.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../../wit",
    // These may trap: a plugin flooding its log budget or its intent limit is stopped there.
    imports: { "stratbox:plugin/log.log": trappable, "stratbox:plugin/orders.submit": trappable },
    additional_derives: [PartialEq],
});

pub use exports::stratbox::plugin::{anomaly_detector, lifecycle, stop_policy, strategy};
pub use stratbox::plugin::types::*;

impl BarBatch {
    /// The columns of bars that close together.
    pub fn from_bars(bars: &[Bar]) -> Self {
        Self {
            instruments: bars.iter().map(|b| b.instrument).collect(),
            starts: bars.iter().map(|b| b.start).collect(),
            period_secs: bars.iter().map(|b| b.period_secs).collect(),
            open: bars.iter().map(|b| b.open).collect(),
            high: bars.iter().map(|b| b.high).collect(),
            low: bars.iter().map(|b| b.low).collect(),
            close: bars.iter().map(|b| b.close).collect(),
            volume: bars.iter().map(|b| b.volume).collect(),
        }
    }
}

pub mod util;

/// The contract's WIT source, for tools that build guests against it
/// (componentize-py reads a WIT folder, not Rust bindings).
pub const WIT: &str = include_str!("../../../wit/stratbox.wit");
