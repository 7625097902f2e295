//! The paper broker: fills working orders against the *next* bar of their
//! instrument, never the bar that produced the intent (no look-ahead).
//!
//! Fill rules, per bar of the order's instrument starting at or after the
//! order was placed (`hs` is half the spread, paid on every fill):
//! - market: at the open, `open + hs` for buys, `open - hs` for sells;
//! - limit buy at L: if `low <= L`, at `min(open, L)`; limit sell: if `high >= L`, at `max(open, L)`;
//! - stop buy at S: if `high >= S`, at `max(open, S) + hs`; stop sell: if `low <= S`, at `min(open, S) - hs`;
//! - IOC orders not filled on their first bar expire; day orders expire at the
//!   first bar of a later UTC day;
//! - protective levels (from stop policies) are checked after orders, stop
//!   before take-profit when a bar touches both (the conservative order);
//! - commission: `commission_bps` of the notional.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::execution::OrderEvent;
use crate::market::NANOS_PER_SEC;
use crate::runtime::bindings::{
    Bar, Fill, InstrumentId, Intent, OrderStatus, OrderType, OrderView, Side, StopLevels, TimeInForce, Timestamp,
};
use crate::world::SharedWorld;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Full bid/ask spread, in basis points of the price.
    pub spread_bps: f64,
    pub commission_bps: f64,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self { spread_bps: 2.0, commission_bps: 0.5 }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct BrokerStats {
    pub orders: u64,
    pub fills: u64,
    pub cancels: u64,
    pub expired: u64,
    pub protective_exits: u64,
}

#[derive(Debug, Clone)]
struct WorkingOrder {
    owner: Arc<str>,
    view: OrderView,
    time_in_force: TimeInForce,
    placed_at: Timestamp,
}

/// An order about to be placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRequest {
    pub instrument: InstrumentId,
    pub side: Side,
    pub quantity: f64,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub tag: u32,
}

/// What an intent would do, before risk has its say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    Place(OrderRequest),
    /// Cancel one order by id, or all of them (of one instrument, or all).
    Cancel(Option<u64>, Option<InstrumentId>),
    Nothing,
}

/// What a submitted intent turned into.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    Placed(u64),
    Cancelled(usize),
    /// A target already met, or a cancel of nothing.
    Nothing,
}

pub struct PaperBroker {
    config: PaperConfig,
    world: Arc<SharedWorld>,
    next_id: u64,
    /// Working orders by instrument, in the order they were placed.
    working: HashMap<InstrumentId, Vec<WorkingOrder>>,
    /// By (instrument, owner): a bar checks only its instrument's, in a stable order.
    protections: BTreeMap<(InstrumentId, Arc<str>), StopLevels>,
    /// Cancels and expiries since the last [`PaperBroker::take_events`].
    events: Vec<(u64, OrderEvent)>,
    pub stats: BrokerStats,
}

fn signed(side: Side, quantity: f64) -> f64 {
    match side {
        Side::Buy => quantity,
        Side::Sell => -quantity,
    }
}

impl PaperBroker {
    pub fn new(config: PaperConfig, world: Arc<SharedWorld>) -> Self {
        Self { config, world, next_id: 1, working: HashMap::new(), protections: BTreeMap::new(), events: Vec::new(), stats: BrokerStats::default() }
    }

    /// Turns a validated intent into orders or cancels, effective from `now`
    /// (without a risk check: [`PaperBroker::plan`] then [`PaperBroker::execute`] has one in between).
    pub fn submit(&mut self, owner: &Arc<str>, intent: &Intent, now: Timestamp) -> Submission {
        let plan = self.plan(owner, intent);
        self.execute(owner, plan, now)
    }

