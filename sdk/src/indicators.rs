//! Streaming indicators, O(1) per update (amortised, for the windowed ones, which
//! resynchronise their running sums once per window) and allocation-free after construction.
//!
//! Each `update` returns `None` until the indicator has seen enough input
//! ("warm-up"), then `Some(value)`. Conventions follow the usual TA-Lib/Wilder
//! definitions and are stated on each type; `sdk/tests/indicators.rs` checks
//! them against values produced independently by `sdk/tests/reference/make_reference.py`.

/// Fixed-capacity ring of the last `period` values.
#[derive(Debug, Clone)]
struct Window {
    values: Vec<f64>,
    next: usize,
    full: bool,
}

impl Window {
    fn new(period: usize) -> Self {
        assert!(period > 0, "indicator period must be at least 1");
        Self { values: Vec::with_capacity(period), next: 0, full: false }
    }

    /// Pushes `x`; returns the value that fell out of the window, if any.
    fn push(&mut self, x: f64) -> Option<f64> {
        let period = self.values.capacity();
        if !self.full {
            self.values.push(x);
            self.full = self.values.len() == period;
            return None;
        }
        let old = std::mem::replace(&mut self.values[self.next], x);
        self.next += 1;
        if self.next == period {
            self.next = 0; // cheaper than `%` on every update
        }
        Some(old)
    }

    /// True right after the ring has been overwritten once more end to end:
    /// the moment to recompute running sums exactly (amortised O(1)).
    fn wrapped(&self) -> bool {
        self.full && self.next == 0
    }

    fn values(&self) -> &[f64] {
        &self.values
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn is_full(&self) -> bool {
        self.full
    }
}

/// Simple moving average of the last `period` values.
#[derive(Debug, Clone)]
pub struct Sma {
    window: Window,
    sum: f64,
}

impl Sma {
    /// An SMA over `period` values (`period >= 1`).
    pub fn new(period: usize) -> Self {
        Self { window: Window::new(period), sum: 0.0 }
    }

    /// Adds `x`; the average once `period` values have been seen.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.sum += x;
        if let Some(old) = self.window.push(x) {
            self.sum -= old;
        }
        if self.window.wrapped() {
            // Cancel the rounding that add/subtract pairs accumulate.
            self.sum = self.window.values().iter().sum();
        }
        self.value()
    }

    /// The current average, if warmed up.
    pub fn value(&self) -> Option<f64> {
        self.window.is_full().then(|| self.sum / self.window.len() as f64)
    }
}

/// Exponential moving average with `alpha = 2 / (period + 1)`, seeded with the
/// SMA of the first `period` values (the TA-Lib convention).
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    alpha: f64,
    seen: usize,
    value: f64,
}

impl Ema {
    /// An EMA of `period` (`period >= 1`).
    pub fn new(period: usize) -> Self {
        assert!(period > 0, "indicator period must be at least 1");
        Self { period, alpha: 2.0 / (period as f64 + 1.0), seen: 0, value: 0.0 }
    }

    /// Adds `x`; the EMA once `period` values have been seen.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.seen += 1;
        if self.seen < self.period {
            self.value += x;
            return None;
        }
        if self.seen == self.period {
            self.value = (self.value + x) / self.period as f64;
        } else {
            self.value += self.alpha * (x - self.value);
        }
        Some(self.value)
    }
}

/// Wilder's running average: the first value is the mean of `period` inputs,
/// then `avg = (avg * (period - 1) + x) / period`.
#[derive(Debug, Clone)]
struct WilderAverage {
    period: usize,
    seen: usize,
    value: f64,
}

impl WilderAverage {
    fn new(period: usize) -> Self {
        assert!(period > 0, "indicator period must be at least 1");
        Self { period, seen: 0, value: 0.0 }
    }

    fn update(&mut self, x: f64) -> Option<f64> {
        self.seen += 1;
        let n = self.period as f64;
        if self.seen < self.period {
            self.value += x;
            return None;
        }
        if self.seen == self.period {
            self.value = (self.value + x) / n;
        } else {
            self.value = (self.value * (n - 1.0) + x) / n;
        }
        Some(self.value)
    }
}

/// Wilder's Average True Range. The first bar's true range is `high - low`
/// (no previous close); later ones are
/// `max(high - low, |high - prev_close|, |low - prev_close|)`.
#[derive(Debug, Clone)]
pub struct WilderAtr {
    average: WilderAverage,
    prev_close: Option<f64>,
}

impl WilderAtr {
    /// An ATR of `period` bars (`period >= 1`; 14 is customary).
    pub fn new(period: usize) -> Self {
        Self { average: WilderAverage::new(period), prev_close: None }
    }

    /// Adds a bar; the ATR once `period` bars have been seen.
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> Option<f64> {
        let range = high - low;
        let true_range = match self.prev_close {
            Some(pc) => range.max((high - pc).abs()).max((low - pc).abs()),
            None => range,
        };
        self.prev_close = Some(close);
        self.average.update(true_range)
    }
}

