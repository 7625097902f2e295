//! The paper broker: fills working orders against the *next* quote or bar
//! of their instrument, never the event that produced the intent (no
//! look-ahead), and not before `latency_ms` of market time has passed since
//! the order was placed.
//!
//! Fill rules, per bar of the order's instrument starting at or after the
//! order became live (`hs` is half the spread, `sl` the slippage factor
//! `slippage_bps`, paid by market and stop fills, which take liquidity):
//! - market: at the open, `(open + hs)(1 + sl)` for buys, `(open - hs)(1 - sl)` for sells;
//! - limit buy at L: if `low <= L`, at `min(open, L)`; limit sell: if `high >= L`, at `max(open, L)`;
//! - stop buy at S: if `high >= S`, at `(max(open, S) + hs)(1 + sl)`; stop sell: if `low <= S`, at `(min(open, S) - hs)(1 - sl)`;
//!
//! and per quote at or after the order became live (the quote carries its own spread):
//! - market: buys at `ask (1 + sl)`, sells at `bid (1 - sl)`;
//! - limit buy at L: if `ask <= L`, at the ask; limit sell: if `bid >= L`, at the bid;
//! - stop buy at S: if `ask >= S`, at `ask (1 + sl)`; stop sell: if `bid <= S`, at `bid (1 - sl)`;
//! - at most the quoted size fills (the rest keeps working: a partial fill),
//!   unless the quote shows no size.
//!
//! With `max_volume_fraction` set, a bar fills at most that fraction of its
//! volume, orders first, then protective exits (whose level stays for the
//! rest); the rest keeps working (a liquidity cut, as the stress tests apply).
//!
//! A fill is stamped with the moment it happens: a bar fill at the bar's
//! start (the open it fills at; a bar is delivered at its end, so that is
//! earlier than the clock), a quote fill at the quote's time. The journal,
//! the reports and the plugin's `fill` all carry that time.
//!
//! Also: IOC orders not filled by their first bar or quote expire; day orders
//! expire at the first bar or quote of a later UTC day; protective levels
//! (from stop policies) are checked on bars after orders, stop before
//! take-profit when a bar touches both (the conservative order); commission
//! is `commission_bps` of the notional; financing is charged on each open
//! position's notional, `financing_bps_per_day` at every UTC day change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::signed;
use crate::execution::OrderEvent;
use stratbox_market::NANOS_PER_SEC;
use stratbox_contract::{
    Bar, Fill, InstrumentId, Intent, OrderStatus, OrderType, OrderView, Side, StopLevels, TimeInForce, Timestamp,
};
use crate::world::SharedWorld;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Full bid/ask spread assumed on bars, in basis points of the price.
    pub spread_bps: f64,
    pub commission_bps: f64,
    /// Extra price paid by fills that take liquidity (market, stop), basis points.
    pub slippage_bps: f64,
    /// Market time between placing an order and its being able to fill.
    pub latency_ms: u64,
    /// Overnight financing of open positions, basis points of the notional per day.
    pub financing_bps_per_day: f64,
    /// Liquidity on bars: an order (or a protective exit) fills at most this
    /// fraction of a bar's volume, the rest on later bars; 0 for no cap (and
    /// bars without volume are never capped). Capped fills are not rounded to lots.
    pub max_volume_fraction: f64,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self { spread_bps: 2.0, commission_bps: 0.5, slippage_bps: 0.5, latency_ms: 0, financing_bps_per_day: 0.0, max_volume_fraction: 0.0 }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct BrokerStats {
    pub orders: u64,
    pub fills: u64,
    pub cancels: u64,
    pub expired: u64,
    pub protective_exits: u64,
    pub partial_fills: u64,
    pub financing_charged: f64,
}

