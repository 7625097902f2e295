//! Statistics of closed trades (round trips).
//!
//! A round trip opens from flat and ends flat again; its P&L is net of
//! fees and financing. Conventions (backtesting.py's, which the report states):
//! - a win has P&L above zero, a loss below; a trade at exactly zero is neither;
//! - profit factor = gross wins / |gross losses| (NaN without a loss);
//! - payoff ratio = mean win / |mean loss| (NaN without a win or a loss);
//! - expectancy = mean P&L per trade;
//! - SQN = sqrt(trades) x mean P&L / sample std of P&L (Van Tharp's, uncapped).

use serde::Serialize;

use crate::metrics::{mean, std};

/// One closed round trip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RoundTrip {
    /// Net of fees and financing, in the account's currency.
    pub pnl: f64,
    /// Market time, ns since the epoch.
    pub opened: i64,
    pub closed: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TradeStats {
    pub trades: usize,
    pub wins: usize,
    pub losses: usize,
    pub win_rate: f64,
    pub profit_factor: f64,
    pub payoff_ratio: f64,
    pub expectancy: f64,
    pub sqn: f64,
    pub best: f64,
    pub worst: f64,
    pub average_holding_secs: f64,
}

impl TradeStats {
    pub fn of(trips: &[RoundTrip]) -> Self {
        let nan = f64::NAN;
        let pnl: Vec<f64> = trips.iter().map(|t| t.pnl).collect();
        let wins: Vec<f64> = pnl.iter().copied().filter(|p| *p > 0.0).collect();
        let losses: Vec<f64> = pnl.iter().copied().filter(|p| *p < 0.0).collect();
        let n = pnl.len();
        let (gross_win, gross_loss) = (wins.iter().sum::<f64>(), losses.iter().sum::<f64>().abs());
        TradeStats {
            trades: n,
            wins: wins.len(),
            losses: losses.len(),
            win_rate: if n > 0 { wins.len() as f64 / n as f64 } else { nan },
            profit_factor: if losses.is_empty() { nan } else { gross_win / gross_loss },
            payoff_ratio: if wins.is_empty() || losses.is_empty() { nan } else { mean(&wins) / mean(&losses).abs() },
            expectancy: if n > 0 { mean(&pnl) } else { nan },
            sqn: if n >= 2 { (n as f64).sqrt() * mean(&pnl) / std(&pnl) } else { nan },
            best: pnl.iter().copied().fold(nan, f64::max),
            worst: pnl.iter().copied().fold(nan, f64::min),
            average_holding_secs: if n > 0 { trips.iter().map(|t| (t.closed - t.opened) as f64 / 1e9).sum::<f64>() / n as f64 } else { nan },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn a_worked_example() {
        // +300 over 2 h, -100 over 1 h, +100 over 3 h, 0 over 1 h, -200 over 5 h.
        let trips: Vec<RoundTrip> = [(300.0, 2), (-100.0, 1), (100.0, 3), (0.0, 1), (-200.0, 5)]
            .iter()
            .enumerate()
            .map(|(k, &(pnl, hours))| RoundTrip { pnl, opened: k as i64 * 10 * H, closed: k as i64 * 10 * H + hours * H })
            .collect();
        let s = TradeStats::of(&trips);
        assert_eq!((s.trades, s.wins, s.losses), (5, 2, 2), "the flat trade is neither");
        assert_eq!(s.win_rate, 0.4);
        assert_eq!(s.profit_factor, 400.0 / 300.0);
        assert_eq!(s.payoff_ratio, 200.0 / 150.0);
        assert_eq!(s.expectancy, 20.0);
        // Sample std of [300, -100, 100, 0, -200]: mean 20, squares 78,400 + 14,400 + 6,400 + 400 + 48,400 = 148,000; / 4 = 37,000.
        assert!((s.sqn - 5f64.sqrt() * 20.0 / 37_000f64.sqrt()).abs() < 1e-12, "{}", s.sqn);
        assert_eq!((s.best, s.worst), (300.0, -200.0));
        assert_eq!(s.average_holding_secs, 12.0 * 3600.0 / 5.0);
    }

    #[test]
    fn undefined_is_nan() {
        let s = TradeStats::of(&[]);
        assert!(s.win_rate.is_nan() && s.expectancy.is_nan() && s.best.is_nan());
        let winners = TradeStats::of(&[RoundTrip { pnl: 5.0, opened: 0, closed: H }, RoundTrip { pnl: 7.0, opened: H, closed: 2 * H }]);
        assert!(winners.profit_factor.is_nan() && winners.payoff_ratio.is_nan(), "no loss to divide by");
        assert_eq!(winners.win_rate, 1.0);
    }
}
