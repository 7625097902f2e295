//! Netting position accounting, shared by the host's ledger and the native
//! test harness so both book fills identically.

/// A net position: one signed quantity per instrument.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetPosition {
    /// Signed: positive long, negative short.
    pub quantity: f64,
    /// Average entry price of the open quantity (0 when flat).
    pub average_price: f64,
    /// Realised P&L, net of fees.
    pub realised_pnl: f64,
}

/// Quantities closer to zero than this are flat (floating-point residue).
pub const FLAT_EPSILON: f64 = 1e-9;

impl NetPosition {
    /// Books a fill of `signed_quantity` (positive buys) at `price`, paying `fee`.
    /// Adding to a position averages the price; reducing realises P&L against
    /// the average; crossing through zero opens the remainder at `price`.
    pub fn apply_fill(&mut self, signed_quantity: f64, price: f64, fee: f64) {
        let q = self.quantity;
        if q == 0.0 || q.signum() == signed_quantity.signum() {
            let total = q + signed_quantity;
            self.average_price = (self.average_price * q.abs() + price * signed_quantity.abs()) / total.abs();
            self.quantity = total;
        } else {
            let closed = signed_quantity.abs().min(q.abs());
            self.realised_pnl += closed * (price - self.average_price) * q.signum();
            self.quantity = q + signed_quantity;
            if self.quantity.abs() < FLAT_EPSILON {
                self.quantity = 0.0;
                self.average_price = 0.0;
            } else if self.quantity.signum() != q.signum() {
                self.average_price = price;
            }
        }
        self.realised_pnl -= fee;
    }

    /// Unrealised P&L at `mark`.
    pub fn unrealised(&self, mark: f64) -> f64 {
        self.quantity * (mark - self.average_price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_realises_price_difference_minus_fees() {
        let mut p = NetPosition::default();
        p.apply_fill(10.0, 100.0, 1.0);
        p.apply_fill(5.0, 110.0, 1.0);
        assert!((p.average_price - 103.333_333_333).abs() < 1e-6);
        p.apply_fill(-15.0, 120.0, 1.0);
        assert_eq!(p.quantity, 0.0);
        assert!((p.realised_pnl - (15.0 * (120.0 - 310.0 / 3.0) - 3.0)).abs() < 1e-9);
    }

    #[test]
    fn crossing_zero_opens_the_remainder_at_the_fill_price() {
        let mut p = NetPosition::default();
        p.apply_fill(10.0, 100.0, 0.0);
        p.apply_fill(-15.0, 90.0, 0.0);
        assert_eq!((p.quantity, p.average_price, p.realised_pnl), (-5.0, 90.0, -100.0));
        assert_eq!(p.unrealised(80.0), 50.0);
    }
}
