//! Positions and working orders per plugin, booked with the SDK's netting
//! rules; plugins read their own book through the `portfolio` import.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use stratbox_sdk::accounting::NetPosition;

use stratbox_contract::{InstrumentId, OrderView, Position};

/// One plugin's positions (with their last mark) and working orders.
#[derive(Debug, Default, Clone)]
pub struct Book {
    pub positions: BTreeMap<InstrumentId, (NetPosition, f64)>,
    pub orders: BTreeMap<u64, OrderView>,
}

/// Totals of one book, for status lines and the control API.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq)]
pub struct BookSummary {
    pub realised_pnl: f64,
    pub unrealised_pnl: f64,
    pub gross_exposure: f64,
    pub open_positions: usize,
    pub working_orders: usize,
}

/// Books in name order: totals summed over them, and everything listed
/// from them, come out the same in every process (a seed replays exactly).
#[derive(Debug, Default)]
pub struct Ledger {
    books: BTreeMap<Arc<str>, Book>,
}

fn view(instrument: InstrumentId, p: &NetPosition, mark: f64) -> Position {
    Position {
        instrument,
        quantity: p.quantity,
        average_price: p.average_price,
        realised_pnl: p.realised_pnl,
        unrealised_pnl: p.unrealised(mark),
    }
}

impl Ledger {
    pub fn book(&self, plugin: &str) -> Option<&Book> {
        self.books.get(plugin)
    }

    pub fn book_mut(&mut self, plugin: &Arc<str>) -> &mut Book {
        self.books.entry(plugin.clone()).or_default()
    }

    /// Open (non-flat) positions of `plugin`.
    pub fn positions(&self, plugin: &str) -> Vec<Position> {
        self.book(plugin)
            .map(|b| b.positions.iter().filter(|(_, (p, _))| p.quantity != 0.0).map(|(&i, (p, m))| view(i, p, *m)).collect())
            .unwrap_or_default()
    }

    pub fn position(&self, plugin: &str, instrument: InstrumentId) -> Option<Position> {
        let (p, m) = self.book(plugin)?.positions.get(&instrument)?;
        (p.quantity != 0.0).then(|| view(instrument, p, *m))
    }

    /// Every plugin with a book (loaded now or not).
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<str>> {
        self.books.keys()
    }

    /// The account's net position per instrument, over every plugin (flat ones left out).
    pub fn net_positions(&self) -> std::collections::HashMap<InstrumentId, f64> {
        let mut net = std::collections::HashMap::new();
        for book in self.books.values() {
            for (&i, (p, _)) in &book.positions {
                *net.entry(i).or_insert(0.0) += p.quantity;
            }
        }
        net.retain(|_, q: &mut f64| q.abs() > 1e-9);
        net
    }

    /// Where the account's net positions (over every plugin) differ from
    /// `other`'s (a broker's, by instrument) by more than `tolerance`, in
    /// instrument order: (instrument, ours, theirs).
    pub fn net_differences(&self, other: &[(InstrumentId, f64)], tolerance: f64) -> Vec<(InstrumentId, f64, f64)> {
        let mut theirs: HashMap<InstrumentId, f64> = HashMap::new();
        for &(i, q) in other {
            *theirs.entry(i).or_default() += q;
        }
        let ours = self.net_positions();
        let mut instruments: Vec<InstrumentId> = theirs.keys().chain(ours.keys()).copied().collect();
        instruments.sort_unstable();
        instruments.dedup();
        instruments
            .into_iter()
            .map(|i| (i, ours.get(&i).copied().unwrap_or(0.0), theirs.get(&i).copied().unwrap_or(0.0)))
            .filter(|(_, o, t)| (t - o).abs() > tolerance)
            .collect()
    }

    /// Each plugin's signed position in `instrument` (flat ones included).
    pub fn net_by_plugin(&self, instrument: InstrumentId) -> Vec<(Arc<str>, f64)> {
        self.books.iter().filter_map(|(name, b)| b.positions.get(&instrument).map(|(p, _)| (name.clone(), p.quantity))).collect()
    }

    /// Signed quantity held (0 when flat or unknown).
    pub fn quantity(&self, plugin: &str, instrument: InstrumentId) -> f64 {
        self.book(plugin).and_then(|b| b.positions.get(&instrument)).map_or(0.0, |(p, _)| p.quantity)
    }

    pub fn open_orders(&self, plugin: &str) -> Vec<OrderView> {
        self.book(plugin).map(|b| b.orders.values().cloned().collect()).unwrap_or_default()
    }

    /// Books a fill for `plugin`.
    /// Books a fill of `qty` of `order` (whose view already counts it): the position, and the
    /// order's view in the book (gone when complete, partially filled otherwise). `true` when complete.
    pub fn fill_order(&mut self, plugin: &Arc<str>, order: &OrderView, qty: f64, price: f64, fee: f64) -> bool {
        self.apply_fill(plugin, order.instrument, super::signed(order.side, qty), price, fee);
        let book = self.book_mut(plugin);
        let done = order.filled_quantity >= order.quantity - 1e-9;
        if done {
            book.orders.remove(&order.id);
        } else if let Some(v) = book.orders.get_mut(&order.id) {
            v.filled_quantity = order.filled_quantity;
            v.status = stratbox_contract::OrderStatus::PartiallyFilled;
        }
        done
    }

