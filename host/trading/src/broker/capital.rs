//! Capital.com as a broker, over its REST API (`capital-com-api.md` §5).
//!
//! The runner's thread never waits on the network: `execute` queues a
//! request, `dispatch` hands the queue to a worker task on the feed's
//! runtime once the journal holds it, and `poll` reads back what happened.
//! The worker sends requests one at a time, in order, through the shared
//! [`RestClient`] (its rate limits, 429 backoff and re-login apply):
//! - a market order is `POST /positions`, then `GET /confirms/{dealReference}`
//!   for the fill (level and size). In hedging mode an order that reduces the
//!   account's position first closes whole opposite positions, oldest first
//!   (`DELETE /positions/{dealId}`, each its own fill), and opens the rest;
//! - a limit or stop order is `POST /workingorders`; its confirm gives the
//!   working order's `dealId`. Executions, expiries and cancels by the broker
//!   are read from `GET /history/activity` every `poll_ms` while orders rest;
//! - a cancel is `DELETE /workingorders/{dealId}`; a 404 means it already
//!   executed or expired, which the activity poll then reports. A cancel of
//!   an order whose `dealId` is not known yet is sent once it is;
//! - working orders have no immediate-or-cancel form: an IOC limit or stop
//!   order waits here for its instrument's next price, which decides it as
//!   the paper broker's first quote does: reached, it goes as a market
//!   order; not, it expires unsent.
//!
//! Capital.com has no client order id, so a request whose reply was lost
//! (timeout, broken connection, a 5xx from a gateway, a crash of the host) is
//! looked up in the activity history: a deal of the same epic, direction and
//! size, made after the request, that no known order claims. Only a
//! documented refusal (a 4xx with an `errorCode`, or 429) is a refusal;
//! anything else leaves the order *unknown*, and it is looked for at every
//! poll for `unknown_grace_secs` (the activity lags by seconds). Found, the
//! order takes its reference; not found by then, it never reached the broker
//! and is rejected. While it is unknown, no new order of that plugin in that
//! instrument is sent ([`super::Broker::unresolved`]). Orders are never sent twice.
//!
//! The worker polls on its own schedule (ticks come before requests, so a
//! busy queue cannot starve them): the activity from a cursor (the newest
//! activity seen, less an overlap for the feed's lag), and every
//! `positions_every_ms` a consistent read of `GET /positions`, which the
//! broker compares with the ledger when nothing is in flight; a difference
//! is handed to the order path, which halts trading naming the instrument
//! and both sizes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BrokerAccount, BrokerNote, BrokerStats, OrderRequest, Plan, Submission, signed};
use stratbox_capital::{CapitalError, RestClient, wire};
use crate::execution::{OrderEvent, Restored};
use stratbox_contract::{Bar, Fill, InstrumentId, Intent, OrderStatus, OrderType, OrderView, Quote, Side, StopLevels, TimeInForce, Timestamp};
use crate::world::SharedWorld;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapitalBrokerConfig {
    /// How often the activity history is read while orders rest at the broker.
    pub poll_ms: u64,
    /// Tries of `GET /confirms` (200 ms apart) before the confirm is left to the next poll.
    pub confirm_attempts: u32,
    /// Market seconds between a request and its deal that a lost reply is matched across.
    pub match_window_secs: i64,
    /// Longest wait for the broker while reconciling after a restart.
    pub reconcile_timeout_secs: u64,
    /// How often the account's balance is read (`GET /accounts`) to reconcile equity.
    pub account_every_ms: u64,
    /// How often positions are read (`GET /positions`) and compared with the host's while running.
    pub positions_every_ms: u64,
    /// How long an order with no clear answer (5xx, timeout) is looked for in the activity.
    pub unknown_grace_secs: u64,
    /// Market seconds the activity cursor reads back over (the activity feed lags).
    pub activity_overlap_secs: i64,
    /// How far the host's P&L may drift from the account's before it is reported.
    pub equity_tolerance: crate::EquityTolerance,
    /// How long a deal reference claimed by an order is remembered (so a lost
    /// reply is never matched to it): past the activity's one-day reach, and
    /// never less than `match_window_secs + unknown_grace_secs`.
    pub claim_retention_secs: u64,
}

impl Default for CapitalBrokerConfig {
    fn default() -> Self {
        Self {
            poll_ms: 1000,
            confirm_attempts: 10,
            match_window_secs: 120,
            reconcile_timeout_secs: 60,
            account_every_ms: 10_000,
            positions_every_ms: 15_000,
            unknown_grace_secs: 30,
            activity_overlap_secs: 120,
            equity_tolerance: crate::EquityTolerance::default(),
            claim_retention_secs: 25 * 3600,
        }
    }
}

/// What reconciliation found at the broker after a restart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciliation {
    /// Whether there was an account to compare with (a remote broker).
    pub compared: bool,
    /// Net position per instrument at the broker (buys positive).
    pub broker_positions: Vec<(InstrumentId, f64)>,
    /// Orders the journal had sent whose fate was looked up.
    pub resolved: usize,
    /// Working orders at the broker that the journal does not know.
    pub unknown_working_orders: Vec<String>,
}

/// A request for the worker.
#[derive(Debug, Clone)]
enum Request {
    Place { id: u64, epic: String, buy: bool, size: f64, kind: OrderType, good_till_ms: Option<i64>, placed_ms: i64 },
    Cancel { id: u64 },
    /// An order restored from the journal: find out what became of it.
    Resolve(Lookup),
    /// All of them at once, from one read of the activity (reconciliation).
    ResolveAll(Vec<Lookup>),
    /// References the journal already gave to orders.
    Claim(Vec<String>),
    /// Read the account's positions and working orders (the end of reconciliation).
    Account,
    /// Cancel working orders no order of the host owns (the operator's adopt).
    CancelForeign(Vec<String>),
    /// Stop looking for an order in doubt: the account shows it never happened.
    Forget { id: u64 },
}

/// An order from before a restart, as the journal left it.
#[derive(Debug, Clone)]
struct Lookup {
    id: u64,
    epic: String,
    buy: bool,
    size: f64,
    filled: f64,
    kind: OrderType,
    placed_ms: i64,
    deal_reference: Option<String>,
    deal_id: Option<String>,
    /// The hedged closes the journal holds for it.
    closes: Vec<String>,
}

/// What the worker reports back.
#[derive(Debug, Clone)]
enum Reply {
    Referenced { id: u64, deal_reference: String },
    /// A hedged close made for the order, under a reference of its own.
    CloseReferenced { id: u64, deal_reference: String },
    /// No clear answer: the order may or may not be at the broker (looked for until the grace ends).
    Unknown { id: u64, why: String },
    /// An order in doubt still not in the activity after the grace: the
    /// account's net position in its epic, and whether a working order no
    /// known order claims matches it, for the host to judge against its books.
    /// `settled`: every resting order of the host's was still resting and no
    /// confirm was pending in the same read (so none of them moved the position unseen);
    /// `round`: how many times its grace has run out.
    Unseen { id: u64, net: f64, working_match: bool, settled: bool, round: u32 },
    /// A consistent read of the account while running; `settled` when no
    /// request was in doubt at the worker (then it must match the ledger).
    Positions { positions: Vec<(String, f64)>, working: Vec<String>, settled: bool },
    Working { id: u64, deal_id: String },
    /// `at_ms`: when the deal was made (server ms), if the broker said.
    Filled { id: u64, size: f64, level: f64, at_ms: Option<i64> },
    Rejected { id: u64, reason: String },
    Cancelled { id: u64 },
    Expired { id: u64 },
    CancelFailed { id: u64, reason: String },
    Account { positions: Vec<(String, f64)>, working: Vec<String> },
    Balance(BrokerAccount),
    Failed { reason: String },
}

#[derive(Debug, Clone)]
struct RemoteOrder {
    owner: Arc<str>,
    view: OrderView,
    market: bool,
}

pub struct CapitalBroker {
    /// The worker's task: it ends with the broker (a request cut off halfway
    /// is what a crash leaves, and the restart's lookups resolve it).
    worker: tokio::task::JoinHandle<()>,
    /// Runs the worker's runtime forward while reconciling, on a runtime
    /// nobody else drives (the simulation's): returns how much time passed.
    drive: Option<Box<dyn FnMut() -> Duration + Send>>,
    world: Arc<SharedWorld>,
    epics: Vec<String>,
    next_id: u64,
    orders: BTreeMap<u64, RemoteOrder>,
    queue: Vec<Request>,
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
    replies: Receiver<Reply>,
    events: Vec<(u64, OrderEvent)>,
    notes: Vec<BrokerNote>,
    protections: BTreeMap<(InstrumentId, Arc<str>), StopLevels>,
    /// Protective levels reached, for the order path to exit.
    due_exits: Vec<(Arc<str>, InstrumentId)>,
    /// When each level last asked for its exit (one entry per level at most).
    fired: BTreeMap<(InstrumentId, Arc<str>), Timestamp>,
    config: CapitalBrokerConfig,
    /// Replies read while reconciling, applied at the next poll.
    held: Vec<Reply>,
    /// Market time of the last event seen, for matching lost replies.
    now: Timestamp,
    /// Last mid per instrument, and (order id, mid) of orders sent since `take_arrivals`.
    last_mid: Vec<Option<f64>>,
    arrivals: Vec<(u64, f64)>,
    /// The latest read of the account's balance.
    account: Option<BrokerAccount>,
    /// Orders with no clear answer yet, and why.
    unknown: BTreeMap<u64, String>,
    /// IOC limit and stop orders, held here until the next price of their
    /// instrument decides them (Capital.com's working orders have no IOC).
    ioc: BTreeMap<u64, (Side, OrderType)>,
    /// Differences found by the running position checks, for the order path.
    discrepancies: Vec<String>,
    /// Deal references the worker remembers (its claims).
    claimed_count: Arc<std::sync::atomic::AtomicUsize>,
    /// Position checks done while running, and those skipped (something in doubt).
    pub position_checks: u64,
    pub position_checks_skipped: u64,
    pub stats: BrokerStats,
}