    /// What an intent would do: the order it would place (a target becomes
    /// the order that reaches it, counting market orders still working), or
    /// the cancels.
    pub fn plan(&self, owner: &Arc<str>, intent: &Intent) -> Plan {
        match intent {
            Intent::Order(o) => Plan::Place(OrderRequest {
                instrument: o.instrument,
                side: o.side,
                quantity: o.quantity,
                order_type: o.order_type,
                time_in_force: o.time_in_force,
                tag: o.tag,
            }),
            Intent::Target(t) => {
                let pending: f64 = self
                    .working
                    .get(&t.instrument)
                    .into_iter()
                    .flatten()
                    .filter(|w| &w.owner == owner && w.view.order_type == OrderType::Market)
                    .map(|w| signed(w.view.side, w.view.quantity))
                    .sum();
                let delta = t.quantity - self.world.ledger().quantity(owner, t.instrument) - pending;
                if delta.abs() < 1e-9 {
                    return Plan::Nothing;
                }
                let side = if delta > 0.0 { Side::Buy } else { Side::Sell };
                Plan::Place(OrderRequest { instrument: t.instrument, side, quantity: delta.abs(), order_type: OrderType::Market, time_in_force: TimeInForce::Gtc, tag: 0 })
            }
            Intent::Cancel(id) => Plan::Cancel(Some(*id), None),
            Intent::CancelAll(instrument) => Plan::Cancel(None, *instrument),
        }
    }

    /// Carries out a plan for `owner`.
    pub fn execute(&mut self, owner: &Arc<str>, plan: Plan, now: Timestamp) -> Submission {
        match plan {
            Plan::Place(o) => self.place(owner, o.instrument, o.side, o.quantity, o.order_type, o.time_in_force, o.tag, now),
            Plan::Cancel(Some(id), _) => self.cancel_where(|w| &w.owner == owner && w.view.id == id),
            Plan::Cancel(None, instrument) => self.cancel_where(|w| &w.owner == owner && instrument.is_none_or(|i| w.view.instrument == i)),
            Plan::Nothing => Submission::Nothing,
        }
    }

    /// Orders cancelled or expired since the last call, by broker id.
    pub fn take_events(&mut self) -> Vec<(u64, OrderEvent)> {
        std::mem::take(&mut self.events)
    }