#[derive(Debug, Clone)]
struct WorkingOrder {
    owner: Arc<str>,
    view: OrderView,
    time_in_force: TimeInForce,
    placed_at: Timestamp,
    /// It has met its first quote or bar since becoming live (its arrival).
    arrived: bool,
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
    /// Placed and acknowledged (in process).
    Placed(u64),
    /// Queued for a remote broker: acknowledged or refused later ([`super::BrokerNote`]).
    Queued(u64),
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
    /// The UTC day financing was last charged for.
    financed_day: Option<i64>,
    /// Financing charges (plugin, instrument, amount) since the last [`PaperBroker::take_financing`].
    financing: Vec<(Arc<str>, InstrumentId, f64)>,
    /// (order id, mid) of orders that met the market since the last `take_arrivals`: the
    /// first quote's mid, or the first bar's open, once the order is live.
    pub(super) arrivals: Vec<(u64, f64)>,
    pub stats: BrokerStats,
}

/// An order that did not fill at `now` ends: IOC at once, a day order on a later UTC day.
fn expires_unfilled(w: &WorkingOrder, now: Timestamp) -> bool {
    let day = |t: Timestamp| t.div_euclid(86_400 * NANOS_PER_SEC);
    w.time_in_force == TimeInForce::Ioc || (w.time_in_force == TimeInForce::Day && day(now) > day(w.placed_at))
}