impl CapitalBroker {
    /// Starts the worker on `runtime` with the feed's client; `epics` are indexed by instrument id.
    pub fn start(rest: Arc<RestClient>, runtime: tokio::runtime::Handle, epics: Vec<String>, world: Arc<SharedWorld>, config: CapitalBrokerConfig) -> Result<Self, CapitalError> {
        runtime.block_on(Self::connect(rest, epics, world, config))
    }

    /// [`CapitalBroker::start`] on the runtime it is awaited on (the
    /// simulation's, whose clock it controls).
    pub async fn connect(rest: Arc<RestClient>, epics: Vec<String>, world: Arc<SharedWorld>, config: CapitalBrokerConfig) -> Result<Self, CapitalError> {
        let hedging = rest.preferences().await?.hedging_mode;
        let utc_offset_ms = i64::from(rest.session_details().await?.timezone_offset) * 3_600_000;
        // The first balance before any order: the baseline equity is reconciled against.
        let account = read_account(&rest.accounts().await?);
        tracing::info!(hedging, epics = epics.len(), balance = account.map(|a| a.balance), "Capital.com broker ready");
        let (requests, rx) = tokio::sync::mpsc::unbounded_channel();
        let (tx, replies) = std::sync::mpsc::channel();
        let claimed_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let worker = Worker {
            rest,
            replies: tx,
            hedging,
            config: config.clone(),
            order_of_deal: HashMap::new(),
            pending_confirms: Vec::new(),
            claimed: HashMap::new(),
            claimed_count: claimed_count.clone(),
            unresolved: Vec::new(),
            cursor: None,
            cancel_wanted: BTreeSet::new(),
            utc_offset_ms,
            rest_unsent: BTreeSet::new(),
            restored_old: BTreeMap::new(),
        };
        let worker = tokio::spawn(worker.run(rx));
        Ok(Self {
            worker,
            drive: None,
            world,
            last_mid: vec![None; epics.len()],
            epics,
            next_id: 1,
            orders: BTreeMap::new(),
            queue: Vec::new(),
            requests,
            replies,
            events: Vec::new(),
            notes: Vec::new(),
            protections: BTreeMap::new(),
            due_exits: Vec::new(),
            fired: BTreeMap::new(),
            config,
            held: Vec::new(),
            now: 0,
            arrivals: Vec::new(),
            account,
            unknown: BTreeMap::new(),
            ioc: BTreeMap::new(),
            claimed_count,
            discrepancies: Vec::new(),
            position_checks: 0,
            position_checks_skipped: 0,
            stats: BrokerStats::default(),
        })
    }

    /// While reconciling, waits for the worker by calling `drive` instead of
    /// blocking (the worker's runtime runs only when its owner drives it).
    pub fn drive_with(&mut self, drive: Box<dyn FnMut() -> Duration + Send>) {
        self.drive = Some(drive);
    }

    /// The next reply, within what is left of `left`; `None` once it is used up.
    fn next_reply(&mut self, left: &mut Duration) -> Option<Reply> {
        let Some(drive) = self.drive.as_mut() else {
            let started = std::time::Instant::now();
            let reply = self.replies.recv_timeout(*left).ok();
            *left = left.saturating_sub(started.elapsed());
            return reply;
        };
        loop {
            if let Ok(reply) = self.replies.try_recv() {
                return Some(reply);
            }
            if left.is_zero() {
                return None;
            }
            *left = left.saturating_sub(drive().max(Duration::from_millis(1)));
        }
    }

    fn place(&mut self, owner: &Arc<str>, o: OrderRequest, now: Timestamp) -> Submission {
        let Some(epic) = self.epics.get(o.instrument as usize).cloned() else { return Submission::Nothing };
        let id = self.next_id;
        self.next_id += 1;
        let kind = o.order_type;
        // Day orders rest until the end of their UTC day; IOC has no resting form at Capital.com.
        let good_till_ms = match o.time_in_force {
            TimeInForce::Day => Some((now / 1_000_000).div_euclid(86_400_000) * 86_400_000 + 86_400_000 - 1000),
            _ => None,
        };
        let view = OrderView { id, instrument: o.instrument, side: o.side, quantity: o.quantity, filled_quantity: 0.0, order_type: o.order_type, status: OrderStatus::Working, tag: o.tag };
        self.world.ledger_mut().book_mut(owner).orders.insert(id, view);
        self.orders.insert(id, RemoteOrder { owner: owner.clone(), view, market: kind == OrderType::Market });
        if kind != OrderType::Market && o.time_in_force == TimeInForce::Ioc {
            // As the paper broker does: the next price fills it or it expires.
            self.ioc.insert(id, (o.side, kind));
            self.stats.orders += 1;
            return Submission::Queued(id);
        }
        self.queue.push(Request::Place { id, epic, buy: o.side == Side::Buy, size: o.quantity, kind, good_till_ms, placed_ms: now / 1_000_000 });
        // It goes out with this event's commit: the market then is its arrival.
        if let Some(mid) = self.last_mid.get(o.instrument as usize).copied().flatten() {
            self.arrivals.push((id, mid));
        }
        self.stats.orders += 1;
        Submission::Queued(id)
    }

    fn cancel_where(&mut self, pred: impl Fn(&RemoteOrder) -> bool) -> Submission {
        let ids: Vec<u64> = self.orders.iter().filter(|(_, o)| !o.market && pred(o)).map(|(&id, _)| id).collect();
        for &id in &ids {
            if self.ioc.remove(&id).is_some() {
                // Never sent: it ends here.
                self.stats.cancels += 1;
                self.finish(id, OrderEvent::Cancelled);
            } else {
                self.queue.push(Request::Cancel { id });
            }
        }
        if ids.is_empty() { Submission::Nothing } else { Submission::Cancelled(ids.len()) }
    }

    /// The IOC limit and stop orders of `instrument`, decided by its price
    /// now (`bid`/`ask`) as the paper broker decides them at their first
    /// quote: one that reaches its level goes as a market order (filled at
    /// the market, which may have moved past the level since this price);
    /// the others expire unsent.
    fn decide_ioc(&mut self, instrument: InstrumentId, bid: f64, ask: f64, now: Timestamp) {
        let due: Vec<(u64, Side, OrderType)> =
            self.ioc.iter().filter(|(id, _)| self.orders.get(id).is_some_and(|o| o.view.instrument == instrument)).map(|(&id, &(side, kind))| (id, side, kind)).collect();
        for (id, side, kind) in due {
            self.ioc.remove(&id);
            let buy = side == Side::Buy;
            let price = if buy { ask } else { bid };
            let reached = price > 0.0 && super::reached(kind, buy, price);
            let (Some(o), Some(epic)) = (self.orders.get_mut(&id), self.epics.get(instrument as usize).cloned()) else { continue };
            if !reached {
                self.stats.expired += 1;
                self.finish(id, OrderEvent::Expired);
                continue;
            }
            o.market = true;
            let size = o.view.quantity;
            self.queue.push(Request::Place { id, epic, buy, size, kind: OrderType::Market, good_till_ms: None, placed_ms: now / 1_000_000 });
        }
    }

    /// An order is done: off the books.
    fn finish(&mut self, id: u64, event: OrderEvent) {
        if let Some(o) = self.orders.remove(&id) {
            self.world.ledger_mut().book_mut(&o.owner).orders.remove(&id);
            self.events.push((id, event));
        }
    }

