//! The checker's own model of the journal, and the invariants.
//!
//! It reads only what the order path committed to the journal and what the
//! broker holds itself (never the host's view of the broker), so a bug in
//! the host's bookkeeping shows as a difference between the two.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use stratbox_trading::{Entry, JournalEvent, OrderKind, SideName, TifName};

/// The invariants, numbered as ARCHITECTURE.md's order-path section lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// 1. With nothing in flight, the journal's positions and working orders are the broker's, per book.
    BooksMatch,
    /// 2. No client order id (or broker id) is used twice; every fill is of a journaled order, within its size.
    UniqueIds,
    /// 3. Reduce-only and halted never increase a book's worst-case position; no accepted order passes a cap.
    NoNewRisk,
    /// 4. Flatten leaves every position covered by exits alone, and ends flat within a bounded number of steps.
    FlattenCloses,
    /// 5. Every trading-state cause, risk baseline and de-leveraging plan durable before a crash holds after the restart.
    StatesSurvive,
    /// 6. What the order path keeps in memory stays within its bounds.
    Bounded,
    /// 7. The protective levels of an open position stay until its policy changes them or a bar reaches them.
    ProtectionsKept,
}

impl Invariant {
    pub const ALL: [Invariant; 7] = [Self::BooksMatch, Self::UniqueIds, Self::NoNewRisk, Self::FlattenCloses, Self::StatesSurvive, Self::Bounded, Self::ProtectionsKept];

    pub fn name(self) -> &'static str {
        match self {
            Self::BooksMatch => "books-match",
            Self::UniqueIds => "unique-ids",
            Self::NoNewRisk => "no-new-risk",
            Self::FlattenCloses => "flatten-closes",
            Self::StatesSurvive => "states-survive",
            Self::Bounded => "bounded",
            Self::ProtectionsKept => "protections-kept",
        }
    }
}

/// An invariant that did not hold, at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub step: usize,
    pub invariant: Invariant,
    pub message: String,
}

#[derive(Debug, Clone)]
struct OrderRec {
    plugin: String,
    instrument: u32,
    buy: bool,
    quantity: f64,
    filled: f64,
    broker_id: Option<u64>,
    done: bool,
    /// A market order, or an IOC one (it never rests at Capital.com).
    market: bool,
    /// Capital.com's names for it, once journaled.
    reference: Option<String>,
    deal_id: bool,
    /// Risk accepted it (so it may reach the broker).
    accepted: bool,
}

/// What the committed journal says: orders, ids and positions.
#[derive(Debug, Default)]
pub struct JournalModel {
    /// The next sequence number to read.
    pub next_seq: u64,
    orders: HashMap<String, OrderRec>,
    /// Broker id -> client id.
    broker_ids: HashMap<u64, String>,
    /// (book, instrument) -> signed position.
    pub positions: BTreeMap<(String, u32), f64>,
    /// Orders not final that the broker acknowledged: client ids.
    open: BTreeSet<String>,
    max_order_quantity: f64,
    max_order_notional: f64,
    /// Decision prices of orders, for the notional cap.
    decided: HashMap<String, f64>,
    /// Deal reference -> client id (Capital.com).
    pub references: HashMap<String, String>,
    /// Fills journaled (a hedged close is a fill under a reference of its own).
    pub fills: usize,
}

impl JournalModel {
    pub fn new(max_order_quantity: f64, max_order_notional: f64) -> Self {
        Self { max_order_quantity, max_order_notional, ..Self::default() }
    }