impl PaperBroker {
    pub fn new(config: PaperConfig, world: Arc<SharedWorld>) -> Self {
        Self { config, world, next_id: 1, working: HashMap::new(), protections: BTreeMap::new(), events: Vec::new(), financed_day: None, financing: Vec::new(), arrivals: Vec::new(), stats: BrokerStats::default() }
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
                    // What is still to fill: the filled part is already in the position.
                    .map(|w| signed(w.view.side, w.view.quantity - w.view.filled_quantity))
                    .sum();
                super::order_for_target(t.quantity, self.world.ledger().quantity(owner, t.instrument), pending, t.instrument)
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

    /// Financing charged since the last call: (plugin, instrument, amount), for the journal.
    pub fn take_financing(&mut self) -> Vec<(Arc<str>, InstrumentId, f64)> {
        std::mem::take(&mut self.financing)
    }

    /// Puts back an order that was working before a restart (from the journal),
    /// with its id; later ids follow on from it.
    pub fn restore(&mut self, o: &crate::execution::Restored) {
        let view = o.view();
        self.world.ledger_mut().book_mut(&o.plugin).orders.insert(o.broker_id, view);
        self.working.entry(o.instrument).or_default().push(WorkingOrder { owner: o.plugin.clone(), view, time_in_force: o.time_in_force, placed_at: o.placed_at, arrived: true });
        self.next_id = self.next_id.max(o.broker_id + 1);
    }

    /// Makes the next order id at least `id` (after a restart).
    pub fn reserve_ids_below(&mut self, id: u64) {
        self.next_id = self.next_id.max(id);
    }

    /// Orders cancelled or expired since the last call, by broker id.
    pub fn take_events(&mut self) -> Vec<(u64, OrderEvent)> {
        std::mem::take(&mut self.events)
    }

    /// How many orders of `owner` are working.
    pub fn working_orders(&self, owner: &str) -> usize {
        self.working.values().flatten().filter(|w| &*w.owner == owner).count()
    }

    /// Every working order with its owner, in id order: the broker's own
    /// book, which the order-path simulation compares with the journal's.
    pub fn working(&self) -> Vec<(Arc<str>, OrderView)> {
        let mut all: Vec<(Arc<str>, OrderView)> = self.working.values().flatten().map(|w| (w.owner.clone(), w.view)).collect();
        all.sort_by_key(|(_, v)| v.id);
        all
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
        self.working.entry(instrument).or_default().push(WorkingOrder { owner: owner.clone(), view, time_in_force, placed_at: now, arrived: false });
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
        // In the order they were placed, whatever the map's order (a seed replays exactly).
        let from = self.events.len() - n;
        self.events[from..].sort_by_key(|(id, _)| *id);
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

    /// The protective levels in force, by owner.
    pub fn protections(&self) -> Vec<(Arc<str>, StopLevels)> {
        self.protections.iter().map(|((_, owner), levels)| (owner.clone(), *levels)).collect()
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

    /// When an order placed at `placed_at` can first fill.
    fn live_from(&self, placed_at: Timestamp) -> Timestamp {
        placed_at.saturating_add(stratbox_contract::util::ms_to_nanos(self.config.latency_ms))
    }

    /// Financing of every open position at each UTC day change (positions at their marks).
    fn finance(&mut self, now: Timestamp) {
        let day = now.div_euclid(86_400 * NANOS_PER_SEC);
        let last = self.financed_day.replace(day);
        if self.config.financing_bps_per_day <= 0.0 || last.is_none_or(|d| d >= day) {
            return;
        }
        let days = (day - last.expect("checked")) as f64;
        let charges = self.world.ledger_mut().charge_financing(self.config.financing_bps_per_day * 1e-4 * days);
        self.stats.financing_charged += charges.iter().map(|c| c.2).sum::<f64>();
        self.financing.extend(charges);
    }

    /// Fills what `quote` allows (see the module docs); returns the fills by owner.
    pub fn on_quote(&mut self, quote: &stratbox_contract::Quote) -> Vec<(Arc<str>, Fill)> {
        self.finance(quote.time);
        let sl = self.config.slippage_bps * 1e-4;
        let mut fills = Vec::new();
        let mut remaining = Vec::new();
        for mut w in self.working.remove(&quote.instrument).unwrap_or_default() {
            if self.live_from(w.placed_at) > quote.time {
                remaining.push(w);
                continue;
            }
            self.arrive(&mut w, 0.5 * (quote.bid + quote.ask));
            let buy = w.view.side == Side::Buy;
            let (price, shown) = if buy { (quote.ask, quote.ask_size) } else { (quote.bid, quote.bid_size) };
            let taker = |p: f64| if buy { p * (1.0 + sl) } else { p * (1.0 - sl) };
            let fill_price = match w.view.order_type {
                OrderType::Market => Some(taker(price)),
                kind @ OrderType::Limit(_) => super::reached(kind, buy, price).then_some(price),
                kind @ OrderType::Stop(_) => super::reached(kind, buy, price).then(|| taker(price)),
            };
            let left = w.view.quantity - w.view.filled_quantity;
            match fill_price {
                Some(p) if price > 0.0 => {
                    let qty = if shown > 0.0 { left.min(shown) } else { left };
                    fills.push((w.owner.clone(), self.book_fill(&mut w, quote.instrument, quote.time, qty, p)));
                    if w.view.filled_quantity < w.view.quantity - 1e-9 {
                        self.stats.partial_fills += 1;
                        if w.time_in_force == TimeInForce::Ioc {
                            self.expire(&w);
                        } else {
                            remaining.push(w);
                        }
                    }
                }
                _ if expires_unfilled(&w, quote.time) => self.expire(&w),
                _ => remaining.push(w),
            }
        }
        if !remaining.is_empty() {
            self.working.insert(quote.instrument, remaining);
        }
        self.world.ledger_mut().mark(quote.instrument, 0.5 * (quote.bid + quote.ask));
        fills
    }

    /// Books `qty` of `w` at `price`: ledger, the order's view, stats. Returns the fill.
    fn book_fill(&mut self, w: &mut WorkingOrder, instrument: InstrumentId, time: Timestamp, qty: f64, price: f64) -> Fill {
        let fill = Fill { order_id: w.view.id, instrument, time, side: w.view.side, quantity: qty, price, fee: self.fee(qty, price) };
        w.view.filled_quantity += qty;
        self.world.ledger_mut().fill_order(&w.owner, &w.view, qty, price, fill.fee);
        self.stats.fills += 1;
        fill
    }

    /// The first market `w` meets once live is its arrival, at `mid`.
    fn arrive(&mut self, w: &mut WorkingOrder, mid: f64) {
        if !w.arrived {
            w.arrived = true;
            self.arrivals.push((w.view.id, mid));
        }
    }

    fn expire(&mut self, w: &WorkingOrder) {
        self.world.ledger_mut().book_mut(&w.owner).orders.remove(&w.view.id);
        self.events.push((w.view.id, OrderEvent::Expired));
        self.stats.expired += 1;
    }

    /// Fills what `bar` allows; returns the fills by owner. Marks positions at the close.
    pub fn on_bar(&mut self, bar: &Bar) -> Vec<(Arc<str>, Fill)> {
        self.finance(bar.start);
        let hs = 0.5 * self.config.spread_bps * 1e-4 * bar.open;
        let sl = self.config.slippage_bps * 1e-4;
        let mut fills = Vec::new();
        let mut remaining = Vec::new();
        // What this bar can absorb, shared by its orders and then its protective exits.
        let mut liquidity = if self.config.max_volume_fraction > 0.0 && bar.volume > 0.0 { self.config.max_volume_fraction * bar.volume } else { f64::INFINITY };
        for mut w in self.working.remove(&bar.instrument).unwrap_or_default() {
            if self.live_from(w.placed_at) > bar.start {
                remaining.push(w);
                continue;
            }
            self.arrive(&mut w, bar.open);
            let buy = w.view.side == Side::Buy;
            let taker = |p: f64| if buy { (p + hs) * (1.0 + sl) } else { (p - hs) * (1.0 - sl) };
            let price = match w.view.order_type {
                OrderType::Market => Some(taker(bar.open)),
                OrderType::Limit(l) if buy => (bar.low <= l).then(|| bar.open.min(l)),
                OrderType::Limit(l) => (bar.high >= l).then(|| bar.open.max(l)),
                OrderType::Stop(s) if buy => (bar.high >= s).then(|| taker(bar.open.max(s))),
                OrderType::Stop(s) => (bar.low <= s).then(|| taker(bar.open.min(s))),
            };
            let left = w.view.quantity - w.view.filled_quantity;
            match price {
                Some(price) if liquidity > 0.0 => {
                    let qty = left.min(liquidity);
                    liquidity -= qty;
                    fills.push((w.owner.clone(), self.book_fill(&mut w, bar.instrument, bar.start, qty, price)));
                    if w.view.filled_quantity < w.view.quantity - 1e-9 {
                        self.stats.partial_fills += 1;
                        if w.time_in_force == TimeInForce::Ioc { self.expire(&w) } else { remaining.push(w) }
                    }
                }
                _ if expires_unfilled(&w, bar.start) => self.expire(&w),
                _ => remaining.push(w),
            }
        }
        if !remaining.is_empty() {
            self.working.insert(bar.instrument, remaining);
        }
        self.check_protections(bar, hs, liquidity, &mut fills);
        self.world.ledger_mut().mark(bar.instrument, bar.close);
        fills
    }

    fn check_protections(&mut self, bar: &Bar, hs: f64, mut liquidity: f64, fills: &mut Vec<(Arc<str>, Fill)>) {
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
            let sl = self.config.slippage_bps * 1e-4;
            let price = match (stop_hit, target_hit) {
                // A stop-loss takes liquidity: spread and slippage; a take-profit rests like a limit.
                (Some(s), _) => Some(if long { (bar.open.min(s) - hs) * (1.0 - sl) } else { (bar.open.max(s) + hs) * (1.0 + sl) }),
                (None, Some(t)) => Some(if long { bar.open.max(t) - hs } else { bar.open.min(t) + hs }),
                _ => None,
            };
            // A level the bar did not reach stays for the next bar.
            if let Some(p) = price {
                triggered.push((owner.clone(), *instrument, Some((p, qty))));
            }
        }
        for (owner, instrument, hit) in triggered {
            let Some((price, held)) = hit else {
                self.protections.remove(&(instrument, owner));
                continue;
            };
            // What market orders of the owner already close (an exit not live
            // yet, under latency) is not closed twice: the level takes the rest.
            let closing: f64 = self
                .working
                .get(&instrument)
                .into_iter()
                .flatten()
                .filter(|w| w.owner == owner && w.view.order_type == OrderType::Market && (w.view.side == Side::Sell) == (held > 0.0))
                .map(|w| w.view.quantity - w.view.filled_quantity)
                .sum();
            let held = held.signum() * (held.abs() - closing).max(0.0);
            if held == 0.0 {
                continue;
            }
            // Under a liquidity cap the level stays for what the bar could not take.
            let qty = held.signum() * held.abs().min(liquidity);
            if qty == 0.0 {
                continue;
            }
            liquidity -= qty.abs();
            if qty == held {
                self.protections.remove(&(instrument, owner.clone()));
            }
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
    use stratbox_contract::TargetPosition;

    fn bar(start: i64, open: f64, high: f64, low: f64, close: f64) -> Bar {
        Bar { instrument: 0, start, period_secs: 60, open, high, low, close, volume: 0.0 }
    }

    fn broker() -> (PaperBroker, Arc<SharedWorld>, Arc<str>) {
        let world = Arc::new(SharedWorld::new(16));
        (PaperBroker::new(PaperConfig { spread_bps: 0.0, commission_bps: 0.0, slippage_bps: 0.0, ..PaperConfig::default() }, world.clone()), world, Arc::from("p"))
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
        b.submit(&p, &Intent::Order(stratbox_contract::OrderIntent {
            instrument: 0, side: Side::Buy, quantity: 5.0, order_type: OrderType::Limit(9.0), time_in_force: TimeInForce::Gtc, tag: 7,
        }), 0);
        assert!(b.on_bar(&bar(0, 10.0, 10.5, 9.5, 10.0)).is_empty(), "low 9.5 never reached 9");
        assert_eq!(world.ledger().open_orders("p").len(), 1);
        let fills = b.on_bar(&bar(60, 9.5, 9.8, 8.5, 9.0));
        assert_eq!(fills[0].1.price, 9.0, "limit price, not the better low");
        b.protect(&p, StopLevels { instrument: 0, stop_loss: Some(8.0), take_profit: Some(12.0) });
        // Levels stay until a bar reaches one (a stop policy sends them once).
        assert!(b.on_bar(&bar(90, 9.0, 11.0, 8.5, 10.0)).is_empty());
        assert!(b.on_bar(&bar(100, 10.0, 11.5, 8.2, 10.0)).is_empty());
        let fills = b.on_bar(&bar(120, 9.0, 12.5, 7.5, 10.0));
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].1.price, 8.0, "stop before take-profit when both are touched");
        assert_eq!(world.ledger().quantity("p", 0), 0.0);
        assert_eq!(b.stats.protective_exits, 1);
    }

    #[test]
    fn a_volume_cap_fills_orders_and_protective_exits_over_several_bars() {
        let world = Arc::new(SharedWorld::new(16));
        let config = PaperConfig { spread_bps: 0.0, commission_bps: 0.0, slippage_bps: 0.0, max_volume_fraction: 0.1, ..PaperConfig::default() };
        let mut b = PaperBroker::new(config, world.clone());
        let p: Arc<str> = Arc::from("p");
        b.submit(&p, &Intent::Target(TargetPosition { instrument: 0, quantity: 25.0 }), 0);
        let with_volume = |start, low, volume| Bar { volume, ..bar(start, 10.0, 10.5, low, 10.0) };
        let fills = b.on_bar(&with_volume(60, 9.5, 100.0));
        assert_eq!(fills[0].1.quantity, 10.0, "10% of 100");
        assert_eq!(b.on_bar(&with_volume(120, 9.5, 100.0))[0].1.quantity, 10.0);
        assert_eq!(b.on_bar(&with_volume(180, 9.5, 0.0))[0].1.quantity, 5.0, "a bar without volume is not capped");
        assert_eq!(world.ledger().quantity("p", 0), 25.0);
        b.protect(&p, StopLevels { instrument: 0, stop_loss: Some(9.0), take_profit: None });
        // The stop is reached on two bars of volume 150: 15 and then the last 10.
        assert_eq!(b.on_bar(&with_volume(240, 8.5, 150.0))[0].1.quantity, 15.0);
        assert_eq!(world.ledger().quantity("p", 0), 10.0);
        assert!(b.on_bar(&with_volume(300, 9.5, 150.0)).is_empty(), "the level stays, not reached");
        assert_eq!(b.on_bar(&with_volume(360, 8.5, 150.0))[0].1.quantity, 10.0);
        assert_eq!(world.ledger().quantity("p", 0), 0.0);
    }

    fn quote(time: i64, bid: f64, ask: f64, size: f64) -> stratbox_contract::Quote {
        stratbox_contract::Quote { instrument: 0, time, bid, bid_size: size, ask, ask_size: size }
    }

    #[test]
    fn quotes_fill_after_the_latency_with_slippage_and_partially_by_size() {
        let world = Arc::new(SharedWorld::new(16));
        let config = PaperConfig { commission_bps: 0.0, slippage_bps: 10.0, latency_ms: 50, ..PaperConfig::default() };
        let mut b = PaperBroker::new(config, world.clone());
        let p: Arc<str> = Arc::from("p");
        let ms = 1_000_000;
        let buy = |q, order_type| Intent::Order(stratbox_contract::OrderIntent { instrument: 0, side: Side::Buy, quantity: q, order_type, time_in_force: TimeInForce::Gtc, tag: 0 });
        b.submit(&p, &buy(30.0, OrderType::Market), 0);
        assert!(b.on_quote(&quote(49 * ms, 99.9, 100.0, 100.0)).is_empty(), "not live before 50 ms");
        assert!(b.arrivals.is_empty(), "it has not reached the market yet");
        let fills = b.on_quote(&quote(50 * ms, 99.9, 100.0, 20.0));
        assert_eq!(std::mem::take(&mut b.arrivals), [(1, 99.95)], "arrival: the mid of the first quote once live");
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].1.quantity, 20.0, "the quoted size");
        assert!((fills[0].1.price - 100.1).abs() < 1e-9, "ask plus 10 bps: {}", fills[0].1.price);
        assert_eq!(world.ledger().open_orders("p")[0].status, OrderStatus::PartiallyFilled);
        let fills = b.on_quote(&quote(60 * ms, 99.9, 100.0, 20.0));
        assert_eq!(fills[0].1.quantity, 10.0, "the rest");
        assert_eq!(world.ledger().quantity("p", 0), 30.0);
        assert!(world.ledger().open_orders("p").is_empty());
        assert_eq!(b.stats.partial_fills, 1);
        // A limit buy fills at the ask once the ask comes down to it, without slippage.
        b.submit(&p, &buy(5.0, OrderType::Limit(99.5)), 100 * ms);
        assert!(b.on_quote(&quote(200 * ms, 99.6, 99.7, 10.0)).is_empty());
        let fills = b.on_quote(&quote(300 * ms, 99.3, 99.4, 10.0));
        assert_eq!((fills[0].1.price, fills[0].1.quantity), (99.4, 5.0));
    }