    fn apply(&mut self, reply: Reply, fills: &mut Vec<(Arc<str>, Fill)>) {
        match reply {
            Reply::Referenced { id, deal_reference } => {
                if self.unknown.remove(&id).is_some() {
                    tracing::info!(order = id, deal_reference = %deal_reference, "an order in doubt was found at the broker");
                }
                self.notes.push(BrokerNote::Reference { order_id: id, deal_reference });
            }
            Reply::CloseReferenced { id, deal_reference } => self.notes.push(BrokerNote::CloseReference { order_id: id, deal_reference }),
            Reply::Unknown { id, why } => {
                tracing::warn!(order = id, why = %why, "no clear answer from Capital.com: the order is in doubt; new orders for its plugin and instrument wait");
                self.unknown.insert(id, why);
            }
            Reply::Unseen { id, net, working_match, settled, round } => self.judge_unseen(id, net, working_match, settled, round),
            Reply::Positions { positions, working, settled } => self.check_positions(positions, working, settled),
            Reply::Working { id, deal_id } => self.notes.push(BrokerNote::DealId { order_id: id, deal_id }),
            Reply::Filled { id, size, level, at_ms } => {
                let Some(o) = self.orders.get_mut(&id) else {
                    tracing::error!(order = id, size, level, "Capital.com reported a fill of an order the host does not have");
                    return;
                };
                let qty = size.min(o.view.quantity - o.view.filled_quantity);
                o.view.filled_quantity += qty;
                // Stamped with the deal's time at the broker (the host may hear of it much later).
                let time = at_ms.map_or(self.now, |ms| ms.saturating_mul(1_000_000));
                let fill = Fill { order_id: id, instrument: o.view.instrument, time, side: o.view.side, quantity: qty, price: level, fee: 0.0 };
                let owner = o.owner.clone();
                let done = self.world.ledger_mut().fill_order(&owner, &o.view, qty, level, 0.0);
                if done {
                    self.orders.remove(&id);
                } else {
                    self.stats.partial_fills += 1;
                }
                self.stats.fills += 1;
                fills.push((owner, fill));
            }
            Reply::Rejected { id, reason } => {
                self.unknown.remove(&id);
                tracing::warn!(order = id, reason = %reason, "Capital.com refused an order");
                if self.orders.get(&id).is_some_and(|o| o.view.filled_quantity > 0.0) {
                    // Part of it was done (hedged closes): the rest ends as cancelled.
                    self.finish(id, OrderEvent::Cancelled);
                } else if let Some(o) = self.orders.remove(&id) {
                    self.world.ledger_mut().book_mut(&o.owner).orders.remove(&id);
                    self.notes.push(BrokerNote::Rejected { order_id: id, reason });
                }
            }
            Reply::Cancelled { id } => {
                self.stats.cancels += 1;
                self.finish(id, OrderEvent::Cancelled);
            }
            Reply::Expired { id } => {
                self.stats.expired += 1;
                self.finish(id, OrderEvent::Expired);
            }
            Reply::CancelFailed { id, reason } => tracing::info!(order = id, reason = %reason, "cancel not done at Capital.com; the order's fate comes with the activity"),
            // Only reconciliation asks for the account, and waits for it there.
            Reply::Account { .. } => tracing::debug!("an account read after reconciliation ended; ignored"),
            Reply::Balance(mut a) => {
                a.read = self.account.map_or(1, |last| last.read + 1);
                self.account = Some(a);
            }
            Reply::Failed { reason } => tracing::warn!(reason = %reason, "Capital.com broker"),
        }
    }

    /// An order in doubt the activity still does not show, judged by the
    /// account: if the account's net position in its instrument is the
    /// host's (and no other order of that instrument is on its way or in
    /// doubt, and no unclaimed working order matches it), it never reached the
    /// broker and is refused. If the account holds it, or cannot be told
    /// apart, it stays in doubt and is looked for again.
    fn judge_unseen(&mut self, id: u64, net: f64, working_match: bool, settled: bool, round: u32) {
        let Some(o) = self.orders.get(&id) else {
            let _ = self.requests.send(Request::Forget { id });
            return;
        };
        let instrument = o.view.instrument;
        let left = signed(o.view.side, o.view.quantity - o.view.filled_quantity);
        // What else could move the account's position unseen: another market order on its way or an order in doubt.
        let others = self.orders.iter().any(|(&k, x)| k != id && x.view.instrument == instrument && (x.market || self.unknown.contains_key(&k)))
            || self.queue.iter().any(|r| matches!(r, Request::Place { .. }));
        let host: f64 = self.world.ledger().net_by_plugin(instrument).iter().map(|(_, q)| q).sum();
        if settled && !others && !working_match && (net - host).abs() < 1e-9 {
            let reason = format!("not received by Capital.com: no matching deal in the activity, and the account's position ({net}) is the host's");
            tracing::warn!(order = id, reason = %reason, "an order in doubt never reached the broker");
            let _ = self.requests.send(Request::Forget { id });
            let mut ignored = Vec::new();
            self.apply(Reply::Rejected { id, reason }, &mut ignored);
        } else if (net - host - left).abs() < 1e-9 || working_match {
            tracing::warn!(order = id, net, host, "an order in doubt is in the account but not yet in the activity: still looking");
        } else {
            tracing::warn!(order = id, net, host, others, settled, "an order in doubt cannot be told from the account yet: still looking");
        }
        // Still in doubt after three graces: the operator is told (trading halts until a reconciliation or adopt).
        if round == 3 && self.orders.contains_key(&id) {
            let symbol = self.epics.get(instrument as usize).cloned().unwrap_or_default();
            self.discrepancies.push(format!("{symbol}: order {id} is in doubt and the account cannot tell whether it was dealt (broker {net}, host {host})"));
        }
    }

    /// A running read of the account against the ledger. Only when nothing
    /// is in doubt: no order unknown, none sent and not yet answered (the
    /// worker's `settled`, and every market order here filled or refused).
    fn check_positions(&mut self, positions: Vec<(String, f64)>, working: Vec<String>, settled: bool) {
        let in_flight = self.orders.values().any(|o| o.market);
        if !settled || in_flight || !self.unknown.is_empty() || !self.queue.is_empty() {
            self.position_checks_skipped += 1;
            return;
        }
        self.position_checks += 1;
        let mut traded = Vec::new();
        let mut foreign: BTreeMap<String, f64> = BTreeMap::new();
        for (epic, size) in positions {
            match self.epic_id(&epic) {
                Some(i) => traded.push((i, size)),
                None => *foreign.entry(epic).or_default() += size,
            }
        }
        let mut found: Vec<String> =
            self.world.ledger().net_differences(&traded, 1e-6).into_iter().map(|(i, h, b)| format!("{}: host {h}, broker {b}", self.epics[i as usize])).collect();
        for (epic, b) in foreign.into_iter().filter(|(_, b)| b.abs() > 1e-9) {
            found.push(format!("{epic}: host 0 (not traded here), broker {b}"));
        }
        if !working.is_empty() {
            found.push(format!("working orders at the broker that the host does not know: {}", working.join(", ")));
        }
        if !found.is_empty() {
            tracing::error!(differences = %found.join("; "), "the account's positions differ from the host's while running");
            self.discrepancies.extend(found);
        }
    }

    fn epic_id(&self, epic: &str) -> Option<InstrumentId> {
        self.epics.iter().position(|e| e == epic).map(|i| i as InstrumentId)
    }
}

impl super::Broker for CapitalBroker {
    fn plan(&self, owner: &Arc<str>, intent: &Intent) -> Plan {
        match intent {
            Intent::Order(o) => Plan::Place(OrderRequest { instrument: o.instrument, side: o.side, quantity: o.quantity, order_type: o.order_type, time_in_force: o.time_in_force, tag: o.tag }),
            Intent::Target(t) => {
                let pending: f64 = self
                    .orders
                    .values()
                    .filter(|o| o.market && &o.owner == owner && o.view.instrument == t.instrument)
                    .map(|o| signed(o.view.side, o.view.quantity - o.view.filled_quantity))
                    .sum();
                super::order_for_target(t.quantity, self.world.ledger().quantity(owner, t.instrument), pending, t.instrument)
            }
            Intent::Cancel(id) => Plan::Cancel(Some(*id), None),
            Intent::CancelAll(instrument) => Plan::Cancel(None, *instrument),
        }
    }

    fn execute(&mut self, owner: &Arc<str>, plan: Plan, now: Timestamp) -> Submission {
        self.now = self.now.max(now);
        match plan {
            Plan::Place(o) => self.place(owner, o, now),
            Plan::Cancel(Some(id), _) => self.cancel_where(|o| &o.owner == owner && o.view.id == id),
            Plan::Cancel(None, instrument) => self.cancel_where(|o| &o.owner == owner && instrument.is_none_or(|i| o.view.instrument == i)),
            Plan::Nothing => Submission::Nothing,
        }
    }

    /// Marks positions; protective levels are watched here. A level reached
    /// is handed to the order path (`take_protective_exits`), which sends the
    /// exit like any other order: risk-checked, with a client id, journaled first.
    fn on_quote(&mut self, quote: &Quote) -> Vec<(Arc<str>, Fill)> {
        self.now = self.now.max(quote.time);
        let mid = 0.5 * (quote.bid + quote.ask);
        self.world.ledger_mut().mark(quote.instrument, mid);
        if let Some(m) = self.last_mid.get_mut(quote.instrument as usize) {
            *m = Some(mid);
        }
        if !self.ioc.is_empty() {
            self.decide_ioc(quote.instrument, quote.bid, quote.ask, quote.time);
        }
        let first: (InstrumentId, Arc<str>) = (quote.instrument, Arc::from(""));
        let mut flat = Vec::new();
        for ((instrument, owner), levels) in self.protections.range(first..).take_while(|((i, _), _)| *i == quote.instrument) {
            let qty = self.world.ledger().quantity(owner, *instrument);
            let long = qty > 0.0;
            let exit = if long { quote.bid } else { quote.ask };
            let hit = qty != 0.0
                && (levels.stop_loss.is_some_and(|s| if long { exit <= s } else { exit >= s }) || levels.take_profit.is_some_and(|t| if long { exit >= t } else { exit <= t }));
            let key = (*instrument, owner.clone());
            // The level stays until the position is closed: an exit the risk
            // engine refuses now (an order in doubt) is asked for again, at
            // most once a second of market time while the level is reached.
            if hit && self.fired.get(&key).is_none_or(|at| quote.time >= at.saturating_add(1_000_000_000)) {
                self.fired.insert(key.clone(), quote.time);
                self.due_exits.push((owner.clone(), *instrument));
                self.stats.protective_exits += 1;
            }
            if qty == 0.0 {
                flat.push(key);
            }
        }
        for key in flat {
            self.fired.remove(&key);
            self.protections.remove(&key);
        }
        Vec::new()
    }

    fn on_bar(&mut self, bar: &Bar) -> Vec<(Arc<str>, Fill)> {
        self.now = self.now.max(bar.start);
        self.world.ledger_mut().mark(bar.instrument, bar.close);
        if let Some(m) = self.last_mid.get_mut(bar.instrument as usize) {
            *m = Some(bar.close);
        }
        if !self.ioc.is_empty() {
            self.decide_ioc(bar.instrument, bar.close, bar.close, bar.start);
        }
        Vec::new()
    }