    /// How many orders of `owner` are working.
    pub fn working_orders(&self, owner: &str) -> usize {
        self.working.values().flatten().filter(|w| &*w.owner == owner).count()
    }

    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        owner: &Arc<str>,
        instrument: InstrumentId,
        side: Side,
        quantity: f64,
        order_type: OrderType,
        time_in_force: TimeInForce,
        tag: u32,
        now: Timestamp,
    ) -> Submission {
        let id = self.next_id;
        self.next_id += 1;
        let view = OrderView { id, instrument, side, quantity, filled_quantity: 0.0, order_type, status: OrderStatus::Working, tag };
        self.world.ledger_mut().book_mut(owner).orders.insert(id, view);
        self.working.entry(instrument).or_default().push(WorkingOrder { owner: owner.clone(), view, time_in_force, placed_at: now });
        self.stats.orders += 1;
        Submission::Placed(id)
    }

    fn cancel_where(&mut self, pred: impl Fn(&WorkingOrder) -> bool) -> Submission {
        let mut ledger = self.world.ledger_mut();
        let mut n = 0;
        let events = &mut self.events;
        for orders in self.working.values_mut() {
            orders.retain(|w| {
                let cancel = pred(w);
                if cancel {
                    ledger.book_mut(&w.owner).orders.remove(&w.view.id);
                    events.push((w.view.id, OrderEvent::Cancelled));
                    n += 1;
                }
                !cancel
            });
        }
        self.working.retain(|_, orders| !orders.is_empty());
        self.stats.cancels += n as u64;
        if n == 0 { Submission::Nothing } else { Submission::Cancelled(n) }
    }

    /// Cancels every working order of `owner`; returns how many.
    pub fn cancel_all(&mut self, owner: &str) -> usize {
        self.protections.retain(|(_, o), _| &**o != owner);
        match self.cancel_where(|w| &*w.owner == owner) {
            Submission::Cancelled(n) => n,
            _ => 0,
        }
    }

    /// Sets (or, with both levels `None`, removes) protection for `owner`'s position.
    pub fn protect(&mut self, owner: &Arc<str>, levels: StopLevels) {
        let key = (levels.instrument, owner.clone());
        if levels.stop_loss.is_none() && levels.take_profit.is_none() {
            self.protections.remove(&key);
        } else {
            self.protections.insert(key, levels);
        }
    }

    fn fee(&self, quantity: f64, price: f64) -> f64 {
        quantity * price * self.config.commission_bps * 1e-4
    }

    /// Fills what `bar` allows; returns the fills by owner. Marks positions at the close.
    pub fn on_bar(&mut self, bar: &Bar) -> Vec<(Arc<str>, Fill)> {
        let hs = 0.5 * self.config.spread_bps * 1e-4 * bar.open;
        let day = |t: Timestamp| t.div_euclid(86_400 * NANOS_PER_SEC);
        let mut fills = Vec::new();
        let mut remaining = Vec::new();
        for w in self.working.remove(&bar.instrument).unwrap_or_default() {
            if w.placed_at > bar.start {
                remaining.push(w);
                continue;
            }
            let buy = w.view.side == Side::Buy;
            let price = match w.view.order_type {
                OrderType::Market => Some(if buy { bar.open + hs } else { bar.open - hs }),
                OrderType::Limit(l) if buy => (bar.low <= l).then(|| bar.open.min(l)),
                OrderType::Limit(l) => (bar.high >= l).then(|| bar.open.max(l)),
                OrderType::Stop(s) if buy => (bar.high >= s).then(|| bar.open.max(s) + hs),
                OrderType::Stop(s) => (bar.low <= s).then(|| bar.open.min(s) - hs),
            };
            match price {
                Some(price) => {
                    let qty = w.view.quantity - w.view.filled_quantity;
                    let fill = Fill { order_id: w.view.id, instrument: bar.instrument, time: bar.start, side: w.view.side, quantity: qty, price, fee: self.fee(qty, price) };
                    let mut ledger = self.world.ledger_mut();
                    ledger.apply_fill(&w.owner, bar.instrument, signed(w.view.side, qty), price, fill.fee);
                    ledger.book_mut(&w.owner).orders.remove(&w.view.id);
                    self.stats.fills += 1;
                    fills.push((w.owner, fill));
                }
                None if w.time_in_force == TimeInForce::Ioc
                    || (w.time_in_force == TimeInForce::Day && day(bar.start) > day(w.placed_at)) =>
                {
                    self.world.ledger_mut().book_mut(&w.owner).orders.remove(&w.view.id);
                    self.events.push((w.view.id, OrderEvent::Expired));
                    self.stats.expired += 1;
                }
                None => remaining.push(w),
            }
        }
        if !remaining.is_empty() {
            self.working.insert(bar.instrument, remaining);
        }
        self.check_protections(bar, hs, &mut fills);
        self.world.ledger_mut().mark(bar.instrument, bar.close);
        fills
    }

    fn check_protections(&mut self, bar: &Bar, hs: f64, fills: &mut Vec<(Arc<str>, Fill)>) {
        let mut triggered = Vec::new();
        let first: (InstrumentId, Arc<str>) = (bar.instrument, Arc::from(""));
        for ((instrument, owner), levels) in self.protections.range(first..).take_while(|((i, _), _)| *i == bar.instrument) {
            let qty = self.world.ledger().quantity(owner, *instrument);
            if qty == 0.0 {
                triggered.push((owner.clone(), *instrument, None));
                continue;
            }
            let long = qty > 0.0;
            let stop_hit = levels.stop_loss.filter(|&s| if long { bar.low <= s } else { bar.high >= s });
            let target_hit = levels.take_profit.filter(|&t| if long { bar.high >= t } else { bar.low <= t });
            let price = match (stop_hit, target_hit) {
                (Some(s), _) => Some(if long { bar.open.min(s) - hs } else { bar.open.max(s) + hs }),
                (None, Some(t)) => Some(if long { bar.open.max(t) - hs } else { bar.open.min(t) + hs }),
                _ => None,
            };
            triggered.push((owner.clone(), *instrument, price.map(|p| (p, qty))));
        }
        for (owner, instrument, hit) in triggered {
            let Some((price, qty)) = hit else {
                self.protections.remove(&(instrument, owner));
                continue;
            };
            self.protections.remove(&(instrument, owner.clone()));
            let id = self.next_id;
            self.next_id += 1;
            let side = if qty > 0.0 { Side::Sell } else { Side::Buy };
            let fill = Fill { order_id: id, instrument, time: bar.start, side, quantity: qty.abs(), price, fee: self.fee(qty.abs(), price) };
            self.world.ledger_mut().apply_fill(&owner, instrument, -qty, price, fill.fee);
            self.stats.fills += 1;
            self.stats.protective_exits += 1;
            fills.push((owner, fill));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::TargetPosition;

    fn bar(start: i64, open: f64, high: f64, low: f64, close: f64) -> Bar {
        Bar { instrument: 0, start, period_secs: 60, open, high, low, close, volume: 0.0 }
    }

    fn broker() -> (PaperBroker, Arc<SharedWorld>, Arc<str>) {
        let world = Arc::new(SharedWorld::new(16));
        (PaperBroker::new(PaperConfig { spread_bps: 0.0, commission_bps: 0.0 }, world.clone()), world, Arc::from("p"))
    }

    #[test]
    fn a_target_fills_at_the_next_open_and_is_not_ordered_twice() {
        let (mut b, world, p) = broker();
        let target = Intent::Target(TargetPosition { instrument: 0, quantity: 10.0 });
        assert_eq!(b.submit(&p, &target, 100), Submission::Placed(1));
        assert_eq!(b.submit(&p, &target, 100), Submission::Nothing, "pending order counts toward the target");
        assert!(b.on_bar(&bar(50, 1.0, 1.0, 1.0, 1.0)).is_empty(), "a bar that started before the order cannot fill it");
        let fills = b.on_bar(&bar(100, 20.0, 22.0, 19.0, 21.0));
        assert_eq!(fills.len(), 1);
        assert_eq!((fills[0].1.price, fills[0].1.quantity), (20.0, 10.0));
        let pos = world.ledger().position("p", 0).unwrap();
        assert_eq!((pos.quantity, pos.unrealised_pnl), (10.0, 10.0));
        assert_eq!(b.submit(&p, &target, 200), Submission::Nothing, "target met");
    }

    #[test]
    fn limits_stops_and_protection_follow_the_documented_rules() {
        let (mut b, world, p) = broker();
        b.submit(&p, &Intent::Order(crate::runtime::bindings::OrderIntent {
            instrument: 0, side: Side::Buy, quantity: 5.0, order_type: OrderType::Limit(9.0), time_in_force: TimeInForce::Gtc, tag: 7,
        }), 0);
        assert!(b.on_bar(&bar(0, 10.0, 10.5, 9.5, 10.0)).is_empty(), "low 9.5 never reached 9");
        assert_eq!(world.ledger().open_orders("p").len(), 1);
        let fills = b.on_bar(&bar(60, 9.5, 9.8, 8.5, 9.0));
        assert_eq!(fills[0].1.price, 9.0, "limit price, not the better low");
        b.protect(&p, StopLevels { instrument: 0, stop_loss: Some(8.0), take_profit: Some(12.0) });
        let fills = b.on_bar(&bar(120, 9.0, 12.5, 7.5, 10.0));
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].1.price, 8.0, "stop before take-profit when both are touched");
        assert_eq!(world.ledger().quantity("p", 0), 0.0);
        assert_eq!(b.stats.protective_exits, 1);
    }
}
