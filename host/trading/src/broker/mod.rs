//! Where intents become orders and fills: the ledger of positions and
//! working orders per plugin, and the brokers behind one interface: the
//! paper broker (in process, also used by replays and backtests) and
//! Capital.com over its REST API.

mod capital;
mod ledger;
mod paper;

use std::sync::Arc;

pub use capital::{CapitalBroker, CapitalBrokerConfig, Reconciliation};
pub use ledger::{Book, BookSummary, Ledger};
pub use paper::{BrokerStats, OrderRequest, PaperBroker, PaperConfig, Plan, Submission};

use crate::execution::{OrderEvent, Restored};
use stratbox_contract::{Bar, Fill, InstrumentId, Intent, Quote, StopLevels, Timestamp};

/// What a remote broker learnt about an order that the journal must keep.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerNote {
    /// The broker's reference of the request (Capital.com's `dealReference`).
    Reference { order_id: u64, deal_reference: String },
    /// The broker's id of a resting order (Capital.com's working order `dealId`).
    DealId { order_id: u64, deal_id: String },
    /// Why an order was refused or could not be placed.
    Rejected { order_id: u64, reason: String },
    /// The reference of a position an order closed (a Capital.com hedging
    /// account closes opposite positions whole before it opens the rest).
    CloseReference { order_id: u64, deal_reference: String },
}

/// The account as a remote broker last reported it (Capital.com's `GET /accounts`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BrokerAccount {
    /// Cash: deposits plus realised P&L, after the broker's own costs.
    pub balance: f64,
    pub deposit: f64,
    /// The open positions' P&L at the broker's prices.
    pub profit_loss: f64,
    /// What is free for new margin.
    pub available: f64,
    /// Wall-clock time of the read, ms since the epoch.
    pub read_at_ms: i64,
    /// Which read it is (1, 2, ...): two reads in one millisecond are still two.
    pub read: u64,
}

impl BrokerAccount {
    /// Balance plus open P&L: what the account is worth now.
    pub fn equity(&self) -> f64 {
        self.balance + self.profit_loss
    }
}

/// The one interface the runner trades through. Order ids are the host's
/// (`u64`, stable across restarts through the journal); a remote broker maps
/// them to its own references.
///
/// The order of calls per event: `plan`, risk, `execute` (queues), the
/// journal is committed, then `dispatch` sends; `poll` brings back what the
/// broker did since.
pub trait Broker: Send {
    /// What an intent would do, before risk has its say.
    fn plan(&self, owner: &Arc<str>, intent: &Intent) -> Plan;
    /// Carries out a plan for `owner` (a remote broker queues it for [`Broker::dispatch`]).
    fn execute(&mut self, owner: &Arc<str>, plan: Plan, now: Timestamp) -> Submission;
    /// A market quote: fills in-process orders, checks protections, marks positions.
    fn on_quote(&mut self, quote: &Quote) -> Vec<(Arc<str>, Fill)>;
    fn on_bar(&mut self, bar: &Bar) -> Vec<(Arc<str>, Fill)>;
    /// Broker references remembered for matching (a remote broker's claimed deal references).
    fn remembered_references(&self) -> usize {
        0
    }
    /// Cancels every working order of `owner`; returns how many were cancelled or asked to be.
    fn cancel_all(&mut self, owner: &str) -> usize;
    /// Sets (or, with both levels `None`, removes) protection for `owner`'s position.
    fn protect(&mut self, owner: &Arc<str>, levels: StopLevels);
    /// The protective levels in force, by owner (what the dashboard draws).
    fn protections(&self) -> Vec<(Arc<str>, StopLevels)> {
        Vec::new()
    }
    /// Cancels and expiries since the last call, by order id.
    fn take_events(&mut self) -> Vec<(u64, OrderEvent)>;
    /// Financing charged since the last call: (plugin, instrument, amount).
    fn take_financing(&mut self) -> Vec<(Arc<str>, InstrumentId, f64)> {
        Vec::new()
    }
    /// Protective levels (stop-loss, take-profit) reached since the last call
    /// that the broker does not execute itself: (owner, instrument), for the
    /// order path to exit through its checks and journal.
    fn take_protective_exits(&mut self) -> Vec<(Arc<str>, InstrumentId)> {
        Vec::new()
    }
    /// Running comparisons of the broker's positions with the host's that agreed or differed.
    fn position_checks(&self) -> u64 {
        0
    }
    /// Cancels working orders at a remote broker that no order of the host
    /// owns (found by reconciliation, cancelled by the operator's adopt).
    fn cancel_foreign(&mut self, _deal_ids: &[String]) {}
    /// Why no new order of `owner` in `instrument` may be sent now: an earlier
    /// one is in doubt at a remote broker (no clear answer yet).
    fn unresolved(&self, _owner: &str, _instrument: InstrumentId) -> Option<String> {
        None
    }
    /// Differences between the broker's positions and the host's found while
    /// running, each naming the instrument and both sizes.
    fn take_discrepancies(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Orders that reached the market since the last call, with its mid then: (order id, mid).
    fn take_arrivals(&mut self) -> Vec<(u64, f64)> {
        Vec::new()
    }
    /// Puts back an order that was working before a restart (from the journal).
    fn restore(&mut self, order: &Restored);
    /// Makes the next order id at least `id` (after a restart).
    fn reserve_ids_below(&mut self, id: u64);
    fn stats(&self) -> BrokerStats;
    /// Requests queued by `execute` and not yet sent.
    fn queued(&self) -> usize {
        0
    }
    /// Sends the queued requests; the runner calls it once they are journaled.
    fn dispatch(&mut self) {}
    /// Drops the queued requests (the journal could not be written): each becomes a rejection.
    fn discard_queued(&mut self, _why: &str) {}
    /// What a remote broker did since the last call: fills (by owner).
    fn poll(&mut self) -> Vec<(Arc<str>, Fill)> {
        Vec::new()
    }
    /// References, broker ids and rejections learnt since the last call, for the journal.
    fn take_notes(&mut self) -> Vec<BrokerNote> {
        Vec::new()
    }
    /// Compares what was restored with the broker's own account after a restart;
    /// its fills and events come through `poll`. The in-process paper broker
    /// has nothing to compare: the journal replay was its state.
    fn reconcile(&mut self, _now: Timestamp, _known_references: &[String]) -> Result<Reconciliation, String> {
        Ok(Reconciliation::default())
    }
    /// The broker's latest account read; `None` for the paper broker, whose
    /// account is the ledger itself.
    fn account(&self) -> Option<BrokerAccount> {
        None
    }
}

impl Broker for PaperBroker {
    fn plan(&self, owner: &Arc<str>, intent: &Intent) -> Plan {
        PaperBroker::plan(self, owner, intent)
    }
    fn execute(&mut self, owner: &Arc<str>, plan: Plan, now: Timestamp) -> Submission {
        PaperBroker::execute(self, owner, plan, now)
    }
    fn on_quote(&mut self, quote: &Quote) -> Vec<(Arc<str>, Fill)> {
        PaperBroker::on_quote(self, quote)
    }
    fn on_bar(&mut self, bar: &Bar) -> Vec<(Arc<str>, Fill)> {
        PaperBroker::on_bar(self, bar)
    }
    fn cancel_all(&mut self, owner: &str) -> usize {
        PaperBroker::cancel_all(self, owner)
    }
    fn protections(&self) -> Vec<(Arc<str>, StopLevels)> {
        PaperBroker::protections(self)
    }