    fn cancel_all(&mut self, owner: &str) -> usize {
        self.protections.retain(|(_, o), _| &**o != owner);
        self.fired.retain(|(_, o), _| &**o != owner);
        match self.cancel_where(|o| &*o.owner == owner) {
            Submission::Cancelled(n) => n,
            _ => 0,
        }
    }

    fn protections(&self) -> Vec<(Arc<str>, StopLevels)> {
        self.protections.iter().map(|((_, owner), levels)| (owner.clone(), *levels)).collect()
    }

    fn protect(&mut self, owner: &Arc<str>, levels: StopLevels) {
        let key = (levels.instrument, owner.clone());
        self.fired.remove(&key);
        if levels.stop_loss.is_none() && levels.take_profit.is_none() {
            self.protections.remove(&key);
        } else {
            self.protections.insert(key, levels);
        }
    }

    fn take_events(&mut self) -> Vec<(u64, OrderEvent)> {
        std::mem::take(&mut self.events)
    }

    fn take_arrivals(&mut self) -> Vec<(u64, f64)> {
        std::mem::take(&mut self.arrivals)
    }

    fn take_protective_exits(&mut self) -> Vec<(Arc<str>, InstrumentId)> {
        std::mem::take(&mut self.due_exits)
    }

    fn position_checks(&self) -> u64 {
        self.position_checks
    }