    #[test]
    fn bars_charge_slippage_and_days_charge_financing() {
        let world = Arc::new(SharedWorld::new(16));
        let config = PaperConfig { spread_bps: 0.0, commission_bps: 0.0, slippage_bps: 20.0, latency_ms: 0, financing_bps_per_day: 1.0, max_volume_fraction: 0.0 };
        let mut b = PaperBroker::new(config, world.clone());
        let p: Arc<str> = Arc::from("p");
        b.submit(&p, &Intent::Target(stratbox_contract::TargetPosition { instrument: 0, quantity: 10.0 }), 0);
        let day = 86_400 * NANOS_PER_SEC;
        let fills = b.on_bar(&bar(60, 100.0, 101.0, 99.0, 100.0));
        assert!((fills[0].1.price - 100.2).abs() < 1e-9, "open plus 20 bps: {}", fills[0].1.price);
        let before = world.ledger().summary("p").realised_pnl;
        b.on_bar(&bar(day + 60, 100.0, 101.0, 99.0, 100.0));
        let after = world.ledger().summary("p").realised_pnl;
        assert!((before - after - 10.0 * 100.0 * 1e-4).abs() < 1e-9, "one day of financing on 1,000 of notional: {}", before - after);
        assert!((b.stats.financing_charged - 0.1).abs() < 1e-9);
        b.on_bar(&bar(day + 120, 100.0, 101.0, 99.0, 100.0));
        assert!((b.stats.financing_charged - 0.1).abs() < 1e-9, "once per day");
    }
}
