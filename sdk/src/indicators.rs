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
