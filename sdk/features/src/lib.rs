//! Features of the ML strategies, computed by this one piece of code in the
//! plugin (in wasm) and in `stratbox ml dataset` (natively), so what a model
//! is trained on is what it is served: bit for bit.
//!
//! Per instrument, from its daily bars, once [`WINDOW`] closes are in:
//!
//! | name | value |
//! |---|---|
//! | `ret_1` .. `ret_5` | log return of each of the last 5 bars, x100 |
//! | `ret_20` | log return over the last 20 bars, x100 |
//! | `vol_20` | sample standard deviation of the last 20 one-bar log returns, x100 |
//! | `sma_gap_20` | close over its 20-bar simple average, minus one, x100 |
//! | `range_1` | the last bar's high minus low over its close, x100 |
//!
//! Determinism: f64 arithmetic in a fixed order, `libm::log` and
//! `libm::sqrt` (the same code on every target; std's `ln` is the platform's
//! libm), then one rounding to `f32`, the models' input type.
//! Labels ([`label`]) look `horizon` bars ahead and exist only in datasets.

#![no_std]

/// Closes a row needs.
pub const WINDOW: usize = 21;

/// The features, in row order.
pub const NAMES: [&str; COUNT] = ["ret_1", "ret_2", "ret_3", "ret_4", "ret_5", "ret_20", "vol_20", "sma_gap_20", "range_1"];

/// Values in a row.
pub const COUNT: usize = 9;

/// One row of features.
pub type Row = [f32; COUNT];

/// The last [`WINDOW`] closes of one instrument and its last bar's range.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    closes: [f64; WINDOW],
    /// Closes seen, at most `WINDOW` counted.
    len: usize,
    /// Where the next close goes (a ring).
    next: usize,
    high: f64,
    low: f64,
}

impl Default for Features {
    fn default() -> Self {
        Self::new()
    }
}

fn log_return(from: f64, to: f64) -> f64 {
    libm::log(to / from) * 100.0
}

impl Features {
    pub const fn new() -> Self {
        Self { closes: [0.0; WINDOW], len: 0, next: 0, high: 0.0, low: 0.0 }
    }

    /// Takes a closed bar; the row of features once the window is full.
    /// Bars with a close that is not a positive number are ignored.
    pub fn push(&mut self, high: f64, low: f64, close: f64) -> Option<Row> {
        if !(close > 0.0 && close.is_finite()) {
            return None;
        }
        self.closes[self.next] = close;
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
        (self.high, self.low) = (high, low);
        self.row()
    }

    /// Whether a row is available.
    pub fn ready(&self) -> bool {
        self.len == WINDOW
    }

    /// The `k`-th close back (0: the latest).
    fn back(&self, k: usize) -> f64 {
        self.closes[(self.next + WINDOW - 1 - k) % WINDOW]
    }

    /// The closes held, oldest first (for handing state over).
    pub fn closes(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.len).rev().map(|k| self.back(k))
    }

    /// The last bar's (high, low).
    pub fn range(&self) -> (f64, f64) {
        (self.high, self.low)
    }

    /// The row of the latest bar, when the window is full.
    pub fn row(&self) -> Option<Row> {
        if !self.ready() {
            return None;
        }
        let mut rets = [0f64; WINDOW - 1];
        for (k, r) in rets.iter_mut().enumerate() {
            *r = log_return(self.back(k + 1), self.back(k));
        }
        let mean = rets.iter().sum::<f64>() / rets.len() as f64;
        let var = rets.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (rets.len() - 1) as f64;
        let sma = (0..WINDOW - 1).map(|k| self.back(k)).sum::<f64>() / (WINDOW - 1) as f64;
        let close = self.back(0);
        let values = [
            rets[0],
            rets[1],
            rets[2],
            rets[3],
            rets[4],
            log_return(self.back(WINDOW - 1), close),
            libm::sqrt(var),
            (close / sma - 1.0) * 100.0,
            (self.high - self.low) / close * 100.0,
        ];
        Some(values.map(|v| v as f32))
    }
}

/// The label of the bar at `at`: whether the close `horizon` bars later is
/// above it (`Some(1)`), not (`Some(0)`), or unknown yet (`None`). Also the
/// forward log return x100.
pub fn label(closes: &[f64], at: usize, horizon: usize) -> Option<(u8, f64)> {
    let later = *closes.get(at.checked_add(horizon)?)?;
    let r = log_return(closes[at], later);
    Some((u8::from(r > 0.0), r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_on_a_worked_example() {
        let mut f = Features::new();
        // Closes 100, 101, ... 120: each return ln((100+k+1)/(100+k)).
        for k in 0..WINDOW {
            let c = 100.0 + k as f64;
            let row = f.push(c + 1.0, c - 1.0, c);
            assert_eq!(row.is_some(), k == WINDOW - 1, "ready only on the 21st close");
        }
        let row = f.row().unwrap();
        assert_eq!(row[0], (libm::log(120.0 / 119.0) * 100.0) as f32);
        assert_eq!(row[4], (libm::log(116.0 / 115.0) * 100.0) as f32);
        assert_eq!(row[5], (libm::log(120.0 / 100.0) * 100.0) as f32);
        // The SMA of 101..=120 is 110.5.
        assert_eq!(row[7], ((120.0 / 110.5 - 1.0) * 100.0) as f32);
        assert_eq!(row[8], (2.0 / 120.0 * 100.0) as f32);
        assert!(row[6] > 0.0 && row[6] < 0.1, "returns shrink slowly: a small deviation");
        // The ring keeps the latest 21, oldest first.
        let closes: [f64; WINDOW] = core::array::from_fn(|k| 100.0 + k as f64);
        assert!(f.closes().eq(closes.iter().copied()));
        f.push(121.0, 121.0, 121.0);
        assert_eq!(f.closes().next(), Some(101.0));
    }

    #[test]
    fn bad_closes_are_ignored_and_labels_look_ahead() {
        let mut f = Features::new();
        assert_eq!(f.push(1.0, 1.0, f64::NAN), None);
        assert_eq!(f.push(1.0, 1.0, 0.0), None);
        assert!(!f.ready() && f.closes().next().is_none());
        let closes = [100.0, 101.0, 99.0];
        assert_eq!(label(&closes, 0, 1).map(|l| l.0), Some(1));
        assert_eq!(label(&closes, 0, 2).map(|l| l.0), Some(0));
        assert_eq!(label(&closes, 1, 2), None, "no close two bars after the second");
    }
}
