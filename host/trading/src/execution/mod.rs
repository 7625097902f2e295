//! Orders as the host tracks them: the state machine ([`order`]), client
//! order ids, and per-fill slippage against the price when the intent was
//! decided.
//!
//! Every order an intent produces gets a client order id (`plugin-sequence`)
//! before risk sees it; submitting an id twice returns the first order, so a
//! retried submission never makes a second one. The tracker follows each
//! order through the table; an event the table refuses is logged and
//! counted, and the order keeps its state.

pub mod journal;
pub mod order;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

pub use journal::{Entry, Journal, JournalError, JournalEvent, JournalReader};
pub use order::{IllegalTransition, OrderEvent, OrderState, transition};

use stratbox_market::{InstrumentId, Timestamp};
use stratbox_contract::Side;

/// One order's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackedOrder {
    pub client_id: String,
    #[serde(serialize_with = "as_str")]
    pub plugin: Arc<str>,
    /// The broker's id, once it has one.
    pub broker_id: Option<u64>,
    pub instrument: InstrumentId,
    #[serde(serialize_with = "side_name")]
    pub side: Side,
    pub quantity: f64,
    pub filled: f64,
    pub average_fill: f64,
    pub state: OrderState,
    /// Last price when the intent was turned into this order.
    pub decision_price: Option<f64>,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// Why it was rejected, if it was.
    pub reason: Option<String>,
}

fn as_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

fn side_name<S: serde::Serializer>(v: &Side, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *v == Side::Buy { "buy" } else { "sell" })
}

/// Slippage of one plugin's fills against decision prices, in basis points
/// (positive: paid more than decided on a buy, got less on a sell).
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq)]
pub struct Slippage {
    pub fills: u64,
    pub mean_bps: f64,
    pub worst_bps: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TrackerStats {
    pub orders: u64,
    pub by_state: BTreeMap<OrderState, u64>,
    pub illegal_transitions: u64,
    pub duplicate_submissions: u64,
    pub slippage: BTreeMap<String, Slippage>,
}

#[derive(Default)]
pub struct OrderTracker {
    orders: HashMap<String, TrackedOrder>,
    by_broker_id: HashMap<u64, String>,
    next_seq: HashMap<Arc<str>, u64>,
    /// Final orders kept for views before being dropped from memory.
    finished: std::collections::VecDeque<String>,
    stats: TrackerStats,
}

/// An order still working after a journal replay, to hand back to the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub client_id: String,
    pub plugin: Arc<str>,
    pub broker_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub quantity: f64,
    pub filled: f64,
    pub order_type: stratbox_contract::OrderType,
    pub time_in_force: stratbox_contract::TimeInForce,
    pub tag: u32,
    pub placed_at: Timestamp,
    /// A remote broker's reference and id of it, when known.
    pub deal_reference: Option<String>,
    pub deal_id: Option<String>,
    /// An exit the host placed (flatten, de-leveraging, a stop): a plugin's cancels leave it.
    pub exit: bool,
    /// A cancel was asked for before the restart: it is asked for again.
    pub cancel_requested: bool,
    /// References of the positions it closed at the broker (Capital.com hedging), in order.
    pub closes: Vec<String>,
}

/// The risk reason journaled with an exit the host placed; a restart knows its exits by it.
pub const EXIT_ACCEPTED: &str = "exit placed by the host (flatten, de-leveraging, stop)";

impl Restored {
    /// Its view for the ledger's book: working, or partially filled.
    pub fn view(&self) -> stratbox_contract::OrderView {
        use stratbox_contract::OrderStatus;
        let status = if self.filled > 0.0 { OrderStatus::PartiallyFilled } else { OrderStatus::Working };
        stratbox_contract::OrderView {
            id: self.broker_id,
            instrument: self.instrument,
            side: self.side,
            quantity: self.quantity,
            filled_quantity: self.filled,
            order_type: self.order_type,
            status,
            tag: self.tag,
        }
    }
}

/// The last journaled state of each (scope, cause): (state, reason, since, until).
pub type RestoredStates = std::collections::BTreeMap<(Option<String>, crate::risk::Cause), (crate::risk::TradingState, String, Timestamp, Option<Timestamp>)>;