    fn remembered_references(&self) -> usize {
        self.claimed_count.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn cancel_foreign(&mut self, deal_ids: &[String]) {
        if !deal_ids.is_empty() {
            self.queue.push(Request::CancelForeign(deal_ids.to_vec()));
        }
    }

    fn unresolved(&self, owner: &str, instrument: InstrumentId) -> Option<String> {
        self.unknown.iter().find_map(|(id, why)| {
            let o = self.orders.get(id)?;
            (&*o.owner == owner && o.view.instrument == instrument).then(|| format!("order {id} is in doubt at Capital.com ({why})"))
        })
    }

    fn take_discrepancies(&mut self) -> Vec<String> {
        std::mem::take(&mut self.discrepancies)
    }

    fn restore(&mut self, o: &Restored) {
        let view = o.view();
        self.world.ledger_mut().book_mut(&o.plugin).orders.insert(o.broker_id, view);
        let market = o.order_type == OrderType::Market;
        self.orders.insert(o.broker_id, RemoteOrder { owner: o.plugin.clone(), view, market });
        self.next_id = self.next_id.max(o.broker_id + 1);
        // An IOC limit or stop went out as a market order, if at all.
        let kind = if o.time_in_force == TimeInForce::Ioc { OrderType::Market } else { o.order_type };
        if kind == OrderType::Market && let Some(r) = self.orders.get_mut(&o.broker_id) {
            r.market = true;
        }
        let Some(epic) = self.epics.get(o.instrument as usize).cloned() else { return };
        self.queue.push(Request::Resolve(Lookup {
            id: o.broker_id,
            epic,
            buy: o.side == Side::Buy,
            size: o.quantity,
            filled: o.filled,
            kind,
            placed_ms: o.placed_at / 1_000_000,
            deal_reference: o.deal_reference.clone(),
            deal_id: o.deal_id.clone(),
            closes: o.closes.clone(),
        }));
    }

    fn reserve_ids_below(&mut self, id: u64) {
        self.next_id = self.next_id.max(id);
    }

    fn stats(&self) -> BrokerStats {
        self.stats
    }

    fn queued(&self) -> usize {
        self.queue.len()
    }

    fn dispatch(&mut self) {
        for r in self.queue.drain(..) {
            if self.requests.send(r).is_err() {
                tracing::error!("the Capital.com worker has stopped; a request was not sent");
            }
        }
    }

    fn discard_queued(&mut self, why: &str) {
        let mut unsent: Vec<u64> = std::mem::take(&mut self.queue).into_iter().filter_map(|r| if let Request::Place { id, .. } = r { Some(id) } else { None }).collect();
        // IOC orders held for their price were never sent either.
        unsent.extend(std::mem::take(&mut self.ioc).into_keys());
        for id in unsent {
            self.notes.push(BrokerNote::Rejected { order_id: id, reason: format!("not sent: {why}") });
            if let Some(o) = self.orders.remove(&id) {
                self.world.ledger_mut().book_mut(&o.owner).orders.remove(&id);
            }
        }
    }

    fn poll(&mut self) -> Vec<(Arc<str>, Fill)> {
        let mut fills = Vec::new();
        for reply in std::mem::take(&mut self.held) {
            self.apply(reply, &mut fills);
        }
        while let Ok(reply) = self.replies.try_recv() {
            self.apply(reply, &mut fills);
        }
        fills
    }

    fn take_notes(&mut self) -> Vec<BrokerNote> {
        std::mem::take(&mut self.notes)
    }

    fn account(&self) -> Option<BrokerAccount> {
        self.account
    }

    /// Sends the restored orders' lookups and an account read, and waits for
    /// the account: by then every lookup before it has been answered (the
    /// worker works in order). Fills and events stay queued for `poll`.
    fn reconcile(&mut self, now: Timestamp, known_references: &[String]) -> Result<Reconciliation, String> {
        self.now = self.now.max(now);
        let (lookups, rest): (Vec<Request>, Vec<Request>) = std::mem::take(&mut self.queue).into_iter().partition(|r| matches!(r, Request::Resolve(_)));
        let lookups: Vec<Lookup> = lookups.into_iter().filter_map(|r| if let Request::Resolve(l) = r { Some(l) } else { None }).collect();
        let resolved = lookups.len();
        // First what the journal already claims, then the lookups, then anything queued since.
        self.queue = [Request::Claim(known_references.to_vec()), Request::ResolveAll(lookups)].into_iter().chain(rest).collect();
        self.queue.push(Request::Account);
        self.dispatch();
        let mut left = Duration::from_secs(self.config.reconcile_timeout_secs);
        // What came before the account read is applied at the next poll, in
        // order, whether or not the read succeeds: a fill found on the way is
        // a fill, and an order left in flight would stop the position checks.
        let account = loop {
            match self.next_reply(&mut left) {
                Some(Reply::Account { positions, working }) => break (positions, working),
                Some(Reply::Failed { reason }) => return Err(format!("Capital.com could not be read: {reason}")),
                Some(other) => self.held.push(other),
                None => return Err(format!("Capital.com did not answer within {} s", self.config.reconcile_timeout_secs)),
            }
        };
        let (positions, working) = account;
        let mut net: BTreeMap<InstrumentId, f64> = BTreeMap::new();
        for (epic, size) in positions {
            match self.epic_id(&epic) {
                Some(i) => *net.entry(i).or_default() += size,
                None => return Err(format!("Capital.com holds a position in {epic}, which this host does not trade")),
            }
        }
        Ok(Reconciliation { compared: true, broker_positions: net.into_iter().collect(), resolved, unknown_working_orders: working })
    }
}

impl Drop for CapitalBroker {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

/// The worker: one request at a time, in order, plus the activity poll.
struct Worker {
    rest: Arc<RestClient>,
    replies: Sender<Reply>,
    hedging: bool,
    config: CapitalBrokerConfig,
    /// Resting orders at the broker: working order `dealId` -> order id.
    order_of_deal: HashMap<String, u64>,
    /// Deals received whose confirm is not in yet: (order id, reference, market).
    pending_confirms: Vec<(u64, String, bool)>,
    /// References that belong to known orders (never matched to a lost reply),
    /// and when each was claimed: kept `claim_retention_secs`, longer than any
    /// activity read reaches back (a day), then forgotten.
    claimed: HashMap<String, tokio::time::Instant>,
    /// Their count, for the order path's footprint.
    claimed_count: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests with no clear answer, looked for at every poll until their deadline.
    unresolved: Vec<Unresolved>,
    /// The newest activity seen (server ms) and when, for reading on from it.
    cursor: Option<(i64, tokio::time::Instant)>,
    /// Cancels of orders whose working order's `dealId` is not known yet
    /// (confirm pending, or in doubt): sent once it is, dropped if the order
    /// ends otherwise. At most one per order the worker is still resolving.
    cancel_wanted: BTreeSet<u64>,
    /// The account's time zone: confirm `date`s are local, this far ahead of UTC.
    utc_offset_ms: i64,
    /// Hedged orders stopped at a close not confirmed yet: their rest ends
    /// once its confirm is read (one per pending confirm at most).
    rest_unsent: BTreeSet<u64>,
    /// Restored resting orders placed before the activity's reach whose
    /// confirm is still pending: when each was placed (one per pending confirm at most).
    restored_old: BTreeMap<u64, i64>,
}

/// What became of a restored request whose reply was lost.
enum Lost {
    /// Its deal, under this reference.
    Reference(String),
    /// A hedged order its closes filled whole (no deal of its own).
    Closed,
    /// Closes it may have made are there, but another lost order may own them.
    Undecided,
    NotFound,
}

/// A request with no clear answer (5xx, timeout, broken connection).
#[derive(Debug, Clone)]
struct Unresolved {
    id: u64,
    epic: String,
    buy: bool,
    size: f64,
    working: bool,
    placed_ms: i64,
    deadline: tokio::time::Instant,
    why: String,
    /// How many times its grace has run out (the account was read for it each time).
    judged: u32,
}

/// The preferred account's balance (the one a login trades), else the first.
fn read_account(accounts: &[wire::Account]) -> Option<BrokerAccount> {
    let a = accounts.iter().find(|a| a.preferred).or(accounts.first())?;
    let read_at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let b = &a.balance;
    Some(BrokerAccount { balance: b.balance, deposit: b.deposit, profit_loss: b.profit_loss, available: b.available, read_at_ms, read: 0 })
}

/// How much of a restored market order's fills came from the deal under its
/// reference, which dealt `dealt`: in hedging the closes before it filled the
/// rest of the order (`size - dealt`), and they are not this deal's.
fn filled_under(l: &Lookup, dealt: f64) -> f64 {
    (l.filled - (l.size - dealt)).max(0.0)
}

fn direction(buy: bool) -> &'static str {
    if buy { "BUY" } else { "SELL" }
}

impl Worker {
    async fn run(mut self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Request>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.poll_ms.max(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = Duration::from_millis(self.config.account_every_ms.max(100));
        let mut balance = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        balance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = Duration::from_millis(self.config.positions_every_ms.max(100));
        let mut positions = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        positions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Periodic reads and requests take turns: after a read, a waiting
        // request goes first, so neither starves the other (the reads alone
        // can fill the rate limit when they fall behind).
        let mut read_last = false;
        loop {
            let waiting = if read_last { rx.try_recv().ok() } else { None };
            let request = match waiting {
                Some(r) => Some(r),
                None => tokio::select! {
                    biased;
                    _ = tick.tick() => {
                        if !self.order_of_deal.is_empty() || !self.pending_confirms.is_empty() || !self.unresolved.is_empty() {
                            self.poll().await;
                        }
                        self.forget_old_claims();
                        None
                    }
                    _ = positions.tick() => {
                        match self.account().await {
                            Ok((positions, working, explained)) => {
                                let settled = explained && self.pending_confirms.is_empty() && self.unresolved.is_empty();
                                self.send(Reply::Positions { positions, working, settled });
                            }
                            Err(e) => self.send(Reply::Failed { reason: format!("positions: {e}") }),
                        }
                        None
                    }
                    _ = balance.tick() => {
                        match self.rest.accounts().await {
                            Ok(accounts) => {
                                if let Some(a) = read_account(&accounts) {
                                    self.send(Reply::Balance(a));
                                }
                            }
                            Err(e) => self.send(Reply::Failed { reason: format!("account balance: {e}") }),
                        }
                        None
                    }
                    r = rx.recv() => match r {
                        Some(r) => Some(r),
                        None => return,
                    },
                },
            };
            read_last = request.is_none();
            if let Some(r) = request {
                self.handle(r).await;
            }
            if !self.cancel_wanted.is_empty() {
                self.cancel_when_known().await;
            }
        }
    }

    /// Forgets references claimed longer ago than any activity read reaches.
    fn forget_old_claims(&mut self) {
        // Not while an order is in doubt: its look-up reads back to when it was placed.
        if !self.unresolved.is_empty() {
            return;
        }
        // Never shorter than a read for a lost reply reaches back (the match
        // window before a request, the grace after it): a forgotten claim
        // there would let a lost reply take another order's deal.
        let c = &self.config;
        let keep = Duration::from_secs(c.claim_retention_secs.max(c.match_window_secs.max(0) as u64 + c.unknown_grace_secs));
        self.claimed.retain(|_, at| at.elapsed() < keep);
        self.claimed_count.store(self.claimed.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Cancels asked for before the order's `dealId` was known, now that it
    /// is; those whose order ended otherwise (refused, never received) are dropped.
    async fn cancel_when_known(&mut self) {
        for id in std::mem::take(&mut self.cancel_wanted) {
            if let Some(deal_id) = self.deal_of(id) {
                self.cancel_resting(id, deal_id).await;
            } else if self.awaits_deal_id(id) {
                self.cancel_wanted.insert(id);
            }
        }
    }

    /// Whether order `id` may still get a `dealId`: its confirm is pending, or it is in doubt.
    fn awaits_deal_id(&self, id: u64) -> bool {
        self.pending_confirms.iter().any(|(o, _, _)| *o == id) || self.unresolved.iter().any(|u| u.id == id)
    }

    /// A reference is a known order's from now on (never matched to a lost reply).
    fn claim(&mut self, reference: String) {
        self.claimed.insert(reference, tokio::time::Instant::now());
    }

    fn deal_of(&self, id: u64) -> Option<String> {
        // Few orders rest at once: the map is searched rather than kept twice.
        self.order_of_deal.iter().find(|(_, o)| **o == id).map(|(d, _)| d.clone())
    }

    async fn cancel_resting(&mut self, id: u64, deal_id: String) {
        match self.rest.delete_working_order(&deal_id).await {
            Ok(_) => {
                self.order_of_deal.remove(&deal_id);
                self.send(Reply::Cancelled { id });
            }
            Err(e) => self.send(Reply::CancelFailed { id, reason: e.to_string() }),
        }
    }

    fn send(&self, reply: Reply) {
        let _ = self.replies.send(reply);
    }

    async fn handle(&mut self, r: Request) {
        match r {
            Request::Place { id, epic, buy, size, kind, good_till_ms, placed_ms } => self.place(id, &epic, buy, size, kind, good_till_ms, placed_ms).await,
            Request::Cancel { id } => match self.deal_of(id) {
                Some(deal_id) => self.cancel_resting(id, deal_id).await,
                // Its confirm or the activity has not given its `dealId` yet: cancelled once they do.
                None if self.awaits_deal_id(id) => {
                    self.cancel_wanted.insert(id);
                }
                None => self.send(Reply::CancelFailed { id, reason: "not resting at the broker".into() }),
            },
            Request::Resolve(lookup) => self.resolve_all(vec![lookup]).await,
            Request::ResolveAll(lookups) => {
                self.resolve_all(lookups).await;
                // The account is read once every order in doubt is found or past
                // its grace (then the host judges it against the account; until
                // then it stays in doubt, and a deal the activity still hides
                // shows as a difference, which keeps trading halted).
                while self.unresolved.iter().any(|u| u.judged == 0) {
                    tokio::time::sleep(Duration::from_millis(self.config.poll_ms.max(50))).await;
                    self.resolve_unknown().await;
                }
            }
            Request::Forget { id } => self.unresolved.retain(|u| u.id != id),
            Request::Claim(references) => references.into_iter().for_each(|r| self.claim(r)),
            Request::CancelForeign(deal_ids) => {
                for deal_id in deal_ids {
                    match self.rest.delete_working_order(&deal_id).await {
                        Ok(_) => tracing::warn!(deal_id = %deal_id, "cancelled a working order the host did not own"),
                        Err(e) => self.send(Reply::Failed { reason: format!("cancelling the unknown working order {deal_id}: {e}") }),
                    }
                }
            }
            Request::Account => match self.account().await {
                Ok((positions, working, true)) => self.send(Reply::Account { positions, working }),
                Ok((_, _, false)) => self.send(Reply::Failed {
                    reason: format!("a resting order left the broker's book and the activity did not say how within {} s", self.config.unknown_grace_secs),
                }),
                Err(e) => self.send(Reply::Failed { reason: e.to_string() }),
            },
        }
    }

    /// The account's positions (epic, signed size) and the working orders no known order
    /// claims, consistent with the executions applied: resting orders keep trading while
    /// we read, so the positions are read before and after the activity, until both agree.
    /// The activity lags: a resting order of ours that left the broker's book with no
    /// activity saying how is waited for (up to the grace window); the flag says whether
    /// every such order was explained (if not, the positions may hold fills not yet seen).
    async fn account(&mut self) -> Result<(Vec<(String, f64)>, Vec<String>, bool), CapitalError> {
        let signed = |p: wire::Positions| -> Vec<(String, String, f64)> {
            let mut v: Vec<_> = p.positions.into_iter().map(|p| (p.position.deal_id, p.market.epic, if p.position.direction == "BUY" { p.position.size } else { -p.position.size })).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.config.unknown_grace_secs.max(1));
        let mut before = signed(self.rest.positions().await?);
        loop {
            let activities = self.rest.activity_last(600).await?;
            let (after, working) = tokio::try_join!(self.rest.positions(), self.rest.working_orders())?;
            let after = signed(after);
            let late = tokio::time::Instant::now() >= deadline;
            if after == before {
                // Nothing traded while the activity was read: it covers these positions.
                self.apply_activity(&activities);
                let resting: HashSet<String> = working.working_orders.into_iter().map(|w| w.working_order_data.deal_id).collect();
                let explained = self.order_of_deal.keys().all(|d| resting.contains(d));
                if explained || late {
                    if !explained {
                        let gone: Vec<&String> = self.order_of_deal.keys().filter(|d| !resting.contains(*d)).collect();
                        tracing::warn!(?gone, "resting orders left the broker's book with no activity saying how; the account read is not trusted");
                    }
                    let mut foreign: Vec<String> = resting.into_iter().filter(|d| !self.order_of_deal.contains_key(d)).collect();
                    foreign.sort();
                    return Ok((after.into_iter().map(|(_, epic, size)| (epic, size)).collect(), foreign, explained));
                }
            } else if late {
                return Err(CapitalError::Protocol { endpoint: "GET /positions".into(), why: "the account kept changing while it was read".into() });
            }
            tokio::time::sleep(Duration::from_millis(self.config.poll_ms.clamp(50, 1000))).await;
            before = after;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn place(&mut self, id: u64, epic: &str, buy: bool, size: f64, kind: OrderType, good_till_ms: Option<i64>, placed_ms: i64) {
        let mut left = size;
        if kind == OrderType::Market && self.hedging {
            // Hedging keeps opposite positions side by side: close whole ones first.
            let Some(rest) = self.close_opposite(id, epic, buy, size).await else { return };
            left = rest;
            if left <= 1e-9 {
                return;
            }
        }
        let mut request = wire::DealRequest { epic: epic.into(), direction: direction(buy).into(), size: left, ..Default::default() };
        let sent = match kind {
            OrderType::Market => self.rest.open_position(&request).await,
            OrderType::Limit(level) | OrderType::Stop(level) => {
                request.level = Some(level);
                request.order_type = Some(if matches!(kind, OrderType::Limit(_)) { "LIMIT" } else { "STOP" }.into());
                request.good_till_date = good_till_ms.map(wire::format_query_time);
                self.rest.create_working_order(&request).await
            }
        };
        let reference = match sent {
            Ok(r) => r,
            // Refused in the API's own terms: the broker did not take it.
            Err(e) if e.is_refusal() => return self.send(Reply::Rejected { id, reason: e.to_string() }),
            // No clear answer (5xx, timeout, broken connection): it may have been dealt.
            // Unknown until the activity shows it or the grace window ends without it.
            Err(e) => {
                tracing::warn!(order = id, error = %e, "no clear answer to a dealing request; looking for it in the activity");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(self.config.unknown_grace_secs);
                self.doubt(Unresolved { id, epic: epic.to_owned(), buy, size: left, working: kind != OrderType::Market, placed_ms, deadline, why: e.to_string(), judged: 0 });
                return self.resolve_unknown().await;
            }
        };
        self.claim(reference.clone());
        self.send(Reply::Referenced { id, deal_reference: reference.clone() });
        self.confirm(id, reference, kind == OrderType::Market).await;
    }

    /// Closes whole positions opposite to `buy` in `epic` that fit in `size`,
    /// oldest first; returns what is left to open, or `None` when the rest
    /// must not be opened: a close whose outcome is not known yet may have
    /// happened, and opening as if it had not would double the trade.
    async fn close_opposite(&mut self, id: u64, epic: &str, buy: bool, size: f64) -> Option<f64> {
        let mut left = size;
        let positions = match self.rest.positions().await {
            Ok(p) => p.positions,
            Err(e) => {
                // Nothing closed: opening the whole size keeps the account's net right.
                tracing::warn!(error = %e, "cannot read positions to close in hedging mode; opening instead");
                return Some(left);
            }
        };
        let mut opposite: Vec<_> = positions.into_iter().filter(|p| p.market.epic == epic && (p.position.direction == "BUY") != buy).collect();
        opposite.sort_by(|a, b| a.position.created_date_utc.cmp(&b.position.created_date_utc));
        for p in opposite {
            if p.position.size > left + 1e-9 {
                continue;
            }
            let deal_id = p.position.deal_id;
            match self.rest.close_position(&deal_id).await {
                Ok(reference) => {
                    self.claim(reference.clone());
                    // Journaled, so that a restart never takes this close for another order's.
                    self.send(Reply::CloseReferenced { id, deal_reference: reference.clone() });
                    match self.read_confirm(&reference).await {
                        Ok(c) if c.accepted() => {
                            left -= c.size;
                            let at_ms = self.confirm_time(&c);
                            self.send(Reply::Filled { id, size: c.size, level: c.level, at_ms });
                        }
                        // Refused: the position stays, and opening instead keeps the net right.
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(order = id, deal_reference = %reference, error = %e, "a hedged close is not confirmed yet: the rest of the order is not opened");
                            self.pending_confirms.push((id, reference, true));
                            self.rest_unsent.insert(id);
                            return None;
                        }
                    }
                }
                Err(e) if e.is_refusal() => tracing::warn!(error = %e, "closing a hedged position was refused"),
                Err(e) => {
                    // No clear answer: whether it closed, the account says.
                    tracing::warn!(order = id, deal_id = %deal_id, error = %e, "no clear answer to a hedged close; reading the account");
                    if let Ok(now) = self.rest.positions().await
                        && now.positions.iter().any(|q| q.position.deal_id == deal_id)
                    {
                        // Still open, but the close may yet be applied: nothing more is sent.
                        self.send(Reply::Rejected { id, reason: format!("a hedged close of {deal_id} had no clear answer (the position is still open): the rest was not sent") });
                        return None;
                    }
                    let close = direction(buy);
                    let found = self.rest.activity_last(600).await.ok().and_then(|a| {
                        a.into_iter().find(|a| a.deal_id == deal_id && a.activity_type == "POSITION" && a.details.as_ref().is_some_and(|d| d.direction == close))
                    });
                    match found.as_ref().and_then(|a| a.details.as_ref().map(|d| (d.size, d.level, wire::parse_wire_time(&a.date_utc), d.deal_reference.clone()))) {
                        Some((size, level, at_ms, reference)) => {
                            // Its reference is this order's from now on (claimed, and journaled).
                            self.claim(reference.clone());
                            self.send(Reply::CloseReferenced { id, deal_reference: reference });
                            left -= size;
                            self.send(Reply::Filled { id, size, level, at_ms });
                        }
                        None => {
                            // Gone, with no trace yet: fail closed (the running check names the difference).
                            self.send(Reply::Rejected { id, reason: format!("a hedged close of {deal_id} had no clear answer and the position is gone: the rest was not sent") });
                            return None;
                        }
                    }
                }
            }
        }
        Some(left)
    }

    /// The confirm of `reference`, read up to `confirm_attempts` times (200 ms
    /// apart) while it is not found yet; the last error if it never is.
    async fn read_confirm(&self, reference: &str) -> Result<wire::Confirm, CapitalError> {
        let mut attempt = 1;
        loop {
            match self.rest.confirm(reference).await {
                Err(CapitalError::Api { code: stratbox_capital::ApiCode::NotFoundDealReference, .. }) if attempt < self.config.confirm_attempts => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                read => return read,
            }
        }
    }

    /// Reads the confirm of `reference` (a few tries; then it is left to the poll).
    async fn confirm(&mut self, id: u64, reference: String, market: bool) {
        match self.read_confirm(&reference).await {
            Ok(c) => self.confirmed(id, &reference, c, market),
            Err(e) => {
                tracing::warn!(order = id, error = %e, "no confirm yet; asking again at the next poll");
                self.pending_confirms.push((id, reference, market));
            }
        }
    }

    /// When a confirm's deal was made, in UTC ms.
    fn confirm_time(&self, c: &wire::Confirm) -> Option<i64> {
        wire::parse_wire_time(&c.date).map(|local| local - self.utc_offset_ms)
    }

    fn confirmed(&mut self, id: u64, reference: &str, c: wire::Confirm, market: bool) {
        if !c.accepted() {
            let why = c.reject_reason.unwrap_or_else(|| "REJECTED".into());
            return self.send(Reply::Rejected { id, reason: format!("{reference}: {why}") });
        }
        if market {
            let at_ms = self.confirm_time(&c);
            self.send(Reply::Filled { id, size: c.size, level: c.level, at_ms });
        } else {
            self.order_of_deal.insert(c.deal_id.clone(), id);
            self.send(Reply::Working { id, deal_id: c.deal_id });
        }
    }

    /// Looks for the requests in doubt in the activity: the deal each made, if
    /// any (same epic, direction and size, at or after the request less the
    /// match window, under a reference no known order claims). Found, it is
    /// confirmed; past its deadline without a trace, it never reached the
    /// broker. An activity that cannot be read decides nothing.
    async fn resolve_unknown(&mut self) {
        let Some(earliest) = self.unresolved.iter().map(|u| u.placed_ms).min() else { return };
        let from = self.activity_from(earliest, self.rest_now().await);
        let activities = match self.rest.activity_since(from).await {
            Ok(a) => a,
            Err(e) => return tracing::warn!(error = %e, in_doubt = self.unresolved.len(), "cannot read the activity to resolve orders in doubt; trying at the next poll"),
        };
        let now = tokio::time::Instant::now();
        for u in std::mem::take(&mut self.unresolved) {
            if let Some(reference) = self.match_lost(&activities, &u.epic, u.buy, u.size, u.working) {
                tracing::info!(order = u.id, deal_reference = %reference, "a request whose reply was lost was found at the broker");
                self.send(Reply::Referenced { id: u.id, deal_reference: reference.clone() });
                self.confirm(u.id, reference, !u.working).await;
            } else if now >= u.deadline {
                // The activity is silent: the account is the evidence, judged by
                // the host against its books. Looked for until then (and again).
                let mut u = u;
                u.judged += 1;
                match self.evidence(&u).await {
                    Ok((net, working_match, settled)) => self.send(Reply::Unseen { id: u.id, net, working_match, settled, round: u.judged }),
                    Err(e) => tracing::warn!(order = u.id, error = %e, "cannot read the account to judge an order in doubt; asking again"),
                }
                u.deadline = now + Duration::from_secs(self.config.unknown_grace_secs.max(1));
                self.unresolved.push(u);
            } else {
                self.unresolved.push(u);
            }
        }
    }

    /// The account's net position in `u`'s epic, whether a resting order
    /// nobody here claims matches it (epic, direction, size), and whether
    /// every resting order of ours is still resting (none filled unseen).
    async fn evidence(&self, u: &Unresolved) -> Result<(f64, bool, bool), CapitalError> {
        let (positions, working) = tokio::try_join!(self.rest.positions(), self.rest.working_orders())?;
        let resting: HashSet<&str> = working.working_orders.iter().map(|w| w.working_order_data.deal_id.as_str()).collect();
        let settled = self.pending_confirms.is_empty() && self.order_of_deal.keys().all(|d| resting.contains(d.as_str()));
        let net = positions.positions.iter().filter(|p| p.market.epic == u.epic).map(|p| if p.position.direction == "BUY" { p.position.size } else { -p.position.size }).sum();
        let working_match = working.working_orders.iter().any(|w| {
            let d = &w.working_order_data;
            d.epic == u.epic && d.direction == direction(u.buy) && (d.order_size - u.size).abs() < 1e-9 && !self.order_of_deal.contains_key(&d.deal_id)
        });
        Ok((net, working_match, settled))
    }

    fn match_lost(&mut self, activities: &[wire::Activity], epic: &str, buy: bool, size: f64, working: bool) -> Option<String> {
        // Sizes per reference: a netting deal can touch several positions.
        let mut by_reference: BTreeMap<String, (f64, &str)> = BTreeMap::new();
        for a in activities {
            let Some(d) = &a.details else { continue };
            let kind_ok = if working { a.activity_type == "WORKING_ORDER" && a.status == "ACCEPTED" } else { a.activity_type == "POSITION" && d.deal_reference.starts_with("o_") };
            if a.epic == epic && d.direction == direction(buy) && kind_ok && !self.claimed.contains_key(&d.deal_reference) {
                let e = by_reference.entry(d.deal_reference.clone()).or_insert((0.0, a.date_utc.as_str()));
                e.0 += d.size;
            }
        }
        // The oldest unclaimed deal that fits: requests were sent in order.
        let found = by_reference.into_iter().filter(|(_, (s, _))| (s - size).abs() < 1e-9).min_by(|a, b| a.1.1.cmp(b.1.1)).map(|(r, _)| r);
        if let Some(r) = &found {
            self.claim(r.clone());
        }
        found
    }

    /// A restored order is in doubt for what it has left, looked for `grace` longer.
    fn doubt_restored(&mut self, l: Lookup, working: bool, why: String, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.doubt(Unresolved { id: l.id, epic: l.epic, buy: l.buy, size: l.size - l.filled, working, placed_ms: l.placed_ms, deadline, why, judged: 0 });
    }

    /// An order is in doubt: the host is told (its instrument waits) and it is looked for until its deadline.
    fn doubt(&mut self, u: Unresolved) {
        self.send(Reply::Unknown { id: u.id, why: u.why.clone() });
        self.unresolved.push(u);
    }

    /// Where to read the activity from to find what requests sent from
    /// `earliest` made: the match window before it, within the API's one-day reach.
    fn activity_from(&self, earliest: i64, server_now: i64) -> i64 {
        (earliest - self.config.match_window_secs * 1000).max(server_now - 86_000_000)
    }

    async fn rest_now(&self) -> i64 {
        self.rest.server_time().await.unwrap_or_else(|_| stratbox_contract::util::unix_ms() as i64)
    }

    /// Orders from before a restart: what became of each, from one read of
    /// the activity (a confirm only for what it does not show).
    async fn resolve_all(&mut self, mut lookups: Vec<Lookup>) {
        if lookups.is_empty() {
            return;
        }
        lookups.sort_by_key(|l| l.id);
        let earliest = lookups.iter().map(|l| l.placed_ms).min().unwrap_or_default();
        let server_now = self.rest_now().await;
        let from = self.activity_from(earliest, server_now);
        let activities = match self.rest.activity_since(from).await {
            Ok(a) => a,
            Err(e) => return self.send(Reply::Failed { reason: format!("activity: {e}") }),
        };
        // Resting orders placed before this read reaches: one that ended while
        // the host was down may have its activity older than the read.
        let mut older: Vec<(String, i64)> = Vec::new();
        // Known references first, so a lost one is never matched to a deal they own.
        for l in &lookups {
            if let Some(r) = &l.deal_reference {
                self.claim(r.clone());
            }
        }
        // Hedged market orders whose replies were all lost, several in one
        // epic and direction: whose closes are whose cannot be told apart.
        let mut unreferenced: BTreeMap<(String, bool), usize> = BTreeMap::new();
        for l in lookups.iter().filter(|l| self.hedging && l.kind == OrderType::Market && l.deal_reference.is_none()) {
            *unreferenced.entry((l.epic.clone(), l.buy)).or_default() += 1;
        }
        for mut l in lookups {
            let working = l.kind != OrderType::Market;
            let ambiguous = unreferenced.get(&(l.epic.clone(), l.buy)).is_some_and(|n| *n > 1);
            if !l.closes.is_empty() {
                // Its closes come first: what they dealt that the journal does not fill yet is filled now.
                match self.settle_closes(&l).await {
                    Ok(filled) => l.filled += filled,
                    Err(e) => {
                        // What its closes dealt is not known: judged against the account instead.
                        let why = format!("a hedged close's confirm cannot be read: {e}");
                        self.doubt_restored(l, working, why, Duration::ZERO);
                        continue;
                    }
                }
            }
            let reference = match l.deal_reference.clone() {
                Some(r) => r,
                // What is not filled yet was sent under one reference (in hedging, after the closes).
                None => match self.find_lost(&activities, &l, from, server_now, ambiguous).await {
                    Err(e) => {
                        // Not known either way: in doubt, judged against the account like any other.
                        let why = format!("the activity of when it was sent could not be read: {e}");
                        self.doubt_restored(l, working, why, Duration::ZERO);
                        continue;
                    }
                    Ok(Lost::Reference(r)) => {
                        tracing::info!(order = l.id, deal_reference = %r, "a request whose reply was lost was found at the broker");
                        self.send(Reply::Referenced { id: l.id, deal_reference: r.clone() });
                        r
                    }
                    // Sent within the grace window: the lagging activity may not show it yet.
                    // Its closes filled it whole (reported as they were found).
                    Ok(Lost::Closed) => continue,
                    // Closes another lost order may own could be its: judged by the account instead.
                    Ok(Lost::Undecided) => {
                        let why = "a hedged order whose reply was lost, beside others in the same epic and direction".to_owned();
                        self.doubt_restored(l, working, why, Duration::ZERO);
                        continue;
                    }
                    Ok(Lost::NotFound) if server_now - l.placed_ms < self.config.unknown_grace_secs as i64 * 1000 => {
                        let left = Duration::from_millis((self.config.unknown_grace_secs as i64 * 1000 - (server_now - l.placed_ms)).max(0) as u64);
                        let why = "sent just before the restart; no reply was journaled".to_owned();
                        self.doubt_restored(l, working, why, left);
                        continue;
                    }
                    Ok(Lost::NotFound) => {
                        tracing::info!(order = l.id, "a request the journal holds never reached the broker");
                        self.send(Reply::Rejected { id: l.id, reason: "never reached Capital.com (no matching deal after the restart)".into() });
                        continue;
                    }
                },
            };
            let mine = |a: &&wire::Activity| a.details.as_ref().is_some_and(|d| d.deal_reference == reference);
            if !working {
                let (size, value, at_ms) = activities.iter().filter(mine).filter(|a| a.activity_type == "POSITION").fold((0.0, 0.0, None), |(s, v, t), a| {
                    let d = a.details.as_ref().expect("filtered");
                    (s + d.size, v + d.size * d.level, t.max(wire::parse_wire_time(&a.date_utc)))
                });
                if size > 0.0 {
                    let already = filled_under(&l, size);
                    if size > already + 1e-9 {
                        self.send(Reply::Filled { id: l.id, size: size - already, level: value / size, at_ms });
                    }
                    continue;
                }
            } else if let Some(deal_id) = l.deal_id.clone().or_else(|| activities.iter().filter(mine).find(|a| a.status == "ACCEPTED").map(|a| a.deal_id.clone())) {
                if l.deal_id.is_none() {
                    self.send(Reply::Working { id: l.id, deal_id: deal_id.clone() });
                }
                if l.placed_ms < from {
                    older.push((deal_id.clone(), l.placed_ms));
                }
                self.order_of_deal.insert(deal_id.clone(), l.id);
                continue;
            }
            // Not in the activity read (older, or refused): the confirm says.
            match self.rest.confirm(&reference).await {
                // A market deal: what the journal has not filled yet.
                Ok(c) if c.accepted() && !working => {
                    let already = filled_under(&l, c.size);
                    if c.size > already + 1e-9 {
                        let at_ms = self.confirm_time(&c);
                        self.send(Reply::Filled { id: l.id, size: c.size - already, level: c.level, at_ms });
                    }
                }
                Ok(c) => {
                    self.confirmed(l.id, &reference, c, !working);
                    // A resting order placed before the read reaches: its end may be older too.
                    if working && l.placed_ms < from && let Some(deal_id) = self.deal_of(l.id) {
                        older.push((deal_id, l.placed_ms));
                    }
                }
                Err(e) => {
                    tracing::warn!(order = l.id, error = %e, "no confirm for a restored order; asking again at the next poll");
                    if working && l.placed_ms < from {
                        // Its end may be older than the polls read: looked for further back once it is confirmed.
                        self.restored_old.insert(l.id, l.placed_ms);
                    }
                    self.pending_confirms.push((l.id, reference, !working));
                }
            }
        }
        // What the resting ones did while the host was down.
        self.apply_activity(&activities);
        if !older.is_empty() {
            self.look_further_back(older, from).await;
        }
    }

    /// The deal of a restored request whose reply was lost: in the activity
    /// read from `from`, or, sent before that read reaches (more than a day
    /// of downtime), in the activity of the window it was sent in. A hedged
    /// market order first closed opposite positions: the closes the journal
    /// does not hold are found the same way and reported as its fills.
    /// `Err` when that older activity cannot be read.
    /// With `ambiguous` (other lost hedged orders in its epic and direction)
    /// no close is taken for it.
    async fn find_lost(&mut self, recent: &[wire::Activity], l: &Lookup, from: i64, server_now: i64, ambiguous: bool) -> Result<Lost, CapitalError> {
        let working = l.kind != OrderType::Market;
        let window = self.config.match_window_secs * 1000;
        let older = if l.placed_ms - window >= from {
            Vec::new()
        } else {
            // Up to where the recent read starts (an IOC order is sent at its
            // next price, maybe long after it was created), a day at most.
            let to = from.min(l.placed_ms - window + 86_000_000).min(server_now);
            self.rest.activity_between(l.placed_ms - window, to, None).await?
        };
        // The reads meet at `from` (and `to` takes in the rest of its second): an activity in both counts once.
        let mut seen = HashSet::new();
        let both: Vec<wire::Activity> = older
            .into_iter()
            .chain(recent.iter().cloned())
            .filter(|a| seen.insert((a.date_utc.clone(), a.deal_id.clone(), a.activity_type.clone(), a.status.clone(), a.details.as_ref().map(|d| d.deal_reference.clone()))))
            .collect();
        let mut left = l.size - l.filled;
        if !working && self.hedging && ambiguous {
            // Its own deal, if it closed nothing; else whose closes are whose cannot be told.
            if let Some(r) = self.match_lost(&both, &l.epic, l.buy, left, false) {
                return Ok(Lost::Reference(r));
            }
            return Ok(if self.closes_after(&both, l).is_empty() { Lost::NotFound } else { Lost::Undecided });
        }
        if !working && self.hedging {
            for (size, level, at_ms) in self.match_lost_closes(&both, l, left) {
                left -= size;
                self.send(Reply::Filled { id: l.id, size, level, at_ms });
            }
            if left <= 1e-9 {
                return Ok(Lost::Closed);
            }
        }
        Ok(self.match_lost(&both, &l.epic, l.buy, left, working).map_or(Lost::NotFound, Lost::Reference))
    }

    /// The journaled closes of a restored hedged order, read from their
    /// confirms: the part the journal's fills do not cover is reported as a
    /// fill (closes come before the order's own deal). Returns its size.
    async fn settle_closes(&mut self, l: &Lookup) -> Result<f64, CapitalError> {
        // Each close's (size, level), in the order they were made.
        let mut closes = Vec::new();
        let mut at = None;
        for reference in &l.closes {
            let c = self.read_confirm(reference).await?;
            if c.accepted() {
                at = at.max(self.confirm_time(&c));
                closes.push((c.size, c.level));
            }
        }
        // The journal's fills cover the first closes: the rest is filled, at their own levels.
        let mut covered = l.filled;
        let (mut size, mut value) = (0.0, 0.0);
        for (s, level) in closes {
            let take = (s - covered.min(s)).max(0.0);
            covered = (covered - s).max(0.0);
            size += take;
            value += take * level;
        }
        if size > 1e-9 {
            self.send(Reply::Filled { id: l.id, size, level: value / size, at_ms: at });
        }
        Ok(size)
    }

    /// Closes of the user's in `l`'s epic and direction made after it was
    /// created that no order claims (journaled closes are claimed), oldest first,
    /// while they fit in `left` (positions are closed whole): (size, level, when).
    fn match_lost_closes(&mut self, activities: &[wire::Activity], l: &Lookup, left: f64) -> Vec<(f64, f64, Option<i64>)> {
        let closes = self.closes_after(activities, l);
        let mut left = left;
        let mut found = Vec::new();
        for (at, reference, size, level) in closes {
            if size > left + 1e-9 {
                break;
            }
            left -= size;
            tracing::info!(order = l.id, deal_reference = %reference, "a hedged close whose reply was lost was found at the broker");
            self.claim(reference);
            found.push((size, level, Some(at)));
        }
        found
    }

    /// The unclaimed closes of the user's in `l`'s epic and direction since
    /// it was created, oldest first: (when, reference, size, level).
    fn closes_after(&self, activities: &[wire::Activity], l: &Lookup) -> Vec<(i64, String, f64, f64)> {
        let mut closes: Vec<(i64, String, f64, f64)> = activities
            .iter()
            .filter_map(|a| {
                let d = a.details.as_ref()?;
                let at = wire::parse_wire_time(&a.date_utc)?;
                let ours = a.activity_type == "POSITION" && a.source == "USER" && d.deal_reference.starts_with("p_") && a.epic == l.epic && d.direction == direction(l.buy);
                // No bound after it: an IOC order is sent at its next price, which may be much later.
                (ours && at >= l.placed_ms - 1_000 && !self.claimed.contains_key(&d.deal_reference)).then(|| (at, d.deal_reference.clone(), d.size, d.level))
            })
            .collect();
        closes.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        closes.dedup_by(|a, b| a.1 == b.1);
        closes
    }

    /// Restored resting orders no longer at the broker whose end the read from
    /// `from` did not show: their activity is looked for further back, a day a
    /// request (the API's widest window), down to when each was placed.
    async fn look_further_back(&mut self, older: Vec<(String, i64)>, from: i64) {
        let resting: HashSet<String> = match self.rest.working_orders().await {
            Ok(w) => w.working_orders.into_iter().map(|w| w.working_order_data.deal_id).collect(),
            Err(e) => return tracing::warn!(error = %e, "cannot read the working orders to look further back for restored ones"),
        };
        const DAY_MS: i64 = 86_400_000;
        for (deal_id, placed_ms) in older {
            if resting.contains(&deal_id) || !self.order_of_deal.contains_key(&deal_id) {
                continue;
            }
            let mut to = from;
            // At most a year of downtime is walked (one request a day).
            for _ in 0..366 {
                let start = (to - DAY_MS).max(placed_ms - self.config.match_window_secs * 1000);
                match self.rest.activity_between(start, to, Some(&deal_id)).await {
                    Ok(found) => self.apply_activity(&found),
                    Err(e) => {
                        tracing::warn!(deal_id = %deal_id, error = %e, "cannot read older activity for a restored resting order");
                        break;
                    }
                }
                if !self.order_of_deal.contains_key(&deal_id) || start <= placed_ms - self.config.match_window_secs * 1000 {
                    break;
                }
                to = start;
            }
            if self.order_of_deal.contains_key(&deal_id) {
                tracing::warn!(deal_id = %deal_id, "a restored resting order is gone from the broker and no activity since it was placed says how");
            }
        }
    }

    /// Executions, expiries and cancels of resting orders.
    fn apply_activity(&mut self, activities: &[wire::Activity]) {
        for a in activities.iter().filter(|a| a.activity_type == "WORKING_ORDER") {
            let Some(&id) = self.order_of_deal.get(&a.deal_id) else { continue };
            let reply = match (a.status.as_str(), &a.details) {
                ("EXECUTED", Some(d)) => Reply::Filled { id, size: d.size, level: d.level, at_ms: wire::parse_wire_time(&a.date_utc) },
                ("EXPIRED", _) => Reply::Expired { id },
                ("CANCELLED" | "DELETED", _) => Reply::Cancelled { id },
                _ => continue,
            };
            self.order_of_deal.remove(&a.deal_id);
            self.send(reply);
        }
    }

    async fn poll(&mut self) {
        for (id, reference, market) in std::mem::take(&mut self.pending_confirms) {
            match self.rest.confirm(&reference).await {
                Ok(c) => {
                    let accepted = c.accepted();
                    self.confirmed(id, &reference, c, market);
                    if let Some(placed_ms) = self.restored_old.remove(&id)
                        && let Some(deal_id) = self.deal_of(id)
                    {
                        let from = self.activity_from(placed_ms, self.rest_now().await);
                        self.look_further_back(vec![(deal_id, placed_ms)], from).await;
                    }
                    // A hedged order stopped at a late close: what it did not open ends now (after its fill).
                    if self.rest_unsent.remove(&id) && accepted {
                        self.send(Reply::Rejected { id, reason: "the rest was not sent: a hedged close was confirmed late".into() });
                    }
                }
                Err(_) => self.pending_confirms.push((id, reference, market)),
            }
        }
        self.resolve_unknown().await;
        if self.order_of_deal.is_empty() {
            return;
        }
        // From the cursor, less an overlap for the feed's lag: applying an
        // activity twice is harmless (a finished order leaves the map). A
        // cursor older than the API's one-day reach starts over.
        let cursor = self.cursor.filter(|(_, at)| at.elapsed() < Duration::from_secs(12 * 3600)).map(|(ms, _)| ms);
        let read = match cursor {
            Some(ms) => self.rest.activity_since(ms - self.config.activity_overlap_secs * 1000).await,
            None => self.rest.activity_last(self.config.activity_overlap_secs.clamp(30, 86_400)).await,
        };
        match read {
            Ok(activities) => {
                if let Some(newest) = activities.iter().filter_map(|a| wire::parse_wire_time(&a.date_utc)).max() {
                    self.cursor = Some((newest.max(cursor.unwrap_or(i64::MIN)), tokio::time::Instant::now()));
                }
                self.apply_activity(&activities);
            }
            Err(e) => self.send(Reply::Failed { reason: format!("activity: {e}") }),
        }
    }
}