    /// Applies committed entries in order; the first broken rule is returned.
    pub fn apply(&mut self, entries: &[Entry]) -> Result<(), (Invariant, String)> {
        for e in entries {
            if e.seq != self.next_seq {
                return Err((Invariant::UniqueIds, format!("journal entry {} follows {}: a gap or a repeat", e.seq, self.next_seq.wrapping_sub(1))));
            }
            self.next_seq += 1;
            match &e.event {
                JournalEvent::Order { client_id, plugin, instrument, side, quantity, decision_price, order_type, time_in_force, .. } => {
                    if let Some(p) = decision_price {
                        self.decided.insert(client_id.clone(), *p);
                    }
                    if self.orders.contains_key(client_id) {
                        return Err((Invariant::UniqueIds, format!("client order id {client_id} journaled twice (entry {})", e.seq)));
                    }
                    let market = *order_type == OrderKind::Market || *time_in_force == TifName::Ioc;
                    let rec = OrderRec {
                        plugin: plugin.clone(),
                        instrument: *instrument,
                        buy: *side == SideName::Buy,
                        quantity: *quantity,
                        filled: 0.0,
                        broker_id: None,
                        done: false,
                        market,
                        reference: None,
                        deal_id: false,
                        accepted: false,
                    };
                    self.orders.insert(client_id.clone(), rec);
                }
                JournalEvent::Risk { client_id, accepted, reason } => {
                    let o = self.order(client_id, e.seq)?;
                    // Orders the path checked (adopted positions and the broker's own stop fills carry a reason).
                    let checked = reason.as_deref().is_none_or(|r| r == stratbox_trading::EXIT_ACCEPTED);
                    if *accepted && checked && o.quantity > self.max_order_quantity + 1e-9 {
                        return Err((Invariant::NoNewRisk, format!("order {client_id} of {} passed the order-quantity cap {}", o.quantity, self.max_order_quantity)));
                    }
                    // A new order (not an exit, which is sized by the position) within the notional cap at its price.
                    let quantity = o.quantity;
                    let notional = self.decided.remove(client_id).map(|p| p * quantity);
                    if *accepted && reason.is_none() && notional.is_some_and(|n| n > self.max_order_notional + 1e-6) {
                        return Err((Invariant::NoNewRisk, format!("order {client_id} of notional {notional:?} passed the order-notional cap {}", self.max_order_notional)));
                    }
                    if !accepted {
                        self.order_mut(client_id).done = true;
                    } else {
                        self.order_mut(client_id).accepted = true;
                    }
                }
                JournalEvent::Sent { client_id, broker_id } | JournalEvent::Acknowledged { client_id, broker_id } => {
                    if let Some(other) = self.broker_ids.get(broker_id).filter(|c| *c != client_id) {
                        return Err((Invariant::UniqueIds, format!("broker id {broker_id} given to {client_id} and to {other}")));
                    }
                    self.order(client_id, e.seq)?;
                    self.broker_ids.insert(*broker_id, client_id.clone());
                    let o = self.order_mut(client_id);
                    if o.broker_id.is_some_and(|b| b != *broker_id) {
                        return Err((Invariant::UniqueIds, format!("order {client_id} reached the broker twice (ids {:?} and {broker_id})", o.broker_id)));
                    }
                    o.broker_id = Some(*broker_id);
                    if !o.done && o.filled < o.quantity - 1e-9 {
                        self.open.insert(client_id.clone());
                    }
                }
                JournalEvent::Fill { client_id, plugin, instrument, side, quantity, .. } => {
                    let o = self.order(client_id, e.seq)?;
                    if o.done && o.filled >= o.quantity - 1e-9 {
                        return Err((Invariant::UniqueIds, format!("a fill of {quantity} for {client_id}, which was already filled")));
                    }
                    if o.filled + quantity > o.quantity + 1e-6 {
                        return Err((Invariant::UniqueIds, format!("{client_id} filled {} of {}", o.filled + quantity, o.quantity)));
                    }
                    if o.plugin != *plugin || o.instrument != *instrument || o.buy != (*side == SideName::Buy) {
                        return Err((Invariant::UniqueIds, format!("a fill of {client_id} for another book, instrument or side than the order's")));
                    }
                    self.fills += 1;
                    let signed = if *side == SideName::Buy { *quantity } else { -quantity };
                    *self.positions.entry((plugin.clone(), *instrument)).or_default() += signed;
                    let o = self.order_mut(client_id);
                    o.filled += quantity;
                    if o.filled >= o.quantity - 1e-9 {
                        o.done = true;
                        self.open.remove(client_id);
                    }
                }
                JournalEvent::BrokerRef { client_id, deal_reference, deal_id } => {
                    self.order(client_id, e.seq)?;
                    if let Some(r) = deal_reference {
                        if let Some(other) = self.references.get(r).filter(|c| *c != client_id) {
                            return Err((Invariant::UniqueIds, format!("deal reference {r} journaled for {client_id} and for {other}")));
                        }
                        self.references.insert(r.clone(), client_id.clone());
                        let o = self.order_mut(client_id);
                        if o.reference.as_ref().is_some_and(|x| x != r) {
                            return Err((Invariant::UniqueIds, format!("order {client_id} reached the broker twice (references {:?} and {r})", o.reference)));
                        }
                        o.reference = Some(r.clone());
                    }
                    if deal_id.is_some() {
                        self.order_mut(client_id).deal_id = true;
                    }
                }
                JournalEvent::Cancelled { client_id } | JournalEvent::Expired { client_id } | JournalEvent::BrokerRejected { client_id, .. } => {
                    self.order(client_id, e.seq)?;
                    self.order_mut(client_id).done = true;
                    self.open.remove(client_id);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn order(&self, client_id: &str, seq: u64) -> Result<&OrderRec, (Invariant, String)> {
        self.orders.get(client_id).ok_or_else(|| (Invariant::UniqueIds, format!("entry {seq} names {client_id}, which no order entry created")))
    }

    fn order_mut(&mut self, client_id: &str) -> &mut OrderRec {
        self.orders.get_mut(client_id).expect("checked by order()")
    }

    /// Working orders by the journal: (book, broker id, instrument, signed quantity left).
    pub fn working(&self) -> Vec<(String, u64, u32, f64)> {
        let mut out: Vec<_> = self
            .open
            .iter()
            .filter_map(|c| {
                let o = &self.orders[c];
                let left = o.quantity - o.filled;
                Some((o.plugin.clone(), o.broker_id?, o.instrument, if o.buy { left } else { -left }))
            })
            .collect();
        out.sort_by_key(|w| w.1);
        out
    }

    /// Orders not final (acknowledged or not).
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }

    /// Orders risk accepted that are not final, with their signed quantity left.
    fn live(&self) -> impl Iterator<Item = (&OrderRec, f64)> {
        self.orders.values().filter(|o| o.accepted && !o.done).map(|o| {
            let left = o.quantity - o.filled;
            (o, if o.buy { left } else { -left })
        })
    }

    /// Orders risk accepted that are not final, as (book, instrument, signed quantity left).
    pub fn pending(&self) -> Vec<(String, u32, f64)> {
        let mut out: Vec<_> = self.live().map(|(o, left)| (o.plugin.clone(), o.instrument, left)).collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)).then(a.2.total_cmp(&b.2)));
        out
    }

    /// Whether every order not final rests at Capital.com under a known
    /// reference and deal id (nothing is on its way, nothing awaits a confirm).
    pub fn at_rest(&self) -> bool {
        self.live().all(|(o, _)| !o.market && o.broker_id.is_some() && o.reference.is_some() && o.deal_id)
    }

    /// Resting orders by their deal reference: (reference, instrument, signed quantity left).
    pub fn resting(&self) -> Vec<(String, u32, f64)> {
        let mut out: Vec<_> = self.live().filter_map(|(o, left)| Some((o.reference.clone()?, o.instrument, left))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
