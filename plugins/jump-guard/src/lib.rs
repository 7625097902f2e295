//! Anomaly detector: jumps against a robust scale. Each instrument's log
//! return is measured against the median and the median absolute deviation
//! (MAD, x 1.4826: a normal standard deviation) of its last `window` returns,
//! which a past crash in the window cannot inflate the way it inflates a
//! standard deviation. `|z| >= elevated`: elevated, `>= severe`: severe. The
//! market's return (the median of the cross-section's returns, so one name
//! cannot move it) measured the same way against its own window is critical
//! at `market_z` when it is also a fall of at least `market_drop`. `min_sigma`
//! floors the scale (a window of unchanged closes has a MAD of zero).

use stratbox_sdk::prelude::*;

const MAD_TO_SIGMA: f64 = 1.4826;

pub struct JumpGuard {
    window: usize,
    elevated: f64,
    severe: f64,
    market_z: f64,
    market_drop: f64,
    min_sigma: f64,
    returns: LogReturns,
    legs: PerInstrument<RollingMedian>,
    market: RollingMedian,
    scratch: Vec<f64>,
}

/// The robust z of `r` against `window` (before adding it), and the scale used.
fn robust_z(window: &mut RollingMedian, r: f64, floor: f64) -> Option<(f64, f64)> {
    let z = window.median_mad().map(|(median, mad)| {
        let scale = (MAD_TO_SIGMA * mad).max(floor);
        ((r - median) / scale, scale)
    });
    window.update(r);
    z
}

impl Plugin for JumpGuard {
    fn describe() -> PluginInfo {
        PluginInfo::new("jump-guard", env!("CARGO_PKG_VERSION"))
            .description("Jumps against a robust scale (median absolute deviation), per instrument and of the market")
            .param_int("window", "returns in the rolling window", 100, 5, 10_000)
            .param_number("elevated", "|robust z| for an elevated alarm", 8.0, 1.0, 1_000.0)
            .param_number("severe", "|robust z| for a severe alarm", 14.0, 1.0, 1_000.0)
            .param_number("market_z", "robust z of the market's median return (a fall) for a critical alarm", 8.0, 1.0, 1_000.0)
            .param_number("market_drop", "fall of the market's median return, as a fraction, the critical alarm also needs", 0.04, 0.0, 1.0)
            .param_number("min_sigma", "floor on the robust scale (a fraction per bar)", 0.005, 1e-6, 1.0)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let p = &init.params;
        let (elevated, severe) = (p.number("elevated")?, p.number("severe")?);
        if severe < elevated {
            return Err(format!("`severe` ({severe}) must not be below `elevated` ({elevated})"));
        }
        let window = p.int("window")? as usize;
        Ok(Self {
            window,
            elevated,
            severe,
            market_z: p.number("market_z")?,
            market_drop: p.number("market_drop")?,
            min_sigma: p.number("min_sigma")?,
            returns: LogReturns::default(),
            legs: PerInstrument::default(),
            market: RollingMedian::new(window),
            scratch: Vec::new(),
        })
    }
}

impl AnomalyDetector for JumpGuard {
    fn observe_bars(&mut self, _ctx: &mut Ctx<'_>, bars: &[Bar]) -> Option<Alarm> {
        let mut worst: Option<(f64, Alarm)> = None;
        self.scratch.clear();
        for bar in bars {
            let Some(r) = self.returns.update(bar.instrument, bar.close) else { continue };
            self.scratch.push(r);
            let window = self.window;
            let Some((z, scale)) = robust_z(self.legs.get_or_insert_with(bar.instrument, || RollingMedian::new(window)), r, self.min_sigma) else { continue };
            let level = if z.abs() >= self.severe {
                AlarmLevel::Severe
            } else if z.abs() >= self.elevated {
                AlarmLevel::Elevated
            } else {
                continue;
            };
            if worst.as_ref().is_none_or(|(w, _)| z.abs() > *w) {
                let reason = format!("return {:.2}% is {z:.1} robust deviations ({:.2}%) from the median of the last {window}", (r.exp() - 1.0) * 100.0, scale * 100.0);
                worst = Some((z.abs(), Alarm { level, instrument: Some(bar.instrument), reason }));
            }
        }
        if self.scratch.len() >= 5 {
            let n = self.scratch.len();
            let median = median(&mut self.scratch);
            if let Some((z, _)) = robust_z(&mut self.market, median, self.min_sigma)
                && z <= -self.market_z
                && median <= (1.0 - self.market_drop).ln()
            {
                let reason = format!("the median return of {n} instruments, {:.2}%, is {z:.1} robust deviations from the last {}", (median.exp() - 1.0) * 100.0, self.window);
                return Some(Alarm { level: AlarmLevel::Critical, instrument: None, reason });
            }
        }
        worst.map(|(_, a)| a)
    }
}

stratbox_sdk::export_plugin!(JumpGuard, roles: [anomaly_detector]);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::{Harness, bar, instrument};

    fn after(n: u32, history: impl Fn(i64) -> f64, last: impl Fn(u32) -> f64) -> Option<Alarm> {
        let mut h = Harness::<JumpGuard>::new((0..n).map(|i| instrument(i, "X")).collect(), &[]).unwrap();
        let mut price = 100.0;
        for day in 0..120 {
            let r = history(day);
            price *= 1.0 + r;
            let bars: Vec<_> = (0..n).map(|i| bar(i, day * 86_400, 86_400, price)).collect();
            let alarm = h.observe(&bars);
            assert!(r.abs() > 0.05 || alarm.is_none(), "day {day}: {alarm:?}");
        }
        let bars: Vec<_> = (0..n).map(|i| bar(i, 120 * 86_400, 86_400, price * last(i))).collect();
        h.observe(&bars)
    }

    fn wiggle(day: i64) -> f64 {
        [0.004, -0.006, 0.002, -0.003, 0.005][day as usize % 5]
    }

    #[test]
    fn a_market_wide_fall_far_outside_the_robust_scale_is_critical() {
        let a = after(10, wiggle, |_| 0.93).expect("alarm");
        assert_eq!((a.level, a.instrument), (AlarmLevel::Critical, None));
        assert!(a.reason.starts_with("the median return of 10 instruments, -7.00%"), "{}", a.reason);
    }

    #[test]
    fn one_name_jumping_is_severe_and_cannot_move_the_market_median() {
        let a = after(10, wiggle, |i| if i == 2 { 0.80 } else { 1.0 }).expect("alarm");
        assert_eq!((a.level, a.instrument), (AlarmLevel::Severe, Some(2)), "{}", a.reason);
    }

    #[test]
    fn a_past_crash_in_the_window_does_not_blunt_the_scale() {
        // A -30% day 60 bars ago: a standard deviation would triple, the MAD barely moves,
        // so the next -7% market day is still critical.
        let crash_then_calm = |day: i64| if day == 60 { -0.30 } else { wiggle(day) };
        let a = after(10, crash_then_calm, |_| 0.93);
        assert!(a.is_some_and(|a| a.level == AlarmLevel::Critical));
        assert_eq!(after(10, wiggle, |_| 1.003), None, "an ordinary day");
    }
}
