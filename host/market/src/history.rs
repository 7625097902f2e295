//! The last N closed bars per (instrument, period), served to plugins.

use std::collections::{HashMap, VecDeque};

use super::{Bar, InstrumentId};

#[derive(Debug, Default)]
pub struct BarHistory {
    depth: usize,
    series: HashMap<(InstrumentId, u32), VecDeque<Bar>>,
}

impl BarHistory {
    /// Keeps up to `depth` bars per series.
    pub fn new(depth: usize) -> Self {
        Self { depth, series: HashMap::new() }
    }

    pub fn record(&mut self, bar: &Bar) {
        let depth = self.depth;
        let s = self.series.entry((bar.instrument, bar.period_secs)).or_insert_with(|| VecDeque::with_capacity(depth.min(4096)));
        if s.len() == depth {
            s.pop_front();
        }
        if depth > 0 {
            s.push_back(*bar);
        }
    }

    /// Up to `count` most recent bars, oldest first.
    pub fn last(&self, instrument: InstrumentId, period_secs: u32, count: usize) -> Vec<Bar> {
        self.series
            .get(&(instrument, period_secs))
            .map(|s| s.iter().skip(s.len().saturating_sub(count)).copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(i: i64) -> Bar {
        Bar { instrument: 1, start: i, period_secs: 60, open: 1.0, high: 1.0, low: 1.0, close: i as f64, volume: 0.0 }
    }

    #[test]
    fn keeps_the_most_recent_bars_oldest_first() {
        let mut h = BarHistory::new(3);
        (0..5).for_each(|i| h.record(&bar(i)));
        let closes: Vec<f64> = h.last(1, 60, 10).iter().map(|b| b.close).collect();
        assert_eq!(closes, vec![2.0, 3.0, 4.0]);
        assert_eq!(h.last(1, 60, 2).len(), 2);
        assert!(h.last(2, 60, 2).is_empty());
    }
}
