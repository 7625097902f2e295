//! Anomaly detector: a volatility regime change. For each instrument, and for
//! the market (the mean log return of each cross-section), the ratio of a
//! short to a long exponentially weighted volatility (half-lives `short` and
//! `long` bars). An instrument at `elevated` times its long volatility raises
//! an elevated alarm, at `severe` a severe one; the market at `market_severe`
//! a severe one and at `market_critical` a critical one (the kind that trips a
//! circuit breaker), when the cross-section has at least `market_min` returns. The long volatility is the one before this bar, so one
//! crash bar moves the short one alone; `min_sigma` floors it (a window of
//! flat closes would make any move a regime change).

use stratbox_sdk::prelude::*;

struct Vol {
    short: EwmaVariance,
    long: EwmaVariance,
}

impl Vol {
    fn new(short: f64, long: f64, warmup: usize) -> Self {
        Self { short: EwmaVariance::new(short, 1), long: EwmaVariance::new(long, warmup) }
    }

    /// The short/long volatility ratio after `r`, against the long one before it.
    fn ratio(&mut self, r: f64, floor: f64) -> Option<f64> {
        let long = self.long.value();
        self.long.update(r);
        let short = self.short.update(r)?;
        Some(short.sqrt() / long?.sqrt().max(floor))
    }
}

pub struct VolRegime {
    short: f64,
    long: f64,
    warmup: usize,
    elevated: f64,
    severe: f64,
    market_severe: f64,
    market_critical: f64,
    min_sigma: f64,
    market_min: usize,
    returns: LogReturns,
    legs: PerInstrument<Vol>,
    market: Vol,
}

impl Plugin for VolRegime {
    fn describe() -> PluginInfo {
        PluginInfo::new("vol-regime", env!("CARGO_PKG_VERSION"))
            .description("Short against long EWMA volatility, per instrument and of the market")
            .param_number("short", "half-life of the short volatility, in bars", 3.0, 0.5, 1_000.0)
            .param_number("long", "half-life of the long volatility, in bars", 60.0, 2.0, 10_000.0)
            .param_int("warmup", "returns before any alarm", 100, 2, 100_000)
            .param_number("elevated", "an instrument's short/long ratio for an elevated alarm", 3.0, 1.0, 100.0)
            .param_number("severe", "an instrument's ratio for a severe alarm", 5.0, 1.0, 100.0)
            .param_number("market_severe", "the market's ratio for a severe alarm", 3.0, 1.0, 100.0)
            .param_number("market_critical", "the market's ratio for a critical alarm", 4.0, 1.0, 100.0)
            .param_number("min_sigma", "floor on the long volatility (a fraction per bar)", 0.002, 1e-6, 1.0)
            .param_int("market_min", "returns a cross-section needs for the market rule (one name is not the market)", 5, 1, 1_000_000)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let p = &init.params;
        let (short, long) = (p.number("short")?, p.number("long")?);
        if short >= long {
            return Err(format!("`short` ({short}) must be shorter than `long` ({long})"));
        }
        let (elevated, severe, market_severe, market_critical) = (p.number("elevated")?, p.number("severe")?, p.number("market_severe")?, p.number("market_critical")?);
        if severe < elevated || market_critical < market_severe {
            return Err("a higher level needs a ratio at least the lower level's (`severe` >= `elevated`, `market_critical` >= `market_severe`)".into());
        }
        let warmup = p.int("warmup")? as usize;
        Ok(Self {
            short,
            long,
            warmup,
            elevated,
            severe,
            market_severe,
            market_critical,
            min_sigma: p.number("min_sigma")?,
            market_min: p.int("market_min")? as usize,
            returns: LogReturns::default(),
            legs: PerInstrument::default(),
            market: Vol::new(short, long, warmup),
        })
    }
}