/// What a journal replay rebuilt.
#[derive(Debug, Default)]
pub struct Rebuilt {
    pub entries: u64,
    pub fills: u64,
    pub working: Vec<Restored>,
    /// Every reference a remote broker gave (so a lost reply is never matched to another order's deal).
    pub references: Vec<String>,
    /// The last state of each cause in each scope (`None`: global): (state, reason, since, until).
    pub states: RestoredStates,
    /// The de-leveraging in progress, if one was.
    pub deleverage: Option<crate::order_path::DeleveragePlan>,
    /// The loss limits' baselines last journaled, with each plugin's day start.
    pub baselines: Option<(crate::risk::Baselines, Vec<(String, f64)>)>,
    /// The protective levels in force, by book and instrument.
    pub protections: BTreeMap<(Arc<str>, InstrumentId), stratbox_contract::StopLevels>,
}

/// Replays `journal` into `ledger` (fills, financing) and `tracker` (every
/// order's life); returns what is still working and the trading states.
///
/// Journal entries name instruments by id in the universe of the last
/// `Instruments` entry before them; each is mapped by symbol onto `symbols`,
/// this start's universe, so a reordered or extended universe keeps every
/// position on its instrument. A position or working order in an instrument
/// missing from `symbols` is refused ([`JournalError::MissingInstrument`]).
pub fn rebuild(journal: &Journal, symbols: &[String], ledger: &mut crate::broker::Ledger, tracker: &mut OrderTracker) -> Result<Rebuilt, JournalError> {
    use journal::JournalEvent as J;
    let mut out = Rebuilt::default();
    // Journal id -> this start's id; identity until the first `Instruments`
    // entry (journals written before it was). Missing symbols get ids past
    // the universe so their history replays, then are checked at the end.
    let mut map: Option<Vec<InstrumentId>> = None;
    let mut missing: Vec<String> = Vec::new();
    let id_of = |map: &Option<Vec<InstrumentId>>, i: InstrumentId| map.as_ref().map_or(i, |m| m.get(i as usize).copied().unwrap_or(i));
    // Orders as created, for handing working ones back: client id -> (request, tif, tag, created).
    let mut requests: HashMap<String, (stratbox_contract::OrderType, stratbox_contract::TimeInForce, u32)> = HashMap::new();
    // A remote broker's (reference, id) per client id.
    let mut refs: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    // Client ids of the host's exits, and of orders it asked the broker to cancel.
    let mut exits: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut cancels: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut closes: HashMap<String, Vec<String>> = HashMap::new();
    for entry in journal.entries() {
        let entry = entry?;
        out.entries += 1;
        let t = entry.time;
        match entry.event {
            J::Order { client_id, plugin, instrument, side, quantity, order_type, time_in_force, tag, decision_price } => {
                let instrument = id_of(&map, instrument);
                let plugin: Arc<str> = Arc::from(plugin.as_str());
                let _ = tracker.create(client_id.clone(), &plugin, instrument, side.into(), quantity, decision_price, t);
                requests.insert(client_id, (order_type.into(), time_in_force.into(), tag));
            }
            J::Risk { client_id, accepted, reason } => {
                if accepted && reason.as_deref() == Some(EXIT_ACCEPTED) {
                    exits.insert(client_id.clone());
                }
                let event = if accepted { OrderEvent::RiskAccepted } else { OrderEvent::RiskRejected };
                let _ = tracker.apply(&client_id, event, t, reason.as_deref());
            }
            J::Sent { client_id, broker_id } => tracker.bind(&client_id, broker_id),
            J::Acknowledged { client_id, broker_id } => {
                tracker.bind(&client_id, broker_id);
                let _ = tracker.apply(&client_id, OrderEvent::Acknowledged, t, None);
            }
            J::BrokerRef { client_id, deal_reference, deal_id } => {
                out.references.extend(deal_reference.iter().cloned());
                let known = refs.entry(client_id).or_default();
                known.0 = deal_reference.or(known.0.take());
                known.1 = deal_id.or(known.1.take());
            }
            J::BrokerClose { client_id, deal_reference } => {
                out.references.push(deal_reference.clone());
                closes.entry(client_id).or_default().push(deal_reference);
            }
            J::BrokerRejected { client_id, reason } => {
                let _ = tracker.apply(&client_id, OrderEvent::BrokerRejected, t, Some(&reason));
            }
            J::Fill { client_id, broker_id, plugin, instrument, side, quantity, price, fee } => {
                let instrument = id_of(&map, instrument);
                let plugin: Arc<str> = Arc::from(plugin.as_str());
                let side: Side = side.into();
                ledger.apply_fill(&plugin, instrument, if side == Side::Buy { quantity } else { -quantity }, price, fee);
                if tracker.get(&client_id).is_none() {
                    tracker.adopt(client_id.clone(), &plugin, instrument, side, quantity, broker_id, t);
                }
                let _ = tracker.fill(&client_id, quantity, price, t);
                out.fills += 1;
            }
            J::Cancelled { client_id } => {
                let _ = tracker.apply(&client_id, OrderEvent::Cancelled, t, None);
            }
            J::Expired { client_id } => {
                let _ = tracker.apply(&client_id, OrderEvent::Expired, t, None);
            }
            J::Financing { plugin, instrument, amount } => {
                ledger.charge(&Arc::from(plugin.as_str()), id_of(&map, instrument), amount);
            }
            J::Instruments { symbols: then } => {
                let ids = then
                    .into_iter()
                    .map(|s| match symbols.iter().position(|x| *x == s) {
                        Some(k) => k as InstrumentId,
                        None => {
                            let k = missing.iter().position(|m| *m == s).unwrap_or_else(|| {
                                missing.push(s.clone());
                                missing.len() - 1
                            });
                            (symbols.len() + k) as InstrumentId
                        }
                    })
                    .collect();
                map = Some(ids);
            }
            J::Equity { .. } | J::Arrival { .. } | J::Alarm { .. } => {}
            J::CancelRequested { client_id } => {
                cancels.insert(client_id);
            }
            J::Deleverage { fraction, steps, steps_done, every_secs, next_at, start } => {
                let start = start.into_iter().map(|(p, i, q)| (Arc::from(p.as_str()), id_of(&map, i), q)).collect();
                out.deleverage = (steps_done < steps).then_some(crate::order_path::DeleveragePlan { fraction, steps, steps_done, every_secs, next_at, start });
            }
            J::RiskBaselines { peak_equity, day, day_start_equity, plugin_day_start, reference_open } => {
                let plugins = plugin_day_start.len();
                out.baselines = Some((crate::risk::Baselines { peak_equity, day, day_start_equity, plugins, reference_open }, plugin_day_start));
            }
            J::Protection { plugin, instrument, stop_loss, take_profit } => {
                let instrument = id_of(&map, instrument);
                let key = (Arc::from(plugin.as_str()), instrument);
                if stop_loss.is_none() && take_profit.is_none() {
                    out.protections.remove(&key);
                } else {
                    out.protections.insert(key, stratbox_contract::StopLevels { instrument, stop_loss, take_profit });
                }
            }
            J::TradingState { plugin, state, reason, cause, until } => {
                out.states.insert((plugin, cause), (state, reason, t, until));
            }
        }
    }
    for o in tracker.orders.values() {
        let (Some(broker_id), false) = (o.broker_id, o.state.is_final()) else { continue };
        let Some((order_type, time_in_force, tag)) = requests.get(&o.client_id) else { continue };
        out.working.push(Restored {
            client_id: o.client_id.clone(),
            plugin: o.plugin.clone(),
            broker_id,
            instrument: o.instrument,
            side: o.side,
            quantity: o.quantity,
            filled: o.filled,
            order_type: *order_type,
            time_in_force: *time_in_force,
            tag: *tag,
            placed_at: o.created,
            deal_reference: refs.get(&o.client_id).and_then(|r| r.0.clone()),
            deal_id: refs.get(&o.client_id).and_then(|r| r.1.clone()),
            exit: exits.contains(&o.client_id),
            cancel_requested: cancels.contains(&o.client_id),
            closes: closes.get(&o.client_id).cloned().unwrap_or_default(),
        });
    }
    out.working.sort_by_key(|r| r.broker_id);
    // History in an instrument that left the universe is fine; anything still open there is not.
    for (k, symbol) in missing.iter().enumerate() {
        let id = (symbols.len() + k) as InstrumentId;
        if let Some((plugin, q)) = ledger.net_by_plugin(id).into_iter().find(|(_, q)| q.abs() > 1e-9) {
            return Err(JournalError::MissingInstrument { symbol: symbol.clone(), what: format!("a position of {q} for {plugin}") });
        }
        if let Some(o) = out.working.iter().find(|o| o.instrument == id) {
            return Err(JournalError::MissingInstrument { symbol: symbol.clone(), what: format!("the working order {} of {}", o.client_id, o.plugin) });
        }
    }
    Ok(out)
}

