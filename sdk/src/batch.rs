//! Columns to bars and back: the `bar-batch` record carries a cross-section
//! as one list per field, which crosses the wasm boundary as memory copies.

use crate::{Bar, BarBatch};

impl BarBatch {
    /// The columns of `bars`.
    pub fn from_bars(bars: &[Bar]) -> Self {
        Self {
            instruments: bars.iter().map(|b| b.instrument).collect(),
            starts: bars.iter().map(|b| b.start).collect(),
            period_secs: bars.iter().map(|b| b.period_secs).collect(),
            open: bars.iter().map(|b| b.open).collect(),
            high: bars.iter().map(|b| b.high).collect(),
            low: bars.iter().map(|b| b.low).collect(),
            close: bars.iter().map(|b| b.close).collect(),
            volume: bars.iter().map(|b| b.volume).collect(),
        }
    }

    /// Number of bars (the shortest column, should the host ever send ragged ones).
    pub fn len(&self) -> usize {
        [self.starts.len(), self.period_secs.len(), self.open.len(), self.high.len(), self.low.len(), self.close.len(), self.volume.len()]
            .into_iter()
            .fold(self.instruments.len(), usize::min)
    }

    /// Whether the batch holds no bar.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bars, in order.
    pub fn iter(&self) -> impl Iterator<Item = Bar> + '_ {
        (0..self.len()).map(|i| Bar {
            instrument: self.instruments[i],
            start: self.starts[i],
            period_secs: self.period_secs[i],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let bars: Vec<Bar> = (0..3)
            .map(|i| Bar { instrument: i, start: i64::from(i) * 60, period_secs: 60, open: 1.0, high: 2.0, low: 0.5, close: f64::from(i), volume: 9.0 })
            .collect();
        let batch = BarBatch::from_bars(&bars);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.iter().collect::<Vec<_>>(), bars);
    }
}