impl AnomalyDetector for VolRegime {
    fn observe_bars(&mut self, _ctx: &mut Ctx<'_>, bars: &[Bar]) -> Option<Alarm> {
        let mut worst: Option<(f64, Alarm)> = None;
        let (mut sum, mut seen) = (0.0, 0usize);
        for bar in bars {
            let Some(r) = self.returns.update(bar.instrument, bar.close) else { continue };
            (sum, seen) = (sum + r, seen + 1);
            let (short, long, warmup) = (self.short, self.long, self.warmup);
            let Some(ratio) = self.legs.get_or_insert_with(bar.instrument, || Vol::new(short, long, warmup)).ratio(r, self.min_sigma) else { continue };
            let level = if ratio >= self.severe {
                AlarmLevel::Severe
            } else if ratio >= self.elevated {
                AlarmLevel::Elevated
            } else {
                continue;
            };
            if worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
                let reason = format!("volatility {ratio:.1} times its long-run level (return {:.2}%)", (r.exp() - 1.0) * 100.0);
                worst = Some((ratio, Alarm { level, instrument: Some(bar.instrument), reason }));
            }
        }
        if seen >= self.market_min
            && let Some(ratio) = self.market.ratio(sum / seen as f64, self.min_sigma)
            && ratio >= self.market_severe
        {
            let level = if ratio >= self.market_critical { AlarmLevel::Critical } else { AlarmLevel::Severe };
            let reason = format!("market volatility {ratio:.1} times its long-run level (mean return of {seen} instruments {:.2}%)", ((sum / seen as f64).exp() - 1.0) * 100.0);
            return Some(Alarm { level, instrument: None, reason });
        }
        worst.map(|(_, a)| a)
    }
}

stratbox_sdk::export_plugin!(VolRegime, roles: [anomaly_detector]);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::ParamValue;
    use stratbox_sdk::testing::{Harness, bar, instrument};

    /// 150 days of +-0.5% moves on `n` instruments, then one day of `shock` on all.
    fn calm_then(n: u32, shock: f64, params: &[(&str, ParamValue)]) -> Option<Alarm> {
        let mut h = Harness::<VolRegime>::new((0..n).map(|i| instrument(i, "X")).collect(), params).unwrap();
        let mut price = 100.0;
        for day in 0..150 {
            price *= if day % 2 == 0 { 1.005 } else { 1.0 / 1.005 };
            let bars: Vec<_> = (0..n).map(|i| bar(i, day * 86_400, 86_400, price)).collect();
            assert_eq!(h.observe(&bars), None, "day {day}");
        }
        let bars: Vec<_> = (0..n).map(|i| bar(i, 150 * 86_400, 86_400, price * shock)).collect();
        h.observe(&bars)
    }

    #[test]
    fn a_market_wide_crash_out_of_calm_is_critical() {
        // A -10% day against 0.5% volatility: short vol (half-life 3) jumps to
        // sqrt(0.206) x 10% = 4.5% against 0.5%: 9 times.
        let a = calm_then(10, 0.90, &[]).expect("alarm");
        assert_eq!((a.level, a.instrument), (AlarmLevel::Critical, None));
        assert!(a.reason.starts_with("market volatility 9."), "{}", a.reason);
    }

    #[test]
    fn one_instrument_alone_is_not_the_market() {
        // One name falling 10% among ten is that name's regime change, not
        // the market's (its mean moves 1%).
        let mut h = Harness::<VolRegime>::new((0..10).map(|i| instrument(i, "X")).collect(), &[]).unwrap();
        let mut price = 100.0;
        for day in 0..150 {
            price *= if day % 2 == 0 { 1.005 } else { 1.0 / 1.005 };
            let bars: Vec<_> = (0..10).map(|i| bar(i, day * 86_400, 86_400, price)).collect();
            let _ = h.observe(&bars);
        }
        let bars: Vec<_> = (0..10).map(|i| bar(i, 150 * 86_400, 86_400, if i == 3 { price * 0.9 } else { price })).collect();
        let a = h.observe(&bars).expect("alarm");
        assert_eq!((a.level, a.instrument), (AlarmLevel::Severe, Some(3)), "{}", a.reason);
    }

    #[test]
    fn an_ordinary_day_raises_nothing_and_bad_settings_are_refused() {
        assert_eq!(calm_then(10, 1.005, &[]), None);
        let e = Harness::<VolRegime>::new(vec![instrument(0, "X")], &[("short", ParamValue::Number(80.0))]).err().unwrap();
        assert!(e.contains("`short` (80) must be shorter"), "{e}");
    }
}
