//! Anomaly detector. Per instrument, the z-score of each bar's log return
//! against the last `window` returns: `|z| >= elevated` raises an elevated
//! alarm, `|z| >= severe` a severe one. Market-wide, when at least
//! `breadth` of the instruments in one cross-section fall by `drop` or more,
//! a critical alarm (the kind that trips a circuit breaker). Also critical: a
//! cross-section whose mean return is `market_z` standard deviations below
//! the last `window` cross-sections' means and at least `market_drop` down
//! (a sudden market-wide fall out of a calm regime, which the fixed breadth
//! rule misses when single names fall less than `drop`; in a volatile
//! regime the same fall is ordinary and raises nothing).
//!
//! The scale of a z-score has a floor, `min_sigma` (a standard deviation of
//! returns, as a fraction): a window of almost identical closes has a
//! standard deviation near zero but not zero, which would turn the next
//! ordinary move into an alarm of absurd size. Below the floor the move is
//! measured against the floor, and the alarm says so.

use stratbox_sdk::prelude::*;

pub struct ZScoreGuard {
    window: usize,
    elevated: f64,
    severe: f64,
    breadth: f64,
    drop: f64,
    min_sigma: f64,
    market_z: f64,
    market_drop: f64,
    /// Mean log return of each cross-section.
    market: RollingStats,
    /// Indexed by instrument id: (last close, return statistics).
    legs: Vec<Option<(f64, RollingStats)>>,
}

impl Plugin for ZScoreGuard {
    fn describe() -> PluginInfo {
        PluginInfo::new("zscore-guard", env!("CARGO_PKG_VERSION"))
            .description("Return z-score and market-breadth anomaly detector")
            .param_int("window", "returns in the rolling window", 50, 5, 10_000)
            .param_number("elevated", "|z| for an elevated alarm", 5.0, 1.0, 100.0)
            .param_number("severe", "|z| for a severe alarm", 8.0, 1.0, 100.0)
            .param_number("breadth", "fraction of instruments falling for a critical alarm", 0.6, 0.0, 1.0)
            .param_number("drop", "fall, as a fraction, that counts towards breadth", 0.05, 0.0, 1.0)
            .param_number("min_sigma", "floor on the standard deviation of returns (a fraction; 0.0002 is 0.02%)", 0.0002, 1e-6, 1.0)
            .param_number("market_z", "z of a cross-section's mean return, against the last `window`, for a critical alarm", 8.0, 1.0, 100.0)
            .param_number("market_drop", "fall of the mean return, as a fraction, the market rule also needs", 0.03, 0.0, 1.0)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let p = &init.params;
        let (elevated, severe) = (p.number("elevated")?, p.number("severe")?);
        if severe < elevated {
            return Err(format!("`severe` ({severe}) must not be below `elevated` ({elevated})"));
        }
        Ok(Self {
            window: p.int("window")? as usize,
            elevated,
            severe,
            breadth: p.number("breadth")?,
            drop: p.number("drop")?,
            min_sigma: p.number("min_sigma")?,
            market_z: p.number("market_z")?,
            market_drop: p.number("market_drop")?,
            market: RollingStats::new(p.int("window")? as usize),
            legs: Vec::new(),
        })
    }
}

impl AnomalyDetector for ZScoreGuard {
    fn observe_bars(&mut self, _ctx: &mut Ctx<'_>, bars: &[Bar]) -> Option<Alarm> {
        let mut worst: Option<Alarm> = None;
        let (mut falling, mut seen, mut sum) = (0usize, 0usize, 0.0f64);
        for bar in bars {
            let i = bar.instrument as usize;
            if self.legs.len() <= i {
                self.legs.resize_with(i + 1, || None);
            }
            let window = self.window;
            let (last, stats) = self.legs[i].get_or_insert_with(|| (bar.close, RollingStats::new(window)));
            if !(bar.close > 0.0 && *last > 0.0) {
                continue;
            }
            let ret = (bar.close / *last).ln();
            *last = bar.close;
            seen += 1;
            sum += ret;
            if ret <= (1.0 - self.drop).ln() {
                falling += 1;
            }
            let (mean, sigma) = (stats.mean(), stats.stddev());
            stats.update(ret);
            let (Some(mean), Some(sigma)) = (mean, sigma) else { continue };
            let floored = sigma < self.min_sigma;
            let z = (ret - mean) / sigma.max(self.min_sigma);
            let level = if z.abs() >= self.severe {
                AlarmLevel::Severe
            } else if z.abs() >= self.elevated {
                AlarmLevel::Elevated
            } else {
                continue;
            };
            if worst.as_ref().is_none_or(|w| level as u8 > w.level as u8) {
                worst = Some(Alarm {
                    level,
                    instrument: Some(bar.instrument),
                    reason: if floored {
                        format!(
                            "return {:.2}% is {z:.1} times the floor of {:.2}% from the last {window} (their own deviation, {:.4}%, is below it)",
                            ret * 100.0, self.min_sigma * 100.0, sigma * 100.0
                        )
                    } else {
                        format!("return {:.2}% is {z:.1} standard deviations from the last {window}", ret * 100.0)
                    },
                });
            }
        }
        // The market rule's statistics see every cross-section, alarmed or not.
        let market_z = (seen >= 5).then(|| {
            let mean_ret = sum / seen as f64;
            let (m, sd) = (self.market.mean(), self.market.stddev());
            self.market.update(mean_ret);
            Some((mean_ret, (mean_ret - m?) / sd?.max(self.min_sigma)))
        }).flatten();
        if seen >= 5 && falling as f64 >= self.breadth * seen as f64 {
            return Some(Alarm {
                level: AlarmLevel::Critical,
                instrument: None,
                reason: format!("{falling} of {seen} instruments fell {:.0}% or more in one bar", self.drop * 100.0),
            });
        }
        if let Some((mean_ret, z)) = market_z
            && z <= -self.market_z
            && mean_ret <= (1.0 - self.market_drop).ln()
        {
            return Some(Alarm {
                level: AlarmLevel::Critical,
                instrument: None,
                reason: format!("the mean return of {seen} instruments, {:.2}%, is {z:.1} standard deviations from the last {}", (mean_ret.exp() - 1.0) * 100.0, self.window),
            });
        }
        worst
    }
}

