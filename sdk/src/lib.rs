//! The Stratbox plugin SDK.
//!
//! A plugin is a Rust type that implements [`Plugin`] plus one trait per role it
//! plays ([`Strategy`], [`StopPolicy`], [`AnomalyDetector`]), exported with
//! [`export_plugin!`]. The same code runs natively under [`testing::Harness`]
//! (plain `cargo test`, no wasm) and as a sandboxed component in the host.
//!
//! ```
//! use stratbox_sdk::prelude::*;
//!
//! struct BuyTheDip { sma: Sma, size: f64 }
//!
//! impl Plugin for BuyTheDip {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("buy-the-dip", "0.1.0")
//!             .param_int("period", "SMA length in bars", 20, 2, 500)
//!             .param_number("size", "order quantity", 10.0, 0.0, 1e6)
//!     }
//!     fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
//!         Ok(Self { sma: Sma::new(init.params.int("period")? as usize), size: init.params.number("size")? })
//!     }
//! }
//!
//! impl Strategy for BuyTheDip {
//!     fn on_bar(&mut self, _ctx: &mut Ctx<'_>, bar: &Bar, out: &mut Vec<Intent>) {
//!         if let Some(avg) = self.sma.update(bar.close) {
//!             if bar.close < 0.95 * avg {
//!                 out.push(Intent::market(bar.instrument, Side::Buy, self.size));
//!             }
//!         }
//!     }
//! }
//!
//! stratbox_sdk::export_plugin!(BuyTheDip, roles: [strategy]);
//! # fn main() {}
//! ```
#![deny(missing_docs)]

pub mod accounting;
mod batch;
mod context;
mod export;
pub mod indicators;
mod inference;
mod info;
mod roles;
pub mod state;
pub mod testing;

/// Bindings generated from `wit/` by wit-bindgen. Plugin authors never need
/// this module: the types they use are re-exported at the crate root.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_bindings",
        default_bindings_module: "stratbox_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::stratbox::plugin::inference::{Budget, InferenceError, ModelInfo, ShapeMismatch};
pub use bindings::stratbox::plugin::kv::KvError;
pub use bindings::stratbox::plugin::types::{
    Alarm, AlarmLevel, Bar, BarBatch, Descriptor, Fill, InitContext, Instrument, InstrumentId, Intent, LogLevel,
    OrderIntent, OrderStatus, OrderType, OrderView, Param, ParamSpec, ParamValue, Position, Quote,
    ResourceRequest, Roles, RunMode, Side, StopDecision, StopLevels, TargetPosition, TimeInForce,
    Timestamp,
};
pub use context::{Ctx, HostApi};
pub use inference::{Model, error_text};
pub use state::StateReader;
pub use info::{Init, Params, PluginInfo};
pub use roles::{AnomalyDetector, Plugin, StopPolicy, Strategy};

/// Version of the WIT contract this SDK builds plugins against.
pub const CONTRACT_VERSION: &str = "0.1.1";

/// Everything a plugin author usually needs, in one import.
pub mod prelude {
    pub use crate::indicators::{Ema, EwmaVariance, LogReturns, PerInstrument, RollingMedian, RollingStats, Rsi, Sma, WilderAtr, median};
    pub use crate::{
        Alarm, AlarmLevel, AnomalyDetector, Bar, Ctx, Fill, InferenceError, Init, Instrument, InstrumentId, Intent,
        LogLevel, Model, OrderType, Plugin, PluginInfo, Position, Quote, Side, StopDecision, StopLevels,
        StopPolicy, Strategy, TimeInForce, Timestamp,
    };
}

/// Runtime support for [`export_plugin!`]; not a public API.
#[doc(hidden)]
pub mod __rt {
    pub use crate::export::*;
}
