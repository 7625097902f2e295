//! One trait per plugin role.

use crate::{Alarm, Bar, Ctx, Fill, Init, Intent, PluginInfo, Position, Quote, StopDecision, Timestamp};

/// What every plugin is: self-description, start-up and state hand-over.
pub trait Plugin: Sized + 'static {
    /// Name, version, parameters and requested limits. Called at load; keep it pure.
    fn describe() -> PluginInfo;

    /// Builds the plugin from its resolved parameters. An `Err` refuses the plugin
    /// with that message.
    fn init(ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String>;

    /// State a successor needs on hot swap or restart. Default: none (cold start).
    fn export_state(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Takes over a predecessor's state, after [`Plugin::init`].
    fn import_state(&mut self, _ctx: &mut Ctx<'_>, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Role: market events in, intents out.
///
/// Handlers push intents into `out` (a buffer the SDK reuses) rather than
/// returning a fresh `Vec` per event.
pub trait Strategy: Plugin {
    /// A bar closed.
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar, out: &mut Vec<Intent>);

    /// Many bars closed at once (one per instrument). Default: one `on_bar` each.
    fn on_bars(&mut self, ctx: &mut Ctx<'_>, bars: &[Bar], out: &mut Vec<Intent>) {
        for bar in bars {
            self.on_bar(ctx, bar, out);
        }
    }

    /// Top of book changed. Default: ignored.
    fn on_quote(&mut self, _ctx: &mut Ctx<'_>, _quote: &Quote, _out: &mut Vec<Intent>) {}

    /// One of this plugin's orders was (partly) filled. Default: ignored.
    fn on_fill(&mut self, _ctx: &mut Ctx<'_>, _fill: &Fill, _out: &mut Vec<Intent>) {}

    /// The timer declared by `PluginInfo::timer_secs` fired. Default: ignored.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, _now: Timestamp, _out: &mut Vec<Intent>) {}
}

/// Role: manages exits of open positions.
pub trait StopPolicy: Plugin {
    /// A bar closed for an instrument where `position` is open.
    fn on_position_bar(
        &mut self,
        ctx: &mut Ctx<'_>,
        bar: &Bar,
        position: &Position,
        out: &mut Vec<StopDecision>,
    );
}

/// Role: watches the market and raises alarms.
pub trait AnomalyDetector: Plugin {
    /// Bars closed (one per instrument). Return an alarm to raise one.
    fn observe_bars(&mut self, ctx: &mut Ctx<'_>, bars: &[Bar]) -> Option<Alarm>;

    /// Top of book changed. Default: no alarm.
    fn observe_quote(&mut self, _ctx: &mut Ctx<'_>, _quote: &Quote) -> Option<Alarm> {
        None
    }
}
