//! Test strategy: per instrument, after `wait` bars closed flat, target a
//! position of `quantity` (long first, then alternately short and long with
//! `alternate`). It never exits: every exit in a run is a stop policy's, which
//! is what the stop policy's reference test needs.

use stratbox_sdk::prelude::*;

pub struct PeriodicEntry {
    wait: u32,
    quantity: f64,
    alternate: bool,
    /// Per instrument: flat bars since the last entry order, and the next direction.
    legs: Vec<(u32, f64)>,
}

impl Plugin for PeriodicEntry {
    fn describe() -> PluginInfo {
        PluginInfo::new("periodic-entry", env!("CARGO_PKG_VERSION"))
            .description("Enters after `wait` flat bars, never exits (a test fixture for stop policies)")
            .param_int("wait", "flat bars before each entry", 5, 1, 10_000)
            .param_number("quantity", "position size", 10.0, 0.0, 1e9)
            .param_flag("alternate", "alternate long and short entries", true)
            .max_intents_per_callback(4_096)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        Ok(Self {
            wait: init.params.int("wait")? as u32,
            quantity: init.params.number("quantity")?,
            alternate: init.params.flag("alternate")?,
            legs: Vec::new(),
        })
    }
}

impl Strategy for PeriodicEntry {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar, out: &mut Vec<Intent>) {
        let i = bar.instrument as usize;
        if self.legs.len() <= i {
            self.legs.resize(i + 1, (0, 1.0));
        }
        let in_market = ctx.position(bar.instrument).is_some();
        let leg = &mut self.legs[i];
        if in_market {
            leg.0 = 0;
            return;
        }
        leg.0 += 1;
        if leg.0 >= self.wait {
            out.push(Intent::target(bar.instrument, leg.1 * self.quantity));
            leg.0 = 0;
            if self.alternate {
                leg.1 = -leg.1;
            }
        }
    }
}

stratbox_sdk::export_plugin!(PeriodicEntry, roles: [strategy]);
