//! Built with plain wit-bindgen against the contract in `wit/` (0.1.9 here,
//! derived from the live one; the released 0.1.0 in `released-contract`, which
//! compiles this same file): on every bar it targets a position equal to the
//! bar's instrument id plus one, so a test can see that it loaded, ran and
//! was heard on this host.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use exports::stratbox::plugin::{anomaly_detector, lifecycle, stop_policy, strategy};
use stratbox::plugin::orders::submit;
use stratbox::plugin::types::*;

struct PatchRelease;

fn target(bar: &Bar) {
    submit(Intent::Target(TargetPosition { instrument: bar.instrument, quantity: f64::from(bar.instrument + 1) }));
}

impl lifecycle::Guest for PatchRelease {
    fn describe() -> Descriptor {
        Descriptor {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("FIXTURE_CONTRACT").into(),
            description: concat!("built against stratbox:plugin@", env!("FIXTURE_CONTRACT")).into(),
            roles: Roles::STRATEGY,
            params: Vec::new(),
            requested: ResourceRequest { memory_bytes: 0, fuel_per_callback: 0, max_intents_per_callback: 0 },
            timer_secs: 0,
        }
    }
    fn init(_context: InitContext) -> Result<(), String> {
        Ok(())
    }
    fn export_state() -> Vec<u8> {
        Vec::new()
    }
    fn import_state(_state: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

impl strategy::Guest for PatchRelease {
    fn on_bar(bar: Bar) {
        target(&bar);
    }
    fn on_bars(bars: BarBatch) {
        for (i, &instrument) in bars.instruments.iter().enumerate() {
            target(&Bar { instrument, start: bars.starts[i], period_secs: bars.period_secs[i], open: bars.open[i], high: bars.high[i], low: bars.low[i], close: bars.close[i], volume: bars.volume[i] });
        }
    }
    fn on_quote(_quote: Quote) {}
    fn on_fill(_fill: Fill) {}
    fn on_timer(_now: Timestamp) {}
}

impl stop_policy::Guest for PatchRelease {
    fn on_bar(_bar: Bar, _position: Position) -> Vec<StopDecision> {
        Vec::new()
    }
}

impl anomaly_detector::Guest for PatchRelease {
    fn observe_bars(_bars: BarBatch) -> Option<Alarm> {
        None
    }
    fn observe_quote(_quote: Quote) -> Option<Alarm> {
        None
    }
}

export!(PatchRelease);