stratbox_sdk::export_plugin!(ZScoreGuard, roles: [anomaly_detector]);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::{bar, instrument, Harness};
    use stratbox_sdk::ParamValue;

    fn quiet_then(shock: f64) -> Option<Alarm> {
        let mut h = Harness::<ZScoreGuard>::new(vec![instrument(0, "AAA")], &[]).unwrap();
        let mut price = 100.0;
        for day in 0..60 {
            price *= if day % 2 == 0 { 1.001 } else { 0.999 };
            assert_eq!(h.observe(&[bar(0, day * 86_400, 86_400, price)]), None, "day {day}");
        }
        h.observe(&[bar(0, 60 * 86_400, 86_400, price * shock)])
    }

    #[test]
    fn a_jump_far_outside_recent_returns_is_severe() {
        let alarm = quiet_then(0.97).expect("alarm");
        assert_eq!(alarm.level, AlarmLevel::Severe);
        assert_eq!(alarm.instrument, Some(0));
    }

    #[test]
    fn an_ordinary_move_raises_nothing() {
        assert_eq!(quiet_then(1.0005), None);
    }

    /// A window of almost identical closes: their deviation is near zero but
    /// not zero. The next move is measured against the floor, not against it
    /// (which made -8.70% "-206811150.9 standard deviations").
    #[test]
    fn a_flat_window_does_not_turn_a_move_into_an_absurd_alarm() {
        let mut h = Harness::<ZScoreGuard>::new(vec![instrument(0, "AAA")], &[]).unwrap();
        for day in 0..60 {
            let close = 100.0 + if day % 7 == 0 { 1e-9 } else { 0.0 };
            assert_eq!(h.observe(&[bar(0, day * 86_400, 86_400, close)]), None, "day {day}");
        }
        let alarm = h.observe(&[bar(0, 60 * 86_400, 86_400, 100.0 * (1.0 - 0.087))]).expect("a fall of 8.7% is still an alarm");
        assert_eq!(alarm.level, AlarmLevel::Severe);
        let z: f64 = alarm.reason.split(" is ").nth(1).and_then(|r| r.split(' ').next()).and_then(|z| z.parse().ok()).expect(&alarm.reason);
        assert!(z.abs() <= 0.0911 / 0.0002 + 1.0, "z {z} is bounded by the floor: {}", alarm.reason);
        assert!(alarm.reason.contains("times the floor of 0.02%"), "{}", alarm.reason);
    }

    #[test]
    fn a_broad_selloff_is_critical_and_market_wide() {
        let instruments: Vec<_> = (0..10).map(|i| instrument(i, "X")).collect();
        let mut h = Harness::<ZScoreGuard>::new(instruments, &[]).unwrap();
        let day0: Vec<_> = (0..10).map(|i| bar(i, 0, 86_400, 100.0)).collect();
        assert_eq!(h.observe(&day0), None);
        let crash: Vec<_> = (0..10).map(|i| bar(i, 86_400, 86_400, if i < 7 { 90.0 } else { 100.0 })).collect();
        let alarm = h.observe(&crash).expect("alarm");
        assert_eq!((alarm.level, alarm.instrument), (AlarmLevel::Critical, None));
        assert!(alarm.reason.starts_with("7 of 10"), "{}", alarm.reason);
    }

    /// Ten instruments each falling 4% (under `drop`, so no breadth alarm):
    /// critical out of a calm regime, nothing out of a volatile one.
    #[test]
    fn a_market_wide_fall_is_critical_only_out_of_a_calm_regime() {
        let run = |swing: f64| {
            let instruments: Vec<_> = (0..10).map(|i| instrument(i, "X")).collect();
            let mut h = Harness::<ZScoreGuard>::new(instruments, &[("market_z", ParamValue::Number(4.0))]).unwrap();
            let mut price = 100.0;
            for day in 0..60 {
                price *= if day % 2 == 0 { 1.0 + swing } else { 1.0 / (1.0 + swing) };
                let bars: Vec<_> = (0..10).map(|i| bar(i, day * 86_400, 86_400, price)).collect();
                let _ = h.observe(&bars);
            }
            let fall: Vec<_> = (0..10).map(|i| bar(i, 60 * 86_400, 86_400, price * 0.96)).collect();
            h.observe(&fall)
        };
        let calm = run(0.002).expect("a 4% fall after 0.2% days is an alarm");
        assert_eq!((calm.level, calm.instrument), (AlarmLevel::Critical, None));
        assert!(calm.reason.starts_with("the mean return of 10 instruments, -4.00%"), "{}", calm.reason);
        assert!(run(0.03).is_none_or(|a| a.level != AlarmLevel::Critical), "after 3% days a 4% fall is not critical");
    }
}