    fn protect(&mut self, owner: &Arc<str>, levels: StopLevels) {
        PaperBroker::protect(self, owner, levels)
    }
    fn take_events(&mut self) -> Vec<(u64, OrderEvent)> {
        PaperBroker::take_events(self)
    }
    fn take_financing(&mut self) -> Vec<(Arc<str>, InstrumentId, f64)> {
        PaperBroker::take_financing(self)
    }
    fn take_arrivals(&mut self) -> Vec<(u64, f64)> {
        std::mem::take(&mut self.arrivals)
    }
    fn restore(&mut self, order: &Restored) {
        PaperBroker::restore(self, order)
    }
    fn reserve_ids_below(&mut self, id: u64) {
        PaperBroker::reserve_ids_below(self, id)
    }
    fn stats(&self) -> BrokerStats {
        self.stats
    }
}

/// The order a target position needs: what is held and what is still on its
/// way (unfilled market orders) are both counted, so a target is never ordered twice.
pub(crate) fn order_for_target(target: f64, held: f64, pending: f64, instrument: InstrumentId) -> Plan {
    use stratbox_contract::{OrderType, Side, TimeInForce};
    let delta = target - held - pending;
    if delta.abs() < 1e-9 {
        return Plan::Nothing;
    }
    let side = if delta > 0.0 { Side::Buy } else { Side::Sell };
    Plan::Place(OrderRequest { instrument, side, quantity: delta.abs(), order_type: OrderType::Market, time_in_force: TimeInForce::Gtc, tag: 0 })
}

/// Whether a quote reaches an order: `price` is the ask for a buy, the bid
/// for a sell; a limit fills at or better than its level, a stop triggers at
/// or through it, a market order always.
pub(crate) fn reached(order_type: stratbox_contract::OrderType, buy: bool, price: f64) -> bool {
    use stratbox_contract::OrderType;
    match order_type {
        OrderType::Market => true,
        OrderType::Limit(l) => if buy { price <= l } else { price >= l },
        OrderType::Stop(s) => if buy { price >= s } else { price <= s },
    }
}

/// Buys positive, sells negative.
pub(crate) fn signed(side: stratbox_contract::Side, quantity: f64) -> f64 {
    match side {
        stratbox_contract::Side::Buy => quantity,
        stratbox_contract::Side::Sell => -quantity,
    }
}