/// Wilder's Relative Strength Index, 0 to 100. Needs `period + 1` prices
/// (`period` changes) to warm up; 100 when there were no losses.
#[derive(Debug, Clone)]
pub struct Rsi {
    gains: WilderAverage,
    losses: WilderAverage,
    prev: Option<f64>,
}

impl Rsi {
    /// An RSI of `period` changes (`period >= 1`; 14 is customary).
    pub fn new(period: usize) -> Self {
        Self { gains: WilderAverage::new(period), losses: WilderAverage::new(period), prev: None }
    }

    /// Adds a price; the RSI once warmed up.
    pub fn update(&mut self, price: f64) -> Option<f64> {
        let prev = self.prev.replace(price)?;
        let change = price - prev;
        let gain = self.gains.update(change.max(0.0));
        let loss = self.losses.update((-change).max(0.0));
        let (gain, loss) = (gain?, loss?);
        Some(if loss == 0.0 { 100.0 } else { 100.0 - 100.0 / (1.0 + gain / loss) })
    }
}

/// Rolling mean, sample standard deviation (n - 1) and z-score over the last
/// `period` values, updated with a sliding Welford step for numerical stability.
#[derive(Debug, Clone)]
pub struct RollingStats {
    window: Window,
    mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
}

impl RollingStats {
    /// Statistics over `period` values (`period >= 2`).
    pub fn new(period: usize) -> Self {
        assert!(period >= 2, "rolling statistics need a period of at least 2");
        Self { window: Window::new(period), mean: 0.0, m2: 0.0 }
    }

    /// Adds `x`.
    pub fn update(&mut self, x: f64) {
        match self.window.push(x) {
            None => {
                let n = self.window.len() as f64;
                let delta = x - self.mean;
                self.mean += delta / n;
                self.m2 += delta * (x - self.mean);
            }
            Some(old) => {
                let n = self.window.len() as f64;
                let old_mean = self.mean;
                self.mean += (x - old) / n;
                self.m2 += (x - old) * (x - self.mean + old - old_mean);
                // Rounding can push a zero variance slightly negative.
                self.m2 = self.m2.max(0.0);
            }
        }
        if self.window.wrapped() {
            // Resynchronise with a two-pass computation so error cannot build up.
            let w = self.window.values();
            self.mean = w.iter().sum::<f64>() / w.len() as f64;
            self.m2 = w.iter().map(|v| (v - self.mean).powi(2)).sum();
        }
    }

    /// Whether `period` values have been seen.
    pub fn is_ready(&self) -> bool {
        self.window.is_full()
    }

    /// Mean of the window, once full.
    pub fn mean(&self) -> Option<f64> {
        self.is_ready().then_some(self.mean)
    }

    /// Sample standard deviation of the window, once full.
    pub fn stddev(&self) -> Option<f64> {
        self.is_ready().then(|| (self.m2 / (self.window.len() - 1) as f64).sqrt())
    }

    /// How many standard deviations `x` lies from the window's mean; `None`
    /// before warm-up or when the window has no dispersion.
    pub fn zscore(&self, x: f64) -> Option<f64> {
        let sd = self.stddev()?;
        (sd > 0.0).then(|| (x - self.mean) / sd)
    }
}

/// Exponentially weighted variance of returns about zero (RiskMetrics'
/// convention): `v = lambda v + (1 - lambda) r^2`, with `lambda` from a
/// half-life in bars (`0.5^(1/half_life)`). Ready after `warmup` returns; the
/// first return seeds it.
#[derive(Debug, Clone)]
pub struct EwmaVariance {
    lambda: f64,
    warmup: usize,
    seen: usize,
    value: f64,
}

impl EwmaVariance {
    /// A variance with a half-life of `half_life` bars, ready after `warmup` returns.
    pub fn new(half_life: f64, warmup: usize) -> Self {
        assert!(half_life > 0.0, "a half-life must be positive");
        Self { lambda: 0.5f64.powf(1.0 / half_life), warmup: warmup.max(1), seen: 0, value: 0.0 }
    }

    /// Adds a return; the variance once warmed up.
    pub fn update(&mut self, r: f64) -> Option<f64> {
        self.value = if self.seen == 0 { r * r } else { self.lambda * self.value + (1.0 - self.lambda) * r * r };
        self.seen += 1;
        self.value()
    }

    /// The variance, once warmed up.
    pub fn value(&self) -> Option<f64> {
        (self.seen >= self.warmup).then_some(self.value)
    }
}

/// The median of `values` (sorting them in place); NaN for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => 0.5 * (values[n / 2 - 1] + values[n / 2]),
    }
}