/// Final orders kept in memory (the journal keeps everything).
const KEEP_FINISHED: usize = 10_000;

impl OrderTracker {
    /// The next client order id of `plugin`.
    pub fn next_client_id(&mut self, plugin: &Arc<str>) -> String {
        let seq = self.next_seq.entry(plugin.clone()).or_insert(0);
        *seq += 1;
        format!("{plugin}-{seq}")
    }

    /// Registers a new order; an id already known is a duplicate submission
    /// and returns the existing order instead.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        client_id: String,
        plugin: &Arc<str>,
        instrument: InstrumentId,
        side: Side,
        quantity: f64,
        decision_price: Option<f64>,
        now: Timestamp,
    ) -> Result<&TrackedOrder, &TrackedOrder> {
        if self.orders.contains_key(&client_id) {
            self.stats.duplicate_submissions += 1;
            return Err(&self.orders[&client_id]);
        }
        // Ids replayed from the journal move the plugin's sequence past them.
        if let Some(n) = client_id.strip_prefix(&**plugin).and_then(|r| r.strip_prefix('-')).and_then(|n| n.parse::<u64>().ok()) {
            let seq = self.next_seq.entry(plugin.clone()).or_insert(0);
            *seq = (*seq).max(n);
        }
        self.stats.orders += 1;
        *self.stats.by_state.entry(OrderState::New).or_default() += 1;
        let order = TrackedOrder {
            client_id: client_id.clone(),
            plugin: plugin.clone(),
            broker_id: None,
            instrument,
            side,
            quantity,
            filled: 0.0,
            average_fill: 0.0,
            state: OrderState::New,
            decision_price,
            created: now,
            updated: now,
            reason: None,
        };
        Ok(self.orders.entry(client_id).or_insert(order))
    }

    /// Takes on an order the broker made itself (a protective exit), so its
    /// fills have a record: created, bound to `broker_id`, past risk.
    #[allow(clippy::too_many_arguments)]
    pub fn adopt(&mut self, client_id: String, plugin: &Arc<str>, instrument: InstrumentId, side: Side, quantity: f64, broker_id: u64, now: Timestamp) {
        let _ = self.create(client_id.clone(), plugin, instrument, side, quantity, None, now);
        self.bind(&client_id, broker_id);
        let _ = self.apply(&client_id, OrderEvent::RiskAccepted, now, Some("protective exit"));
    }

    /// Links the broker's id to a client order.
    pub fn bind(&mut self, client_id: &str, broker_id: u64) {
        if let Some(o) = self.orders.get_mut(client_id) {
            o.broker_id = Some(broker_id);
            self.by_broker_id.insert(broker_id, client_id.to_owned());
        }
    }

    /// The largest broker id ever bound (so a restarted broker does not reuse one).
    pub fn max_broker_id(&self) -> Option<u64> {
        self.by_broker_id.keys().max().copied()
    }

    pub fn client_id_of(&self, broker_id: u64) -> Option<&str> {
        self.by_broker_id.get(&broker_id).map(String::as_str)
    }

    pub fn get(&self, client_id: &str) -> Option<&TrackedOrder> {
        self.orders.get(client_id)
    }

    /// Applies an event; an illegal one is counted and logged, and changes nothing.
    pub fn apply(&mut self, client_id: &str, event: OrderEvent, now: Timestamp, reason: Option<&str>) -> Result<OrderState, IllegalTransition> {
        let Some(o) = self.orders.get_mut(client_id) else {
            tracing::warn!(client_id, event = ?event, "event for an unknown order");
            self.stats.illegal_transitions += 1;
            return Err(IllegalTransition { state: OrderState::New, event });
        };
        match transition(o.state, event) {
            Ok(next) => {
                let by = &mut self.stats.by_state;
                *by.entry(o.state).or_default() -= 1;
                *by.entry(next).or_default() += 1;
                o.state = next;
                o.updated = now;
                if let Some(r) = reason {
                    o.reason = Some(r.to_owned());
                }
                if next.is_final() {
                    self.finished.push_back(client_id.to_owned());
                    while self.finished.len() > KEEP_FINISHED {
                        if let Some(old) = self.finished.pop_front()
                            && let Some(gone) = self.orders.remove(&old)
                            && let Some(id) = gone.broker_id
                        {
                            self.by_broker_id.remove(&id);
                        }
                    }
                }
                Ok(next)
            }
            Err(e) => {
                self.stats.illegal_transitions += 1;
                tracing::error!(client_id, error = %e, "illegal order transition refused");
                Err(e)
            }
        }
    }

    /// A fill of a tracked order: state, average price, and slippage
    /// against the decision price.
    pub fn fill(&mut self, client_id: &str, quantity: f64, price: f64, now: Timestamp) -> Result<OrderState, IllegalTransition> {
        let Some(o) = self.orders.get_mut(client_id) else {
            return self.apply(client_id, OrderEvent::Fill { complete: true }, now, None);
        };
        let filled = o.filled + quantity;
        let complete = filled >= o.quantity - 1e-9;
        o.average_fill = (o.average_fill * o.filled + price * quantity) / filled;
        o.filled = filled;
        if let Some(decided) = o.decision_price.filter(|p| *p > 0.0) {
            let sign = if o.side == Side::Buy { 1.0 } else { -1.0 };
            let bps = sign * (price - decided) / decided * 1e4;
            let s = self.stats.slippage.entry(o.plugin.to_string()).or_default();
            s.mean_bps += (bps - s.mean_bps) / (s.fills + 1) as f64;
            s.fills += 1;
            s.worst_bps = if s.fills == 1 { bps } else { s.worst_bps.max(bps) };
        }
        self.apply(client_id, OrderEvent::Fill { complete }, now, None)
    }

    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// What the tracker holds in memory: (orders, of which final, broker ids
    /// mapped). Final orders past [`KEEP_FINISHED`] are dropped.
    pub fn footprint(&self) -> (usize, usize, usize) {
        (self.orders.len(), self.finished.len(), self.by_broker_id.len())
    }

    /// How many final orders the tracker keeps in memory at most.
    pub const KEEP_FINISHED: usize = KEEP_FINISHED;

    /// Orders of `plugin` that are not final.
    pub fn open_orders(&self, plugin: &str) -> Vec<&TrackedOrder> {
        self.orders.values().filter(|o| &*o.plugin == plugin && !o.state.is_final()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_idempotent_and_fills_measure_slippage() {
        let mut t = OrderTracker::default();
        let p: Arc<str> = Arc::from("sma");
        let id = t.next_client_id(&p);
        assert_eq!(id, "sma-1");
        assert!(t.create(id.clone(), &p, 0, Side::Buy, 10.0, Some(100.0), 1).is_ok());
        assert!(t.create(id.clone(), &p, 0, Side::Buy, 10.0, Some(100.0), 2).is_err(), "the same client id twice is one order");
        assert_eq!(t.stats().duplicate_submissions, 1);
        t.apply(&id, OrderEvent::RiskAccepted, 3, None).unwrap();
        t.bind(&id, 77);
        t.apply(&id, OrderEvent::Acknowledged, 3, None).unwrap();
        assert_eq!(t.client_id_of(77), Some("sma-1"));
        assert_eq!(t.fill(&id, 4.0, 100.1, 4), Ok(OrderState::PartiallyFilled));
        assert_eq!(t.fill(&id, 6.0, 100.2, 5), Ok(OrderState::Filled));
        let o = t.get(&id).unwrap();
        assert!((o.average_fill - 100.16).abs() < 1e-9);
        let s = t.stats().slippage["sma"];
        assert_eq!(s.fills, 2);
        assert!((s.mean_bps - 15.0).abs() < 1e-6 && (s.worst_bps - 20.0).abs() < 1e-6, "{s:?}");
        // A cancel for a filled order is refused and counted; the order stays filled.
        assert!(t.apply(&id, OrderEvent::Cancelled, 6, None).is_err());
        assert_eq!(t.get(&id).unwrap().state, OrderState::Filled);
        assert_eq!(t.stats().illegal_transitions, 1);
        assert_eq!(t.stats().by_state[&OrderState::Filled], 1);
        assert_eq!(t.stats().by_state[&OrderState::New], 0);
        // A sell filled below its decision price slipped by a positive amount.
        let id = t.next_client_id(&p);
        t.create(id.clone(), &p, 0, Side::Sell, 1.0, Some(100.0), 7).unwrap();
        t.apply(&id, OrderEvent::RiskAccepted, 7, None).unwrap();
        t.fill(&id, 1.0, 99.9, 8).unwrap();
        assert!((t.stats().slippage["sma"].worst_bps - 20.0).abs() < 1e-6);
    }

    fn fill(client: &str, instrument: InstrumentId, quantity: f64) -> journal::JournalEvent {
        journal::JournalEvent::Fill {
            client_id: client.into(),
            broker_id: 1,
            plugin: "p".into(),
            instrument,
            side: journal::SideName::Buy,
            quantity,
            price: 10.0,
            fee: 0.0,
        }
    }

    /// A journal with a universe written at start, then fills by id.
    fn journal_with(dir: &std::path::Path, events: Vec<journal::JournalEvent>) -> Journal {
        let mut j = Journal::open(dir, 100).unwrap();
        for e in events {
            j.append(1, e).unwrap();
        }
        j.commit().unwrap();
        j
    }

    #[test]
    fn a_rebuild_maps_instruments_by_symbol_and_refuses_to_lose_an_open_one() {
        use journal::JournalEvent as J;
        let universe = |s: &[&str]| J::Instruments { symbols: s.iter().map(|x| x.to_string()).collect() };
        let symbols = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let dir = tempfile::tempdir().unwrap();
        // Started with AAPL, GOLD: bought 3 GOLD (id 1). Restarted with GOLD, AAPL, US500: bought 2 AAPL (now id 1).
        let j = journal_with(dir.path(), vec![universe(&["AAPL", "GOLD"]), fill("p-1", 1, 3.0), universe(&["GOLD", "AAPL", "US500"]), fill("p-2", 1, 2.0)]);
        // A third start with yet another order: each position stays on its symbol.
        let mut ledger = crate::broker::Ledger::default();
        rebuild(&j, &symbols(&["US500", "AAPL", "GOLD"]), &mut ledger, &mut OrderTracker::default()).unwrap();
        assert_eq!((ledger.quantity("p", 0), ledger.quantity("p", 1), ledger.quantity("p", 2)), (0.0, 2.0, 3.0));
        // Without GOLD, its open position would be lost: refused, naming it.
        let err = rebuild(&j, &symbols(&["AAPL", "US500"]), &mut crate::broker::Ledger::default(), &mut OrderTracker::default()).unwrap_err();
        assert!(matches!(&err, JournalError::MissingInstrument { symbol, .. } if symbol == "GOLD"), "{err}");
        assert!(err.to_string().contains("a position of 3"), "{err}");
        drop(j);
        // A universe that lost a flat instrument resumes: its history is only history.
        let dir = tempfile::tempdir().unwrap();
        let mut sold = fill("p-2", 1, 3.0);
        if let J::Fill { side, .. } = &mut sold {
            *side = journal::SideName::Sell;
        }
        let j = journal_with(dir.path(), vec![universe(&["AAPL", "GOLD"]), fill("p-1", 1, 3.0), sold, fill("p-3", 0, 1.0)]);
        let mut ledger = crate::broker::Ledger::default();
        rebuild(&j, &symbols(&["AAPL"]), &mut ledger, &mut OrderTracker::default()).unwrap();
        assert_eq!(ledger.quantity("p", 0), 1.0);
        assert_eq!(ledger.net_positions().len(), 1, "GOLD is flat");
    }

    /// An order cancelled before any acknowledgement (an IOC order held for
    /// its price at Capital.com): Sent, CancelRequested, Cancelled. The
    /// rebuild ends it as the running host did, instead of handing it back
    /// as working (the restart then looked it up and called it never sent).
    #[test]
    fn an_order_cancelled_before_its_acknowledgement_is_not_restored() {
        use journal::JournalEvent as J;
        let dir = tempfile::tempdir().unwrap();
        let order = J::Order {
            client_id: "p-1".into(),
            plugin: "p".into(),
            instrument: 0,
            side: journal::SideName::Buy,
            quantity: 5.0,
            order_type: journal::OrderKind::Stop(101.0),
            time_in_force: journal::TifName::Ioc,
            tag: 0,
            decision_price: Some(100.0),
        };
        let j = journal_with(
            dir.path(),
            vec![
                J::Instruments { symbols: vec!["AAPL".into()] },
                order,
                J::Risk { client_id: "p-1".into(), accepted: true, reason: None },
                J::Sent { client_id: "p-1".into(), broker_id: 1 },
                J::CancelRequested { client_id: "p-1".into() },
                J::Cancelled { client_id: "p-1".into() },
            ],
        );
        let mut tracker = OrderTracker::default();
        let rebuilt = rebuild(&j, &["AAPL".to_string()], &mut crate::broker::Ledger::default(), &mut tracker).unwrap();
        assert!(rebuilt.working.is_empty(), "restored as working: {:?}", rebuilt.working);
        assert_eq!(tracker.get("p-1").map(|o| o.state), Some(OrderState::Cancelled));
    }
}
