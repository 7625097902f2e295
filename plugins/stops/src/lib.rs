//! Stop policy: an ATR trailing stop. For a long position the stop trails the
//! highest close since the position was seen, `multiple` ATRs below it, and
//! only ever rises; for a short, mirrored. A take-profit sits `take_profit`
//! ATRs beyond the average price (0 disables it). A close through the stop
//! exits at once.

use stratbox_sdk::prelude::*;

struct Leg {
    atr: WilderAtr,
    /// Best close in the position's favour since it was first seen.
    extreme: f64,
    stop: Option<f64>,
    /// Sign of the position the trail belongs to; a flip restarts the trail.
    direction: f64,
}

pub struct AtrStop {
    period: usize,
    multiple: f64,
    take_profit: f64,
    legs: Vec<Option<Leg>>,
}

impl Plugin for AtrStop {
    fn describe() -> PluginInfo {
        PluginInfo::new("atr-stop", env!("CARGO_PKG_VERSION"))
            .description("ATR trailing stop with optional take-profit")
            .param_int("period", "ATR length, in bars", 14, 1, 1_000)
            .param_number("multiple", "stop distance, in ATRs", 3.0, 0.1, 100.0)
            .param_number("take_profit", "take-profit distance in ATRs; 0 for none", 0.0, 0.0, 100.0)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        Ok(Self {
            period: init.params.int("period")? as usize,
            multiple: init.params.number("multiple")?,
            take_profit: init.params.number("take_profit")?,
            legs: Vec::new(),
        })
    }
}

impl StopPolicy for AtrStop {
    fn on_position_bar(&mut self, _ctx: &mut Ctx<'_>, bar: &Bar, position: &Position, out: &mut Vec<StopDecision>) {
        let i = bar.instrument as usize;
        if self.legs.len() <= i {
            self.legs.resize_with(i + 1, || None);
        }
        let direction = position.quantity.signum();
        let period = self.period;
        let leg = self.legs[i].get_or_insert_with(|| Leg { atr: WilderAtr::new(period), extreme: bar.close, stop: None, direction });
        if leg.direction != direction {
            (leg.extreme, leg.stop, leg.direction) = (bar.close, None, direction);
        }
        let Some(atr) = leg.atr.update(bar.high, bar.low, bar.close) else { return };
        if let Some(stop) = leg.stop
            && (bar.close - stop) * direction <= 0.0
        {
            out.push(StopDecision::Exit(bar.instrument));
            leg.stop = None;
            return;
        }
        leg.extreme = if direction > 0.0 { leg.extreme.max(bar.close) } else { leg.extreme.min(bar.close) };
        let candidate = leg.extreme - direction * self.multiple * atr;
        let stop = match leg.stop {
            Some(s) if (candidate - s) * direction <= 0.0 => return, // never loosen
            _ => candidate,
        };
        leg.stop = Some(stop);
        let take_profit = (self.take_profit > 0.0).then_some(position.average_price + direction * self.take_profit * atr);
        out.push(StopDecision::SetLevels(StopLevels { instrument: bar.instrument, stop_loss: Some(stop), take_profit }));
    }
}

stratbox_sdk::export_plugin!(AtrStop, roles: [stop_policy]);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::{instrument, Harness};
    use stratbox_sdk::ParamValue;

    fn ohlc(day: i64, high: f64, low: f64, close: f64) -> Bar {
        Bar { instrument: 0, start: day * 86_400_000_000_000, period_secs: 86_400, open: close, high, low, close, volume: 0.0 }
    }

    fn long(qty: f64) -> Position {
        Position { instrument: 0, quantity: qty, average_price: 100.0, realised_pnl: 0.0, unrealised_pnl: 0.0 }
    }

    fn stops(out: &[StopDecision]) -> Vec<f64> {
        out.iter().filter_map(|d| match d { StopDecision::SetLevels(l) => l.stop_loss, _ => None }).collect()
    }

    #[test]
    fn the_stop_trails_up_never_down_and_exits_on_a_close_through_it() {
        let mut h = Harness::<AtrStop>::new(vec![instrument(0, "AAA")], &[("period", ParamValue::Integer(2)), ("multiple", ParamValue::Number(2.0))]).unwrap();
        assert!(h.position_bar(ohlc(0, 101.0, 99.0, 100.0), long(5.0)).is_empty(), "warm-up");
        // True ranges 2 and 3 (gap from the previous close): ATR 2.5, stop = 102 - 2 * 2.5 = 97.
        assert_eq!(stops(&h.position_bar(ohlc(1, 103.0, 101.0, 102.0), long(5.0))), vec![97.0]);
        // Price falls but stays above the stop: the wider ATR (2.75) must not loosen it.
        assert!(h.position_bar(ohlc(2, 101.0, 99.0, 100.0), long(5.0)).is_empty());
        // Close below 97: exit.
        assert_eq!(h.position_bar(ohlc(3, 99.0, 96.0, 96.5), long(5.0)), vec![StopDecision::Exit(0)]);
    }

    #[test]
    fn a_short_position_trails_from_above() {
        let mut h = Harness::<AtrStop>::new(vec![instrument(0, "AAA")], &[("period", ParamValue::Integer(1)), ("multiple", ParamValue::Number(1.0))]).unwrap();
        let out = h.position_bar(ohlc(0, 101.0, 99.0, 100.0), long(-1.0));
        assert_eq!(stops(&out), vec![102.0]);
    }
}