/// Median and median absolute deviation of the last `period` values: scales
/// that one outlier cannot move. Each update is O(1); a query sorts a copy of
/// the window (O(period log period)).
#[derive(Debug, Clone)]
pub struct RollingMedian {
    window: Window,
    scratch: Vec<f64>,
}

impl RollingMedian {
    /// Over the last `period` values (`period >= 1`).
    pub fn new(period: usize) -> Self {
        Self { window: Window::new(period), scratch: Vec::with_capacity(period) }
    }

    /// Adds `x`.
    pub fn update(&mut self, x: f64) {
        self.window.push(x);
    }

    /// Whether `period` values have been seen.
    pub fn is_ready(&self) -> bool {
        self.window.is_full()
    }

    /// (median, MAD) of the window, once full. MAD is the median of the
    /// absolute deviations from the median, unscaled (x 1.4826 estimates a
    /// normal standard deviation).
    pub fn median_mad(&mut self) -> Option<(f64, f64)> {
        if !self.is_ready() {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(self.window.values());
        let mid = median(&mut self.scratch);
        for v in self.scratch.iter_mut() {
            *v = (*v - mid).abs();
        }
        Some((mid, median(&mut self.scratch)))
    }
}

/// Each instrument's last close, turning closes into log returns (for detectors).
#[derive(Debug, Clone, Default)]
pub struct LogReturns {
    last: Vec<f64>,
}

impl LogReturns {
    /// The log return from the instrument's previous close; `None` for its
    /// first bar or a non-positive price (which is not remembered).
    pub fn update(&mut self, instrument: u32, close: f64) -> Option<f64> {
        let i = instrument as usize;
        if self.last.len() <= i {
            self.last.resize(i + 1, f64::NAN);
        }
        if !(close > 0.0) {
            return None;
        }
        let prev = std::mem::replace(&mut self.last[i], close);
        (prev > 0.0).then(|| (close / prev).ln())
    }
}

#[cfg(test)]
mod robust_tests {
    use super::*;

    #[test]
    fn ewma_variance_follows_its_half_life() {
        let mut v = EwmaVariance::new(1.0, 1);
        assert_eq!(v.update(0.1), Some(0.1 * 0.1 + 0.0), "seeded by the first return");
        // lambda = 0.5: halfway from 0.01 to 0.
        assert!((v.update(0.0).unwrap() - 0.005).abs() < 1e-15);
        let mut w = EwmaVariance::new(10.0, 3);
        assert_eq!((w.update(1.0), w.update(1.0)), (None, None));
        assert!(w.update(1.0).is_some());
    }

    #[test]
    fn median_and_mad_ignore_one_outlier() {
        let mut m = RollingMedian::new(5);
        for x in [1.0, 2.0, 3.0, 4.0] {
            m.update(x);
            assert!(m.median_mad().is_none());
        }
        m.update(1000.0);
        // 1, 2, 3, 4, 1000: median 3; deviations 2, 1, 0, 1, 997: MAD 1.
        assert_eq!(m.median_mad(), Some((3.0, 1.0)));
        m.update(5.0); // 2, 3, 4, 1000, 5: median 4, deviations 2, 1, 0, 996, 1: MAD 1.
        assert_eq!(m.median_mad(), Some((4.0, 1.0)));
    }

    #[test]
    fn log_returns_per_instrument() {
        let mut r = LogReturns::default();
        assert_eq!(r.update(3, 100.0), None);
        assert_eq!(r.update(0, 50.0), None);
        assert!((r.update(3, 110.0).unwrap() - (1.1f64).ln()).abs() < 1e-15);
        assert_eq!(r.update(3, 0.0), None, "a bad price is skipped");
        assert!((r.update(3, 121.0).unwrap() - (1.1f64).ln()).abs() < 1e-12, "from the last good close");
    }
}

/// One `T` per instrument, created on first use: the state a plugin keeps
/// per instrument (ids are small and dense, so a vector indexed by id).
#[derive(Debug, Clone)]
pub struct PerInstrument<T> {
    slots: Vec<Option<T>>,
}

impl<T> Default for PerInstrument<T> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<T> PerInstrument<T> {
    /// The instrument's state, made by `make` if it has none.
    pub fn get_or_insert_with(&mut self, instrument: u32, make: impl FnOnce() -> T) -> &mut T {
        let i = instrument as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i].get_or_insert_with(make)
    }

    /// The instrument's state, if it has one.
    pub fn get(&self, instrument: u32) -> Option<&T> {
        self.slots.get(instrument as usize)?.as_ref()
    }

    /// The instrument's state to change, if it has one.
    pub fn get_mut(&mut self, instrument: u32) -> Option<&mut T> {
        self.slots.get_mut(instrument as usize)?.as_mut()
    }

    /// Replaces the instrument's state.
    pub fn set(&mut self, instrument: u32, value: T) {
        let i = instrument as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(value);
    }

    /// Every instrument with a state, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| Some((i as u32, s.as_ref()?)))
    }
}
