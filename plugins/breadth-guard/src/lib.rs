//! Anomaly detector: market breadth. In each cross-section, the share of
//! instruments whose close fell `drop` or more from their previous close:
//! `severe_breadth` of them or more raises a severe alarm, `breadth` or more a
//! critical one (the kind that trips a circuit breaker). Needs at least
//! `min_instruments` returns in the cross-section, so that three names of a
//! five-stock universe are not "the market". (This is zscore-guard's breadth
//! rule as a detector of its own.)

use stratbox_sdk::prelude::*;

pub struct BreadthGuard {
    drop: f64,
    breadth: f64,
    severe_breadth: f64,
    min_instruments: usize,
    returns: LogReturns,
}

impl Plugin for BreadthGuard {
    fn describe() -> PluginInfo {
        PluginInfo::new("breadth-guard", env!("CARGO_PKG_VERSION"))
            .description("Market breadth: the share of instruments falling together in one bar")
            .param_number("drop", "fall, as a fraction, that counts an instrument as falling", 0.05, 0.001, 1.0)
            .param_number("breadth", "share of instruments falling for a critical alarm", 0.5, 0.0, 1.0)
            .param_number("severe_breadth", "share falling for a severe alarm", 0.3, 0.0, 1.0)
            .param_int("min_instruments", "returns a cross-section needs to count as the market", 10, 1, 1_000_000)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let p = &init.params;
        let (breadth, severe_breadth) = (p.number("breadth")?, p.number("severe_breadth")?);
        if severe_breadth > breadth {
            return Err(format!("`severe_breadth` ({severe_breadth}) must not be above `breadth` ({breadth})"));
        }
        Ok(Self { drop: p.number("drop")?, breadth, severe_breadth, min_instruments: p.int("min_instruments")? as usize, returns: LogReturns::default() })
    }
}

impl AnomalyDetector for BreadthGuard {
    fn observe_bars(&mut self, _ctx: &mut Ctx<'_>, bars: &[Bar]) -> Option<Alarm> {
        let threshold = (1.0 - self.drop).ln();
        let (mut seen, mut falling) = (0usize, 0usize);
        for bar in bars {
            if let Some(r) = self.returns.update(bar.instrument, bar.close) {
                seen += 1;
                falling += usize::from(r <= threshold);
            }
        }
        if seen < self.min_instruments || falling == 0 {
            return None;
        }
        let share = falling as f64 / seen as f64;
        let level = if share >= self.breadth {
            AlarmLevel::Critical
        } else if share >= self.severe_breadth {
            AlarmLevel::Severe
        } else {
            return None;
        };
        Some(Alarm { level, instrument: None, reason: format!("{falling} of {seen} instruments fell {:.0}% or more in one bar", self.drop * 100.0) })
    }
}

stratbox_sdk::export_plugin!(BreadthGuard, roles: [anomaly_detector]);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::{Harness, bar, instrument};

    fn day_after(n: u32, falling: u32) -> Option<Alarm> {
        let mut h = Harness::<BreadthGuard>::new((0..n).map(|i| instrument(i, "X")).collect(), &[]).unwrap();
        assert_eq!(h.observe(&(0..n).map(|i| bar(i, 0, 86_400, 100.0)).collect::<Vec<_>>()), None);
        h.observe(&(0..n).map(|i| bar(i, 86_400, 86_400, if i < falling { 94.0 } else { 100.5 })).collect::<Vec<_>>())
    }

    #[test]
    fn levels_follow_the_share_falling() {
        let critical = day_after(20, 12).unwrap();
        assert_eq!((critical.level, critical.instrument), (AlarmLevel::Critical, None));
        assert_eq!(critical.reason, "12 of 20 instruments fell 5% or more in one bar");
        assert_eq!(day_after(20, 6).unwrap().level, AlarmLevel::Severe);
        assert_eq!(day_after(20, 5), None);
    }

    #[test]
    fn a_small_universe_is_not_the_market() {
        assert_eq!(day_after(5, 5), None, "five names under min_instruments = 10");
    }
}