    pub fn apply_fill(&mut self, plugin: &Arc<str>, instrument: InstrumentId, signed_quantity: f64, price: f64, fee: f64) {
        let (p, mark) = self.book_mut(plugin).positions.entry(instrument).or_insert((NetPosition::default(), price));
        p.apply_fill(signed_quantity, price, fee);
        *mark = price;
    }

    /// Charges `fraction` of every open position's notional (at its mark)
    /// to its realised P&L; returns each charge.
    pub fn charge_financing(&mut self, fraction: f64) -> Vec<(Arc<str>, InstrumentId, f64)> {
        let mut charges = Vec::new();
        for (plugin, book) in &mut self.books {
            for (instrument, (p, mark)) in &mut book.positions {
                let cost = (p.quantity * *mark).abs() * fraction;
                if cost > 0.0 {
                    p.realised_pnl -= cost;
                    charges.push((plugin.clone(), *instrument, cost));
                }
            }
        }
        charges
    }

    /// Charges `amount` to one position's realised P&L (a journaled financing charge).
    pub fn charge(&mut self, plugin: &Arc<str>, instrument: InstrumentId, amount: f64) {
        let (p, _) = self.book_mut(plugin).positions.entry(instrument).or_default();
        p.realised_pnl -= amount;
    }

    /// Marks every position in `instrument` at `price`.
    pub fn mark(&mut self, instrument: InstrumentId, price: f64) {
        for book in self.books.values_mut() {
            if let Some((_, mark)) = book.positions.get_mut(&instrument) {
                *mark = price;
            }
        }
    }

    /// Every plugin with an open position in `instrument`, with the position.
    pub fn holders(&self, instrument: InstrumentId) -> Vec<(Arc<str>, Position)> {
        self.books
            .iter()
            .filter_map(|(name, b)| {
                let (p, m) = b.positions.get(&instrument)?;
                (p.quantity != 0.0).then(|| (name.clone(), view(instrument, p, *m)))
            })
            .collect()
    }

    pub fn summary(&self, plugin: &str) -> BookSummary {
        let Some(b) = self.book(plugin) else { return BookSummary::default() };
        let mut s = BookSummary { working_orders: b.orders.len(), ..Default::default() };
        for (p, mark) in b.positions.values() {
            s.realised_pnl += p.realised_pnl;
            s.unrealised_pnl += p.unrealised(*mark);
            s.gross_exposure += (p.quantity * mark).abs();
            s.open_positions += usize::from(p.quantity != 0.0);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fill() -> impl Strategy<Value = (f64, f64, f64)> {
        // Whole quantities (as lots are), either side; prices and fees in cents.
        let qty = (1i32..=100, any::<bool>()).prop_map(|(q, buy)| if buy { f64::from(q) } else { -f64::from(q) });
        (qty, (100u32..=100_000).prop_map(|c| f64::from(c) / 100.0), (0u32..=500).prop_map(|c| f64::from(c) / 100.0))
    }

    proptest! {
        /// Cash plus the position at the mark equals realised plus unrealised
        /// P&L (so with starting capital C, equity = C + cash + q x mark), for
        /// any sequence of fills, through zero and back.
        #[test]
        fn cash_plus_position_at_mark_equals_pnl(fills in proptest::collection::vec(fill(), 1..60), mark_cents in 100u32..=100_000) {
            let mark = f64::from(mark_cents) / 100.0;
            let mut ledger = Ledger::default();
            let p: Arc<str> = Arc::from("p");
            let mut cash = 0.0;
            for &(q, price, fee) in &fills {
                ledger.apply_fill(&p, 0, q, price, fee);
                cash += -q * price - fee;
            }
            ledger.mark(0, mark);
            let s = ledger.summary("p");
            let q = ledger.quantity("p", 0);
            let scale = fills.iter().map(|(q, p, _)| (q * p).abs()).sum::<f64>().max(1.0);
            prop_assert!(((s.realised_pnl + s.unrealised_pnl) - (cash + q * mark)).abs() <= 1e-9 * scale,
                "pnl {} vs cash + position {}", s.realised_pnl + s.unrealised_pnl, cash + q * mark);
        }

        /// A round trip realises the price difference times the size, minus
        /// both fees, long or short, and leaves nothing unrealised.
        #[test]
        fn a_round_trip_realises_the_price_difference_minus_costs((q, p1, f1) in fill(), (_, p2, f2) in fill()) {
            let mut ledger = Ledger::default();
            let p: Arc<str> = Arc::from("p");
            ledger.apply_fill(&p, 0, q, p1, f1);
            ledger.apply_fill(&p, 0, -q, p2, f2);
            let s = ledger.summary("p");
            let expected = q * (p2 - p1) - f1 - f2;
            prop_assert!((s.realised_pnl - expected).abs() < 1e-6, "{} vs {expected}", s.realised_pnl);
            prop_assert_eq!((s.unrealised_pnl, s.open_positions), (0.0, 0));
        }
    }
}
