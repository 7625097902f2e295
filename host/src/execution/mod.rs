//! Orders as the host tracks them: the state machine ([`order`]), client
//! order ids, and per-fill slippage against the price when the intent was
//! decided.
//!
//! Every order an intent produces gets a client order id (`plugin-sequence`)
//! before risk sees it; submitting an id twice returns the first order, so a
//! retried submission never makes a second one. The tracker follows each
//! order through the table; an event the table refuses is logged and
//! counted, and the order keeps its state.

pub mod order;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

pub use order::{IllegalTransition, OrderEvent, OrderState, transition};

use crate::market::{InstrumentId, Timestamp};
use crate::runtime::bindings::Side;

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

    /// Links the broker's id to a client order.
    pub fn bind(&mut self, client_id: &str, broker_id: u64) {
        if let Some(o) = self.orders.get_mut(client_id) {
            o.broker_id = Some(broker_id);
            self.by_broker_id.insert(broker_id, client_id.to_owned());
        }
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
}
