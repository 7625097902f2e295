//! The order path: the one way an intent becomes an order.
//!
//! Validation, the broker's plan, the risk check, the client order id and
//! the order's state, the journal entry (always before the broker acts), the
//! broker's execution, and what the broker reports back (references,
//! rejections, fills, cancels, expiries, financing, arrival mids). After each
//! event the risk engine sees the P&L (loss limits, circuit breaker), alerts
//! go out, the equity curve is sampled and the journal committed, which is
//! when a remote broker's requests may leave.
//!
//! The engine calls it in a fixed order per event (market data in, fills out
//! to the plugins, their intents in, the event settled); it never calls a
//! plugin itself. Backtest, paper and live trading run this same path: only
//! the broker behind it differs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use stratbox_contract::util::{MAX_SPAN_SECS, secs_to_nanos};
use stratbox_contract::{Alarm, Bar, Fill, Instrument, InstrumentId, Intent, OrderView, Quote, StopDecision, StopLevels, TargetPosition, Timestamp};
use stratbox_market::TradingHours;

use crate::broker::{Broker, BrokerAccount, BrokerNote, BrokerStats, Plan, Reconciliation, Submission};
use crate::execution::{Entry, Journal, JournalError, JournalEvent, OrderEvent, OrderTracker, Rebuilt, TrackerStats, rebuild};
use stratbox_market::format_time;
use crate::risk::{Alert, AlertConfig, AlertSink, BookTotals, Cause, Exposure, OrderCheck, RiskConfig, RiskEngine, RiskView, TradingState};
use crate::validation::{self, IntentBounds};
use crate::world::SharedWorld;

/// Realised P&L, unrealised P&L and gross exposure summed over books.
fn totals_of(books: impl Iterator<Item = crate::broker::BookSummary>) -> (f64, f64, f64) {
    books.fold((0.0, 0.0, 0.0), |(r, u, g), s| (r + s.realised_pnl, u + s.unrealised_pnl, g + s.gross_exposure))
}

/// A limit or stop order's price, if it has one.
fn order_price(t: stratbox_contract::OrderType) -> Option<f64> {
    match t {
        stratbox_contract::OrderType::Limit(p) | stratbox_contract::OrderType::Stop(p) => Some(p),
        stratbox_contract::OrderType::Market => None,
    }
}

/// How a halt for a failed reconciliation starts its reason.
pub const RECONCILIATION_FAILED: &str = "reconciliation failed: ";

/// A de-leveraging in progress: each position goes from its size at the
/// start toward `1 - fraction` of it, one step at a time.
#[derive(Debug, Clone, Serialize)]
pub struct DeleveragePlan {
    pub fraction: f64,
    pub steps: u32,
    pub steps_done: u32,
    pub every_secs: u64,
    pub next_at: Timestamp,
    /// (plugin, instrument, signed quantity at the start).
    #[serde(skip)]
    pub(crate) start: Vec<(Arc<str>, InstrumentId, f64)>,
}

/// What an emergency flatten did.
#[derive(Debug, Clone, Serialize)]
pub struct FlattenReport {
    pub cancelled_orders: usize,
    /// Closing orders placed: (plugin, instrument symbol, quantity closed, signed).
    pub closing_orders: Vec<(String, String, f64)>,
    pub risk: RiskView,
}

/// The book positions found at the broker are adopted into, unless the operator names another.
pub const ADOPTED: &str = "adopted";

/// What adopting the broker's account did.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptReport {
    /// The book that took the positions.
    pub into: String,
    /// Positions taken on: (symbol, signed quantity, price booked at).
    pub adopted: Vec<(String, f64, f64)>,
    /// Working orders at the broker no order of the host owned, asked to be cancelled.
    pub cancelled_orders: Vec<String>,
    pub risk: RiskView,
}

/// An exit of the operator's not done yet: its target, when it may be sent
/// again, and how often it was.
#[derive(Debug, Clone, Copy)]
struct ExitDue {
    target: f64,
    next_at: Timestamp,
    tries: u32,
}

/// What the order path holds in memory (see [`OrderPath::footprint`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Orders the tracker holds, working and final.
    pub tracked_orders: usize,
    /// Final orders kept for views (at most [`OrderTracker::KEEP_FINISHED`]).
    pub finished_orders: usize,
    /// Broker ids mapped to client order ids.
    pub broker_ids: usize,
    /// Books whose risk view is cached (one per plugin that ordered).
    pub cached_books: usize,
    /// The host's exits remembered (each until it is filled, cancelled, expired or rejected).
    pub exit_orders: usize,
    /// Orders the risk engine's throttles and duplicate rule remember.
    pub risk_queued: usize,
    /// The operator's exits not done yet (one per book and instrument).
    pub exits_due: usize,
    /// Deal references the broker remembers (Capital.com: a day's claims).
    pub broker_references: usize,
}

/// Counters of the order path.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PathStats {
    pub intents: u64,
    pub invalid_intents: u64,
    /// Orders the risk engine refused (by rule in the risk view's stats).
    pub risk_rejected: u64,
    pub stop_decisions: u64,
    /// Stop policies' exits at market (their levels reached are the broker's `protective_exits`).
    pub stop_exits: u64,
    pub alarms: u64,
}

/// The risk reason journaled with a fill the broker made at a protective level.
pub const PROTECTIVE_EXIT: &str = "protective exit at the broker's level";

/// A plugin whose intents or stop decisions broke the contract, and why: the
/// engine quarantines it (none of that batch reached the broker).
pub type Violation = (Arc<str>, String);

/// One plugin's book as the risk checks see it: every instrument with a
/// position or a working order, and their totals at the worst.
#[derive(Debug, Default)]
struct BookCache {
    /// The (event, fill, book change) counts it reflects.
    version: (u64, u64, u64),
    /// In instrument order: its totals are summed the same way in every run.
    by_instrument: std::collections::BTreeMap<InstrumentId, Exposure>,
    totals: BookTotals,
}

/// Per plugin. Rebuilt when an event, a fill or a book change (cancel,
/// expiry, rejection) makes it stale; an order the path places is added in
/// place, so a check costs the same however many orders work.
type PositionsCache = HashMap<Arc<str>, BookCache>;

/// The order path's settings (from the host configuration).
#[derive(Debug, Clone, Default)]
pub struct OrderPathConfig {
    pub risk: RiskConfig,
    pub alerts: AlertConfig,
    /// Market seconds between two points of the equity curve (0: none).
    pub equity_every_secs: u64,
    /// How far the host's P&L may drift from a remote broker's account.
    pub equity_tolerance: EquityTolerance,
}

/// How far the host's P&L (its fills, marked at its prices) may differ from
/// the broker's account before the difference is reported. The broker marks
/// open positions at its bid or offer and may charge what the host does not
/// model, so some difference is costs: a fixed amount plus basis points of
/// the notional traded and held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EquityTolerance {
    /// In the account's currency.
    pub absolute: f64,
    /// Of the notional traded since the first read plus the gross exposure held.
    pub bps_of_notional: f64,
}

impl Default for EquityTolerance {
    fn default() -> Self {
        Self { absolute: 5.0, bps_of_notional: 10.0 }
    }
}

/// The host's equity reconciled against the broker's account balance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccountCheck {
    /// The broker's latest read.
    pub account: BrokerAccount,
    /// Change of the broker's equity (balance + open P&L) since the first read.
    pub broker_change: f64,
    /// Change of the host's P&L over the same time.
    pub host_change: f64,
    /// `broker_change - host_change`.
    pub difference: f64,
    pub tolerance: f64,
    pub within: bool,
    /// Reads at which the difference went past the tolerance (each reported once).
    pub mismatches: u64,
}

/// What the account check compares from: the first read, and the host then.
#[derive(Debug, Clone, Copy)]
struct AccountBase {
    broker_equity: f64,
    host_pnl: f64,
    traded_notional: f64,
}

/// Everything between a plugin's intent and the broker's order, and back.
pub struct OrderPath {
    broker: Box<dyn Broker>,
    risk: RiskEngine,
    alerts: AlertSink,
    orders: OrderTracker,
    journal: Journal,
    world: Arc<SharedWorld>,
    instruments: Vec<Instrument>,
    /// Trading hours per instrument, where the feed knows them.
    hours: Vec<Option<TradingHours>>,
    /// Last price (bar close, quote mid) per instrument, for risk checks.
    last_prices: Vec<Option<f64>>,
    bounds: IntentBounds,
    /// Each plugin's positions for the risk checks, and the (event, fill) counts they reflect.
    positions_cache: PositionsCache,
    /// Market events seen (the positions cache's clock).
    events: u64,
    /// Changes of the books that are not fills or events (cancels, expiries,
    /// rejections, discarded requests): the positions cache's third clock.
    book_changes: u64,
    deleverage: Option<DeleveragePlan>,
    capital: f64,
    equity_every_secs: u64,
    equity_tolerance: EquityTolerance,
    /// Notional of every fill so far (the account check's cost allowance).
    traded_notional: f64,
    account_base: Option<AccountBase>,
    account_check: Option<AccountCheck>,
    /// Market time of the next equity-curve point.
    next_equity_at: Timestamp,
    stats: PathStats,
    /// Working orders the host placed as exits (a plugin's cancels leave them);
    /// each leaves when it is filled, cancelled, expired or rejected.
    exit_orders: std::collections::BTreeSet<u64>,
    /// Exits the operator asked for (flatten, de-leveraging steps) not done
    /// yet: the target per book and instrument, and when it may be tried
    /// again. Each is sent again once nothing of its book in the instrument is
    /// on its way (an exit, a market order, an order in doubt at the broker),
    /// first after a second of market time, then doubling to a minute, until
    /// the position reaches it. While a flatten holds, every open position has one.
    exits_due: BTreeMap<(Arc<str>, InstrumentId), ExitDue>,
    /// The protective levels last journaled, by book and instrument (one each).
    journaled_levels: BTreeMap<(Arc<str>, InstrumentId), StopLevels>,
    /// The loss limits' baselines as last journaled (written again when they change).
    journaled_baselines: Option<crate::risk::Baselines>,
    /// When set, every intent accepted from a plugin, in order (for tests and audits).
    pub intent_log: Option<Vec<(Timestamp, Arc<str>, Intent)>>,
}

impl OrderPath {
    /// The path over `broker` and `journal`. A journal that is not empty is
    /// replayed into the ledger, the order tracker and the broker, and trading
    /// is halted (fail closed) until [`OrderPath::finish_reconcile`] agrees with the
    /// broker; the replay is returned for that.
    pub fn open(
        mut broker: Box<dyn Broker>,
        mut journal: Journal,
        world: Arc<SharedWorld>,
        instruments: Vec<Instrument>,
        hours: Vec<Option<TradingHours>>,
        config: OrderPathConfig,
    ) -> Result<(Self, Option<Rebuilt>), JournalError> {
        let OrderPathConfig { risk, alerts, equity_every_secs, equity_tolerance } = config;
        let capital = risk.capital;
        let mut risk = RiskEngine::new(risk);
        let mut orders = OrderTracker::default();
        let mut rebuilt = None;
        if !journal.is_empty() {
            // Fail closed: nothing trades until the journal is replayed and the broker reconciled.
            risk.restore_state(None, Cause::Reconciliation, TradingState::Halted, "reconciling with the broker after a restart", 0, None);
            let symbols: Vec<String> = instruments.iter().map(|i| i.symbol.clone()).collect();
            let r = rebuild(&journal, &symbols, &mut world.ledger_mut(), &mut orders)?;
            if let Some((b, plugins)) = &r.baselines {
                risk.restore_baselines(*b, plugins);
            }
            for o in &r.working {
                broker.restore(o);
            }
            // The protective levels in force before the stop protect the positions again.
            for ((plugin, _), levels) in &r.protections {
                broker.protect(plugin, *levels);
            }
            // Cancels asked for before the restart are asked for again (journaled when they end).
            for o in r.working.iter().filter(|o| o.cancel_requested) {
                let owner = o.plugin.clone();
                broker.execute(&owner, Plan::Cancel(Some(o.broker_id), None), world.clock.now());
            }
            if let Some(id) = orders.max_broker_id() {
                broker.reserve_ids_below(id + 1);
            }
            tracing::info!(entries = r.entries, fills = r.fills, working = r.working.len(), "trading state rebuilt from the journal");
            rebuilt = Some(r);
        }
        // The journal names instruments by id; what they are is written at every start.
        journal.append(0, JournalEvent::Instruments { symbols: instruments.iter().map(|i| i.symbol.clone()).collect() })?;
        journal.commit()?;
        let path = Self {
            broker,
            risk,
            alerts: AlertSink::new(alerts),
            orders,
            journal,
            world,
            last_prices: vec![None; instruments.len()],
            instruments,
            hours,
            bounds: IntentBounds::default(),
            positions_cache: Default::default(),
            events: 0,
            book_changes: 0,
            deleverage: rebuilt.as_ref().and_then(|r| r.deleverage.clone()),
            capital,
            equity_every_secs,
            equity_tolerance,
            traded_notional: 0.0,
            account_base: None,
            account_check: None,
            next_equity_at: Timestamp::MIN,
            stats: PathStats::default(),
            exit_orders: rebuilt.iter().flat_map(|r| r.working.iter().filter(|o| o.exit).map(|o| o.broker_id)).collect(),
            exits_due: BTreeMap::new(),
            journaled_levels: rebuilt.as_ref().map(|r| r.protections.clone()).unwrap_or_default(),
            journaled_baselines: rebuilt.as_ref().and_then(|r| r.baselines.as_ref().map(|b| b.0)),
            intent_log: None,
        };
        Ok((path, rebuilt))
    }

    /// After a restart, first half: asks the broker what became of every
    /// order the journal had sent. Then the engine drains the broker (what it
    /// missed reaches the plugins) and calls [`OrderPath::finish_reconcile`].
    pub fn begin_reconcile(&mut self, rebuilt: &Rebuilt) -> Result<Reconciliation, String> {
        let now = self.world.clock.now();
        self.broker.reconcile(now, &rebuilt.references)
    }

    /// After a restart, second half: trading resumes only if every position
    /// matches the broker's; otherwise the host stays halted and says why.
    pub fn finish_reconcile(&mut self, rebuilt: Rebuilt, outcome: Result<Reconciliation, String>) {
        let now = self.world.clock.now();
        let verdict = outcome.and_then(|r| {
            let mut mismatches = Vec::new();
            // A paper broker has no account of its own: the journal replay was its state.
            if r.compared {
                let differences = self.world.ledger().net_differences(&r.broker_positions, 1e-6);
                for (i, j, b) in differences {
                    mismatches.push(format!("{}: journal {j}, broker {b}", self.symbol(i)));
                }
            }
            if !r.unknown_working_orders.is_empty() {
                mismatches.push(format!("working orders at the broker that the journal does not know: {}", r.unknown_working_orders.join(", ")));
            }
            if mismatches.is_empty() {
                Ok(r)
            } else {
                Err(format!(
                    "positions differ from the broker's: {} (adopt them with `stratbox adopt`, or close them at the broker and restart)",
                    mismatches.join("; ")
                ))
            }
        });
        match verdict {
            // A first start on a broker without an account of its own: nothing to say.
            Ok(r) if !r.compared && rebuilt.entries == 0 => {}
            Ok(r) => {
                let reason = if rebuilt.entries == 0 {
                    "reconciled at a first start: the broker's account holds nothing the journal does not know".to_owned()
                } else {
                    format!(
                        "reconciled after a restart: {} journal entries, {} fills, {} orders restored, {} looked up at the broker",
                        rebuilt.entries,
                        rebuilt.fills,
                        rebuilt.working.len(),
                        r.resolved
                    )
                };
                self.risk.restore_state(None, Cause::Reconciliation, TradingState::Active, &reason, now, None);
                for ((scope, cause), (state, reason, since, until)) in &rebuilt.states {
                    // A halt for an earlier failed reconciliation ends with this one.
                    if *cause == Cause::Reconciliation || (scope.is_none() && reason.starts_with(RECONCILIATION_FAILED)) {
                        if *state != TradingState::Active {
                            self.risk.restore_state(scope.as_deref(), *cause, *state, reason, *since, *until);
                            self.risk.set_cause(scope.as_deref(), *cause, TradingState::Active, "reconciled: the earlier reconciliation failure is resolved", now);
                        }
                        continue;
                    }
                    self.risk.restore_state(scope.as_deref(), *cause, *state, reason, *since, *until);
                }
                self.raise_alerts();
                tracing::info!(reason, "reconciled");
            }
            Err(why) => {
                tracing::error!(reason = %why, "reconciliation failed: trading stays halted");
                // Every other cause journaled before the restart holds as it did: an
                // adopt that ends this halt must not lift a flatten, a drawdown or the operator's.
                for ((scope, cause), (state, reason, since, until)) in &rebuilt.states {
                    if *cause != Cause::Reconciliation {
                        self.risk.restore_state(scope.as_deref(), *cause, *state, reason, *since, *until);
                    }
                }
                self.risk.set_cause(None, Cause::Reconciliation, TradingState::Halted, &format!("{RECONCILIATION_FAILED}{why}"), now);
                self.raise_alerts();
            }
        }
        // (A flatten in force goes on closing what the restart found open: `retry_exits`.)
        self.commit();
    }

    /// `stratbox adopt`, first half: reads the broker's account again (its
    /// fills and events reach the plugins through the engine's drain before
    /// the second half compares).
    pub fn begin_adopt(&mut self) -> Result<Reconciliation, String> {
        let now = self.world.clock.now();
        // An order on its way could fill after the read: what it fills would then be booked twice.
        let in_flight = self.in_flight();
        if !in_flight.is_empty() {
            return Err(format!("orders are on their way to the broker ({}): adopt once they are answered", in_flight.join(", ")));
        }
        let r = self.broker.reconcile(now, &[])?;
        if !r.compared {
            return Err("this broker has no account of its own (paper): there is nothing to adopt".into());
        }
        Ok(r)
    }

    /// Orders sent and not answered yet (market orders before their fill,
    /// any order before its acknowledgement, requests not sent), by client id.
    fn in_flight(&self) -> Vec<String> {
        let ledger = self.world.ledger();
        let mut found: Vec<String> = ledger
            .plugins()
            .filter_map(|p| ledger.book(p).map(|b| (p, b)))
            .flat_map(|(p, b)| b.orders.values().map(move |o| (p, o)))
            .filter_map(|(plugin, o)| {
                let client_id = self.orders.client_id_of(o.id)?;
                let sent = self.orders.get(client_id).is_some_and(|t| t.state == crate::OrderState::Sent);
                // In doubt (a cancel asked for since changes nothing: it may still fill).
                let in_doubt = self.broker.unresolved(plugin, o.instrument).is_some();
                (o.order_type == stratbox_contract::OrderType::Market || sent || in_doubt).then(|| client_id.to_owned())
            })
            .collect();
        if self.broker.queued() > 0 {
            found.push(format!("{} request(s) not sent yet", self.broker.queued()));
        }
        found
    }

    /// `stratbox adopt`, second half: every difference between the broker's
    /// positions and the host's becomes a journaled order and fill of the
    /// book `into` (at the last price: its P&L counts from there), working
    /// orders nobody here owns are cancelled at the broker, and a halt for a
    /// failed reconciliation ends. The positions are then the account's.
    pub fn finish_adopt(&mut self, into: &str, outcome: Result<Reconciliation, String>) -> Result<AdoptReport, String> {
        let r = outcome?;
        let now = self.world.clock.now();
        let in_flight = self.in_flight();
        if !in_flight.is_empty() {
            return Err(format!("orders went out while the account was read ({}): adopt again once they are answered", in_flight.join(", ")));
        }
        let owner: Arc<str> = Arc::from(into);
        let mut differences = Vec::new();
        let at_broker = self.world.ledger().net_differences(&r.broker_positions, 1e-9);
        for (i, host, broker) in at_broker {
            let price = self.last_prices.get(i as usize).copied().flatten().ok_or_else(|| format!("no price yet for {}: adopt once the feed has priced it", self.symbol(i)))?;
            differences.push((i, broker - host, price));
        }
        let mut adopted = Vec::new();
        for (instrument, diff, price) in differences {
            let side = if diff > 0.0 { stratbox_contract::Side::Buy } else { stratbox_contract::Side::Sell };
            let client_id = self.orders.next_client_id(&owner);
            let _ = self.orders.create(client_id.clone(), &owner, instrument, side, diff.abs(), Some(price), now);
            let order_type = stratbox_contract::OrderType::Market;
            let (tif, tag) = (stratbox_contract::TimeInForce::Gtc, 0);
            self.journal(now, JournalEvent::Order { client_id: client_id.clone(), plugin: into.to_owned(), instrument, side: side.into(), quantity: diff.abs(), order_type: order_type.into(), time_in_force: tif.into(), tag, decision_price: Some(price) });
            self.journal(now, JournalEvent::Risk { client_id: client_id.clone(), accepted: true, reason: Some("adopted from the broker's account by the operator".into()) });
            let _ = self.orders.apply(&client_id, OrderEvent::RiskAccepted, now, Some("adopted"));
            self.journal(now, JournalEvent::Fill { client_id: client_id.clone(), broker_id: 0, plugin: into.to_owned(), instrument, side: side.into(), quantity: diff.abs(), price, fee: 0.0 });
            self.world.ledger_mut().apply_fill(&owner, instrument, diff, price, 0.0);
            let _ = self.orders.fill(&client_id, diff.abs(), price, now);
            tracing::warn!(market_time = %format_time(now), into, instrument = %self.symbol(instrument), quantity = diff, price, "adopted a position found at the broker");
            adopted.push((self.symbol(instrument), diff, price));
        }
        // The positions changed outside a fill of the broker's: the risk view is rebuilt.
        self.book_changes += 1;
        // The account's positions are facts, booked whatever their size; past a
        // limit, the book only reduces until the operator says otherwise.
        let limit = self.risk.config().max_position_notional;
        let past: Vec<String> = adopted
            .iter()
            .filter_map(|(symbol, _, price)| {
                let i = self.instruments.iter().position(|x| &x.symbol == symbol)? as InstrumentId;
                let notional = (self.world.ledger().quantity(&owner, i) * price).abs();
                (notional > limit).then(|| format!("{symbol}: notional {notional:.2} over the limit {limit:.2}"))
            })
            .collect();
        // (A book already halted stays halted: reduce-only would loosen it.)
        let halted = self.risk.view().plugins.get(into).is_some_and(|r| r.state == TradingState::Halted);
        if !past.is_empty() && !halted {
            let why = format!("adopted positions past the risk limits: {}", past.join("; "));
            tracing::warn!(into, reason = %why, "adopted book is reduce-only");
            self.risk.set_cause(Some(into), Cause::Operator, TradingState::ReduceOnly, &why, now);
        }
        let cancelled_orders = r.unknown_working_orders.clone();
        self.broker.cancel_foreign(&cancelled_orders);
        let reason = format!(
            "reconciled: the operator adopted {} position(s) into `{into}` and cancelled {} unknown working order(s)",
            adopted.len(),
            cancelled_orders.len()
        );
        self.risk.set_cause(None, Cause::Reconciliation, TradingState::Active, &reason, now);
        self.raise_alerts();
        self.commit();
        Ok(AdoptReport { into: into.to_owned(), adopted, cancelled_orders, risk: self.risk.view() })
    }

    /// What the broker did since the last call: references and rejections
    /// journaled, fills tracked and returned for their plugins. `None` when
    /// the broker had nothing to say (then there is nothing to settle).
    pub fn poll_broker(&mut self) -> Option<Vec<(Arc<str>, Fill)>> {
        let now = self.world.clock.now();
        let fills = self.broker.poll();
        let notes = self.broker.take_notes();
        if !notes.is_empty() {
            // A rejection takes an order off its book.
            self.book_changes += 1;
        }
        self.check_account(now);
        let differences = self.broker.take_discrepancies();
        if !differences.is_empty() {
            let why = format!("{RECONCILIATION_FAILED}positions differ from the broker's while running: {}", differences.join("; "));
            self.risk.set_cause(None, Cause::Reconciliation, TradingState::Halted, &why, now);
            self.raise_alerts();
        }
        if fills.is_empty() && notes.is_empty() {
            self.apply_broker_events(now);
            return None;
        }
        for note in notes {
            let id = match &note {
                BrokerNote::Reference { order_id, .. } | BrokerNote::DealId { order_id, .. } | BrokerNote::Rejected { order_id, .. } | BrokerNote::CloseReference { order_id, .. } => *order_id,
            };
            let Some(client_id) = self.orders.client_id_of(id).map(str::to_owned) else {
                tracing::error!(order = id, ?note, "a broker note for an order the host does not track");
                continue;
            };
            match note {
                BrokerNote::Reference { deal_reference, .. } => {
                    self.journal(now, JournalEvent::BrokerRef { client_id, deal_reference: Some(deal_reference), deal_id: None });
                }
                BrokerNote::CloseReference { deal_reference, .. } => self.journal(now, JournalEvent::BrokerClose { client_id, deal_reference }),
                BrokerNote::DealId { deal_id, .. } => {
                    self.journal(now, JournalEvent::BrokerRef { client_id: client_id.clone(), deal_reference: None, deal_id: Some(deal_id) });
                    self.journal(now, JournalEvent::Acknowledged { client_id: client_id.clone(), broker_id: id });
                    let _ = self.orders.apply(&client_id, OrderEvent::Acknowledged, now, None);
                }
                BrokerNote::Rejected { reason, .. } => {
                    self.journal(now, JournalEvent::BrokerRejected { client_id: client_id.clone(), reason: reason.clone() });
                    let _ = self.orders.apply(&client_id, OrderEvent::BrokerRejected, now, Some(&reason));
                    self.exit_orders.remove(&id);
                }
            }
        }
        if !fills.is_empty() {
            self.track_fills(&fills, now);
        }
        Some(fills)
    }

    /// Closes what the broker reported (cancels, expiries) into the tracker
    /// and commits the journal: the end of a poll, a command or an event.
    pub fn settle(&mut self) {
        let now = self.world.clock.now();
        self.apply_broker_events(now);
        self.retry_exits(now);
        self.commit();
    }

    /// A cross-section of bars: prices for risk, then the broker fills what
    /// the bars reach. The fills are returned for their plugins.
    pub fn on_bars(&mut self, bars: &[Bar], now: Timestamp) -> Vec<(Arc<str>, Fill)> {
        self.events += 1;
        for b in bars {
            self.note_price(b.instrument, b.close, now);
        }
        let fills: Vec<_> = bars.iter().flat_map(|b| self.broker.on_bar(b)).collect();
        self.track_fills(&fills, now);
        self.apply_broker_events(now);
        self.route_protective_exits(now);
        if self.risk.var_enabled() {
            // After the fills: the estimate is of what is held now.
            let positions = self.world.ledger().net_positions();
            let prices = &self.last_prices;
            self.risk.update_var(&positions, |i| prices.get(i as usize).copied().flatten(), now);
            self.raise_alerts();
        }
        fills
    }

    /// A quote: its mid for risk, then the broker fills what it reaches.
    pub fn on_quote(&mut self, quote: &Quote, now: Timestamp) -> Vec<(Arc<str>, Fill)> {
        self.events += 1;
        self.note_price(quote.instrument, 0.5 * (quote.bid + quote.ask), now);
        let fills = self.broker.on_quote(quote);
        if !fills.is_empty() {
            self.track_fills(&fills, now);
        }
        self.apply_broker_events(now);
        self.route_protective_exits(now);
        fills
    }

    /// A detector's alarm, to the risk engine (which may trip the breaker).
    /// Journaled at market time (`stratbox report alarms`) before the risk
    /// engine sees it, so the alarm precedes the state change it causes.
    pub fn on_alarm(&mut self, detector: &str, alarm: &Alarm) {
        self.stats.alarms += 1;
        let now = self.world.clock.now();
        let symbol = alarm.instrument.and_then(|i| self.instruments.get(i as usize)).map(|i| i.symbol.clone());
        let level = crate::risk::level_name(alarm.level).to_owned();
        tracing::warn!(market_time = %format_time(now), detector, level, instrument = symbol.as_deref().unwrap_or("market"), reason = %alarm.reason, "anomaly alarm");
        self.journal(now, JournalEvent::Alarm { detector: detector.to_owned(), level, symbol, reason: alarm.reason.clone() });
        self.risk.on_alarm(detector, alarm.level, &alarm.reason, now);
    }

    /// Validates each plugin's intents as a batch and routes them: one
    /// malformed intent refuses the whole batch and names the plugin.
    pub fn submit(&mut self, batches: Vec<(Arc<str>, Vec<Intent>)>, now: Timestamp) -> Vec<Violation> {
        let mut violations = Vec::new();
        for (plugin, intents) in batches {
            self.stats.intents += intents.len() as u64;
            let bad = intents.iter().enumerate().find_map(|(k, i)| {
                validation::validate(i, &self.instruments, &self.bounds).err().map(|why| format!("intent #{k} of {}: {why}", intents.len()))
            });
            if let Some(why) = bad {
                self.stats.invalid_intents += 1;
                violations.push((plugin, why));
                continue;
            }
            for intent in &intents {
                self.route(&plugin, intent, now, false);
            }
            if let Some(log) = &mut self.intent_log {
                log.extend(intents.into_iter().map(|i| (now, plugin.clone(), i)));
            }
        }
        violations
    }

    /// Stop policies' decisions, (policy, protected plugin, decision): levels
    /// to the broker, exits through the path as exits.
    pub fn apply_stop_decisions(&mut self, decisions: Vec<(Arc<str>, Arc<str>, StopDecision)>, now: Timestamp) -> Vec<Violation> {
        let mut violations = Vec::new();
        for (policy, holder, decision) in decisions {
            self.stats.stop_decisions += 1;
            if let Err(why) = validation::validate_stop(&decision, &self.instruments, &self.bounds) {
                self.stats.invalid_intents += 1;
                violations.push((policy, why));
                continue;
            }
            match decision {
                StopDecision::SetLevels(levels) => {
                    self.broker.protect(&holder, levels);
                    // Journaled when they change (a trailing stop moves them often; most bars do not).
                    let key = (holder.clone(), levels.instrument);
                    if self.journaled_levels.get(&key) != Some(&levels) {
                        let StopLevels { instrument, stop_loss, take_profit } = levels;
                        self.journal(now, JournalEvent::Protection { plugin: holder.to_string(), instrument, stop_loss, take_profit });
                        if stop_loss.is_none() && take_profit.is_none() {
                            self.journaled_levels.remove(&key);
                        } else {
                            self.journaled_levels.insert(key, levels);
                        }
                    }
                }
                StopDecision::Exit(instrument) => {
                    self.stats.stop_exits += 1;
                    tracing::debug!(policy = %policy, plugin = %holder, instrument, "stop policy exit");
                    self.route(&holder, &Intent::Target(TargetPosition { instrument, quantity: 0.0 }), now, true);
                }
            }
        }
        violations
    }

    /// Cancels every working order of `plugin` (a quarantine or an unload
    /// with the cancel policy, and flatten); how many were cancelled. Exits
    /// the host placed for its positions keep working, and the protective
    /// levels of its positions stay: they protect what it still holds.
    pub fn cancel_all(&mut self, plugin: &str) -> usize {
        let now = self.world.clock.now();
        let plugin: Arc<str> = Arc::from(plugin);
        let n = self.cancel(&plugin, Plan::Cancel(None, None), now, false);
        self.book_changes += 1;
        self.apply_broker_events(now);
        n
    }

    /// The end of an event: de-leveraging steps due, P&L of `plugins` to the
    /// risk engine, alerts, the equity curve, and the journal committed.
    pub fn end_event<'a>(&mut self, plugins: impl IntoIterator<Item = &'a Arc<str>>, now: Timestamp) {
        self.step_deleverage(now);
        self.retry_exits(now);
        self.update_risk(plugins, now);
        self.commit();
    }

    /// Starts reducing every position of `plugins` by `fraction` over
    /// `steps`; the first step is taken at once. Trading is reduce-only meanwhile.
    pub fn start_deleverage<'a>(&mut self, plugins: impl IntoIterator<Item = &'a Arc<str>>, fraction: f64, steps: u32, every_secs: u64) -> Result<DeleveragePlan, String> {
        if !(fraction > 0.0 && fraction <= 1.0) || steps == 0 {
            return Err(format!("de-leveraging needs a fraction in (0, 1] and at least one step (got {fraction} in {steps})"));
        }
        if every_secs > MAX_SPAN_SECS {
            return Err(format!("de-leveraging `every_secs` is {every_secs}: at most {MAX_SPAN_SECS} (a year of market time)"));
        }
        let now = self.world.clock.now();
        let mut start = Vec::new();
        // Every book with a position, loaded plugin or not (adopted positions too).
        let mut books: Vec<Arc<str>> = plugins.into_iter().cloned().collect();
        books.extend(self.world.ledger().plugins().cloned());
        books.sort();
        books.dedup();
        for plugin in books {
            for p in self.world.ledger().positions(&plugin) {
                start.push((plugin.clone(), p.instrument, p.quantity));
            }
        }
        let reason = format!("de-leveraging {:.0}% in {steps} steps every {every_secs} s (operator)", fraction * 100.0);
        self.risk.set_cause(None, Cause::Deleverage, TradingState::ReduceOnly, &reason, now);
        self.raise_alerts();
        self.deleverage = Some(DeleveragePlan { fraction, steps, steps_done: 0, every_secs, next_at: now, start });
        self.journal_deleverage(now);
        self.step_deleverage(now);
        self.commit();
        Ok(self.deleverage.clone().unwrap_or_else(|| DeleveragePlan { fraction, steps, steps_done: steps, every_secs, next_at: now, start: Vec::new() }))
    }

    /// The de-leveraging in progress, if any.
    pub fn deleverage_plan(&self) -> Option<&DeleveragePlan> {
        self.deleverage.as_ref()
    }

    /// The de-leveraging plan into the journal (`None`: ended), so a restart goes on with it.
    fn journal_deleverage(&mut self, now: Timestamp) {
        let event = match &self.deleverage {
            Some(p) => JournalEvent::Deleverage {
                fraction: p.fraction,
                steps: p.steps,
                steps_done: p.steps_done,
                every_secs: p.every_secs,
                next_at: p.next_at,
                start: p.start.iter().map(|(b, i, q)| (b.to_string(), *i, *q)).collect(),
            },
            None => JournalEvent::Deleverage { fraction: 0.0, steps: 0, steps_done: 0, every_secs: 0, next_at: now, start: Vec::new() },
        };
        self.journal(now, event);
    }

    /// Takes the de-leveraging steps that are due.
    fn step_deleverage(&mut self, now: Timestamp) {
        let Some(plan) = self.deleverage.as_ref() else { return };
        // Steps are sized from the ledger: not while it is known to differ from the broker's.
        if plan.steps_done >= plan.steps || now < plan.next_at || self.risk.holds(Cause::Reconciliation) {
            return;
        }
        let Some(mut plan) = self.deleverage.take() else { return };
        while plan.steps_done < plan.steps && now >= plan.next_at {
            plan.steps_done += 1;
            let keep = 1.0 - plan.fraction * f64::from(plan.steps_done) / f64::from(plan.steps);
            for (plugin, instrument, original) in plan.start.clone() {
                let lot = self.instruments.get(instrument as usize).map_or(1.0, |i| i.lot_size);
                // Toward zero on the lot grid, so a step never adds exposure.
                let target = (original * keep / lot).trunc() * lot;
                let held = self.world.ledger().quantity(&plugin, instrument);
                if held.abs() > target.abs() && held * original > 0.0 {
                    self.route(&plugin, &Intent::Target(TargetPosition { instrument, quantity: target }), now, true);
                    self.exits_due.insert((plugin.clone(), instrument), ExitDue { target, next_at: now.saturating_add(1_000_000_000), tries: 0 });
                }
            }
            plan.next_at = plan.next_at.saturating_add(secs_to_nanos(plan.every_secs));
            tracing::info!(step = plan.steps_done, of = plan.steps, keep = format!("{:.0}%", keep * 100.0), "de-leveraging step");
        }
        if plan.steps_done < plan.steps {
            self.deleverage = Some(plan);
        }
        self.journal_deleverage(now);
    }

    /// Sets a trading state now (journaled, alerted). Active is the
    /// operator's resume: every cause in the scope ends but a failed
    /// reconciliation, and a global resume ends a de-leveraging in progress.
    pub fn set_trading_state(&mut self, plugin: Option<&str>, state: TradingState, reason: &str) {
        if plugin.is_none() && state == TradingState::Active && self.deleverage.take().is_some() {
            tracing::info!("de-leveraging ended by the operator's resume");
            self.journal_deleverage(self.world.clock.now());
        }
        if plugin.is_none() && state == TradingState::Active {
            self.exits_due.clear();
        }
        self.risk.set_state(plugin, state, reason, self.world.clock.now());
        self.raise_alerts();
        self.commit();
    }

    /// Emergency flatten: halt, cancel every working order, and send an exit
    /// for every open position of every one of `plugins`.
    pub fn flatten<'a>(&mut self, plugins: impl IntoIterator<Item = &'a Arc<str>>) -> FlattenReport {
        let now = self.world.clock.now();
        self.risk.set_cause(None, Cause::Flatten, TradingState::Halted, "emergency flatten by the operator", now);
        let mut cancelled = 0;
        let mut closing = Vec::new();
        // Every book with a position, loaded plugin or not (adopted positions too).
        let mut books: Vec<Arc<str>> = plugins.into_iter().cloned().collect();
        {
            let ledger = self.world.ledger();
            // ... and every book with a working order (an unloaded plugin's that kept them).
            books.extend(ledger.plugins().filter(|p| !ledger.positions(p).is_empty() || ledger.book(p).is_some_and(|b| !b.orders.is_empty())).cloned());
        }
        books.sort();
        books.dedup();
        for plugin in &books {
            cancelled += self.cancel_all(plugin);
            let positions = self.world.ledger().positions(plugin);
            for p in positions {
                let intent = Intent::Target(TargetPosition { instrument: p.instrument, quantity: 0.0 });
                if self.route(plugin, &intent, now, true) {
                    closing.push((plugin.to_string(), self.symbol(p.instrument), -p.quantity));
                }
                // Refused for now (a resting order's cancel on its way, an order in doubt): sent again.
                self.exits_due.insert((plugin.clone(), p.instrument), ExitDue { target: 0.0, next_at: now.saturating_add(1_000_000_000), tries: 0 });
            }
        }
        self.raise_alerts();
        self.commit();
        tracing::warn!(cancelled, closing = closing.len(), "emergency flatten");
        FlattenReport { cancelled_orders: cancelled, closing_orders: closing, risk: self.risk.view() }
    }

    /// Up to `limit` journal entries from sequence number `from` (what is
    /// pending is committed first).
    pub fn journal_page(&mut self, from: u64, limit: usize) -> Result<Vec<Entry>, JournalError> {
        self.commit();
        self.journal.entries_from(from).take(limit).collect()
    }

    /// The journal, with what is pending committed (a research run reads its
    /// in-memory journal at the end).
    /// A reader of the committed journal for another thread (`None` in memory).
    pub fn journal_reader(&self) -> Option<crate::execution::JournalReader> {
        self.journal.reader()
    }

    pub fn committed_journal(&mut self) -> &Journal {
        self.commit();
        &self.journal
    }

    /// Makes everything journaled durable (at the end of a run).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.journal.flush()
    }

    pub fn stats(&self) -> PathStats {
        self.stats
    }

    /// Flushes of the journal so far (each a point a crash keeps).
    pub fn journal_flushes(&self) -> u64 {
        self.journal.flushes()
    }

    /// The sizes of what the order path keeps in memory, for its bounds.
    pub fn footprint(&self) -> Footprint {
        let (tracked_orders, finished_orders, broker_ids) = self.orders.footprint();
        Footprint {
            tracked_orders,
            finished_orders,
            broker_ids,
            cached_books: self.positions_cache.len(),
            exit_orders: self.exit_orders.len(),
            risk_queued: self.risk.queued(),
            exits_due: self.exits_due.len(),
            broker_references: self.broker.remembered_references(),
        }
    }

    pub fn broker_stats(&self) -> BrokerStats {
        self.broker.stats()
    }

    pub fn tracker_stats(&self) -> &TrackerStats {
        self.orders.stats()
    }

    /// Every order the host has tracked, by client id (read-only).
    pub fn tracker(&self) -> &OrderTracker {
        &self.orders
    }

    /// Comparisons of a remote broker's positions with the host's made while running.
    pub fn position_checks(&self) -> u64 {
        self.broker.position_checks()
    }

    /// Why `plugin` may send no new order in `instrument` now (an earlier one is in doubt at the broker).
    pub fn in_doubt(&self, plugin: &str, instrument: InstrumentId) -> Option<String> {
        self.broker.unresolved(plugin, instrument)
    }

    /// The protective levels the broker holds, by owner.
    pub fn protections(&self) -> Vec<(Arc<str>, StopLevels)> {
        self.broker.protections()
    }

    pub fn risk_view(&self) -> RiskView {
        self.risk.view()
    }

    /// What the loss limits measure from (peak equity, the day's start).
    pub fn risk_baselines(&self) -> crate::risk::Baselines {
        self.risk.baselines()
    }

    /// The latest reconciliation of the host's equity with a remote broker's
    /// account (`None` with the paper broker).
    pub fn account_check(&self) -> Option<AccountCheck> {
        self.account_check
    }

    /// Realised P&L, unrealised P&L and gross exposure over every plugin.
    fn ledger_totals(&self) -> (f64, f64, f64) {
        let ledger = self.world.ledger();
        totals_of(ledger.plugins().map(|p| ledger.summary(p)))
    }

    /// Compares a new read of the broker's account with the host's P&L: both
    /// are measured from the first read, so the host's configured capital and
    /// the account's deposit need not agree. A difference past the tolerance
    /// is logged and raised as an alert when it starts, not at every read.
    fn check_account(&mut self, now: Timestamp) {
        let Some(account) = self.broker.account() else { return };
        if self.account_check.is_some_and(|c| c.account.read == account.read) {
            return;
        }
        let (realised, unrealised, gross) = self.ledger_totals();
        let host_pnl = realised + unrealised;
        let base = *self.account_base.get_or_insert(AccountBase { broker_equity: account.equity(), host_pnl, traded_notional: self.traded_notional });
        let broker_change = account.equity() - base.broker_equity;
        let host_change = host_pnl - base.host_pnl;
        let difference = broker_change - host_change;
        let t = self.equity_tolerance;
        let tolerance = t.absolute + t.bps_of_notional * 1e-4 * (self.traded_notional - base.traded_notional + gross);
        let within = difference.abs() <= tolerance;
        let was_within = self.account_check.is_none_or(|c| c.within);
        let mut mismatches = self.account_check.map_or(0, |c| c.mismatches);
        if !within && was_within {
            mismatches += 1;
            let message = format!(
                "the broker's equity moved {broker_change:.2} since the first read and the host's P&L {host_change:.2}: {difference:.2} apart, past the {tolerance:.2} costs allow (balance {:.2}, open P&L {:.2})",
                account.balance, account.profit_loss
            );
            self.alerts.raise(Alert { time: now, scope: "global".into(), kind: "equity_mismatch".into(), message, state: None, cause: None });
        } else if within && !was_within {
            tracing::info!(market_time = %format_time(now), difference = format!("{difference:.2}"), "the host's equity agrees with the broker's account again");
        }
        self.account_check = Some(AccountCheck { account, broker_change, host_change, difference, tolerance, within, mismatches });
    }

    fn symbol(&self, instrument: InstrumentId) -> String {
        self.instruments.get(instrument as usize).map_or_else(|| instrument.to_string(), |i| i.symbol.clone())
    }

    /// Plans an intent, puts any order through the risk engine, and executes
    /// what passes; `true` when something was placed or cancelled. Orders are
    /// tracked from creation (a client order id) to their final state.
    fn route(&mut self, plugin: &Arc<str>, intent: &Intent, now: Timestamp, exit: bool) -> bool {
        // An exit is sized by what is held: the plugin's own orders in the
        // instrument go first (one cancelled later would leave the exit
        // opening the other way); exits already working stay and count.
        if exit && let Intent::Target(t) = intent && self.cancel_before_exit(plugin, t, now) > 0 {
            self.book_changes += 1;
            self.apply_broker_events(now);
        }
        let plan = self.broker.plan(plugin, intent);
        let Plan::Place(o) = plan else {
            let done = self.cancel(plugin, plan, now, exit) > 0;
            self.book_changes += 1;
            self.apply_broker_events(now);
            return done;
        };
        let cap = self.risk.config().max_order_quantity;
        // (A cap that is not a positive number leaves the exit whole: risk refuses it, naming the cap.)
        if !exit || o.quantity <= cap || !(cap > 0.0 && cap.is_finite()) {
            return self.place(plugin, o, now, exit);
        }
        // An exit larger than the order cap goes in pieces under it (on the lot grid), each checked.
        let lot = self.instruments.get(o.instrument as usize).map_or(1.0, |i| i.lot_size).max(f64::MIN_POSITIVE);
        let piece = ((cap / lot).floor() * lot).max(lot.min(cap));
        let mut left = o.quantity;
        let mut placed = false;
        while left > 1e-9 {
            let quantity = left.min(piece);
            left -= quantity;
            placed |= self.place(plugin, crate::broker::OrderRequest { quantity, ..o }, now, exit);
        }
        placed
    }

    /// Before an exit toward `t`: the plugin's own orders in the instrument
    /// that the exit could not be sized against. A whole exit takes them all;
    /// a partial one (a de-leveraging step) takes its market orders and those
    /// on the opening side, and keeps resting closing orders (its stop-loss
    /// for what stays) unless with the exit they could close past flat.
    fn cancel_before_exit(&mut self, plugin: &Arc<str>, t: &TargetPosition, now: Timestamp) -> usize {
        if t.quantity == 0.0 {
            return self.cancel(plugin, Plan::Cancel(None, Some(t.instrument)), now, false);
        }
        let held = self.world.ledger().quantity(plugin, t.instrument);
        let closing_side = if held > 0.0 { stratbox_contract::Side::Sell } else { stratbox_contract::Side::Buy };
        let orders = self.working_of(plugin, Some(t.instrument), false);
        let resting_closing: f64 = orders.iter().filter(|o| o.side == closing_side && o.order_type != stratbox_contract::OrderType::Market).map(|o| o.quantity - o.filled_quantity).sum();
        let over = resting_closing + (held - t.quantity).abs() > held.abs() + 1e-9;
        let mut n = 0;
        for o in orders {
            if o.order_type == stratbox_contract::OrderType::Market || o.side != closing_side || over {
                n += self.cancel(plugin, Plan::Cancel(Some(o.id), None), now, false);
            }
        }
        n
    }

    /// Carries out a plugin's cancel: never of an order the host placed as
    /// an exit (flatten, de-leveraging, a stop policy or protective level),
    /// which the plugin did not send and may not take back.
    fn cancel(&mut self, plugin: &Arc<str>, plan: Plan, now: Timestamp, exit: bool) -> usize {
        let count = |s: Submission| match s {
            Submission::Cancelled(n) => n,
            Submission::Nothing => 0,
            _ => 1,
        };
        let Plan::Cancel(one, instrument) = plan else { return count(self.broker.execute(plugin, plan, now)) };
        let ids: Vec<u64> = self.working_of(plugin, instrument, exit).iter().map(|o| o.id).filter(|id| one.is_none_or(|one| *id == one)).collect();
        let mut done = 0;
        for id in ids {
            let n = count(self.broker.execute(plugin, Plan::Cancel(Some(id), None), now));
            // Journaled with the request (a remote broker sends it after the commit):
            // a restart asks again for an order still working.
            if n > 0
                && let Some(client_id) = self.orders.client_id_of(id).map(str::to_owned)
            {
                self.journal(now, JournalEvent::CancelRequested { client_id });
            }
            done += n;
        }
        done
    }

    /// `plugin`'s working orders (in `instrument`, if named), with or
    /// without the exits the host placed for it.
    fn working_of(&self, plugin: &str, instrument: Option<InstrumentId>, with_exits: bool) -> Vec<OrderView> {
        let ledger = self.world.ledger();
        let Some(book) = ledger.book(plugin) else { return Vec::new() };
        book.orders.values().filter(|o| instrument.is_none_or(|i| o.instrument == i) && (with_exits || !self.exit_orders.contains(&o.id))).copied().collect()
    }

    /// Checks one order with the risk engine and places what passes.
    fn place(&mut self, plugin: &Arc<str>, o: crate::broker::OrderRequest, now: Timestamp, exit: bool) -> bool {
        let plan = Plan::Place(o);
        let o = &o;
        let i = o.instrument as usize;
        let last_price = self.last_prices.get(i).copied().flatten();
        let client_id = self.orders.next_client_id(plugin);
        if self.orders.create(client_id.clone(), plugin, o.instrument, o.side, o.quantity, last_price, now).is_err() {
            return false;
        }
        self.journal(
            now,
            JournalEvent::Order {
                client_id: client_id.clone(),
                plugin: plugin.to_string(),
                instrument: o.instrument,
                side: o.side.into(),
                quantity: o.quantity,
                order_type: o.order_type.into(),
                time_in_force: o.time_in_force.into(),
                tag: o.tag,
                decision_price: last_price,
            },
        );
        // Positions change with fills, marks with events, working orders with
        // cancels and rejections: rebuilt then, not per order.
        let version = (self.events, self.broker.stats().fills, self.book_changes);
        if self.positions_cache.get(plugin).is_none_or(|c| c.version != version) {
            let cache = self.book_cache(plugin, version);
            self.positions_cache.insert(plugin.clone(), cache);
        }
        let cache = &self.positions_cache[plugin];
        let here = cache.by_instrument.get(&o.instrument).copied();
        let working = here.map_or((0.0, 0.0), |e| (e.buying, e.selling));
        let others = here.map_or(cache.totals, |e| cache.totals.minus(e.contribution()));
        let open_orders = self.world.ledger().book(plugin).map_or(0, |b| b.orders.len());
        let in_doubt = self.broker.unresolved(plugin, o.instrument);
        let check = OrderCheck {
            plugin,
            instrument: o.instrument,
            symbol: self.instruments.get(i).map_or("?", |i| i.symbol.as_str()),
            side: o.side,
            quantity: o.quantity,
            order_type: o.order_type,
            position: self.world.ledger().quantity(plugin, o.instrument),
            working,
            last_price,
            market_open: self.hours.get(i).and_then(Option::as_ref).map(|h| h.is_open(now)),
            others,
            open_orders,
            exit,
            in_doubt: in_doubt.as_deref(),
            now,
        };
        if let Err(reject) = self.risk.check(&check) {
            self.stats.risk_rejected += 1;
            tracing::debug!(plugin = %plugin, rule = ?reject.rule, detail = %reject.detail, "order refused by risk");
            self.journal(now, JournalEvent::Risk { client_id: client_id.clone(), accepted: false, reason: Some(reject.to_string()) });
            let _ = self.orders.apply(&client_id, OrderEvent::RiskRejected, now, Some(&reject.to_string()));
            return false;
        }
        // Journaled before the broker sees it (an exit says so: a restart keeps it out of plugins' cancels).
        let reason = exit.then(|| crate::execution::EXIT_ACCEPTED.to_owned());
        self.journal(now, JournalEvent::Risk { client_id: client_id.clone(), accepted: true, reason });
        let _ = self.orders.apply(&client_id, OrderEvent::RiskAccepted, now, None);
        let (instrument, side, quantity) = (o.instrument, o.side, o.quantity);
        let mark = last_price.or(order_price(o.order_type)).unwrap_or(0.0);
        let placed = self.broker.execute(plugin, plan, now);
        if matches!(placed, Submission::Placed(_) | Submission::Queued(_)) {
            self.add_working(plugin, version, instrument, side, quantity, mark);
        }
        if exit && let Submission::Placed(id) | Submission::Queued(id) = placed {
            self.exit_orders.insert(id);
        }
        match placed {
            Submission::Placed(id) => {
                self.journal(now, JournalEvent::Acknowledged { client_id: client_id.clone(), broker_id: id });
                self.orders.bind(&client_id, id);
                let _ = self.orders.apply(&client_id, OrderEvent::Acknowledged, now, None);
                true
            }
            // A remote broker acknowledges later (a note); until then the order is sent.
            Submission::Queued(id) => {
                self.journal(now, JournalEvent::Sent { client_id: client_id.clone(), broker_id: id });
                self.orders.bind(&client_id, id);
                true
            }
            other => {
                tracing::error!(plugin = %plugin, client_id, outcome = ?other, "the broker did not place an order it was given");
                self.journal(now, JournalEvent::BrokerRejected { client_id: client_id.clone(), reason: "not placed".into() });
                let _ = self.orders.apply(&client_id, OrderEvent::BrokerRejected, now, Some("not placed"));
                false
            }
        }
    }

    /// `plugin`'s book for the risk checks: positions at their marks and
    /// working orders (an instrument with orders only is marked at its last
    /// price, else the order's).
    fn book_cache(&self, plugin: &str, version: (u64, u64, u64)) -> BookCache {
        let ledger = self.world.ledger();
        let mut by_instrument: std::collections::BTreeMap<InstrumentId, Exposure> = ledger
            .positions(plugin)
            .iter()
            .map(|p| (p.instrument, Exposure { instrument: p.instrument, quantity: p.quantity, mark: p.average_price + p.unrealised_pnl / p.quantity, buying: 0.0, selling: 0.0 }))
            .collect();
        for v in ledger.book(plugin).map(|b| b.orders.values()).into_iter().flatten() {
            let left = (v.quantity - v.filled_quantity).max(0.0);
            let e = by_instrument.entry(v.instrument).or_insert_with(|| {
                let mark = self.last_prices.get(v.instrument as usize).copied().flatten().or(order_price(v.order_type)).unwrap_or(0.0);
                Exposure { instrument: v.instrument, quantity: 0.0, mark, buying: 0.0, selling: 0.0 }
            });
            if v.side == stratbox_contract::Side::Buy {
                e.buying += left;
            } else {
                e.selling += left;
            }
        }
        let totals = BookTotals::of(by_instrument.values());
        BookCache { version, by_instrument, totals }
    }

    /// An order just placed joins its plugin's cached book (if the cache is current).
    fn add_working(&mut self, plugin: &Arc<str>, version: (u64, u64, u64), instrument: InstrumentId, side: stratbox_contract::Side, quantity: f64, mark: f64) {
        let Some(cache) = self.positions_cache.get_mut(plugin).filter(|c| c.version == version) else { return };
        let e = cache.by_instrument.entry(instrument).or_insert(Exposure { instrument, quantity: 0.0, mark, buying: 0.0, selling: 0.0 });
        cache.totals = cache.totals.minus(e.contribution());
        if side == stratbox_contract::Side::Buy {
            e.buying += quantity;
        } else {
            e.selling += quantity;
        }
        cache.totals = cache.totals.plus(e.contribution());
    }

    /// Fills into the order tracker; a fill of an order the host did not
    /// place through `route` (the paper broker's simulated broker-held stop,
    /// filled at its level) gets its record and journaled order first.
    fn track_fills(&mut self, fills: &[(Arc<str>, Fill)], now: Timestamp) {
        // Financing was charged before these fills (at the day's first bar or quote).
        self.journal_broker_facts(now);
        let mut protective = Vec::new();
        for (owner, fill) in fills {
            let client_id = match self.orders.client_id_of(fill.order_id) {
                Some(id) => id.to_owned(),
                None => {
                    protective.push((owner.clone(), fill.instrument, fill.side));
                    let id = self.orders.next_client_id(owner);
                    self.orders.adopt(id.clone(), owner, fill.instrument, fill.side, fill.quantity, fill.order_id, now);
                    // The journal holds every order before its fill, whoever made it.
                    self.journal(
                        fill.time,
                        JournalEvent::Order {
                            client_id: id.clone(),
                            plugin: owner.to_string(),
                            instrument: fill.instrument,
                            side: fill.side.into(),
                            quantity: fill.quantity,
                            order_type: stratbox_contract::OrderType::Market.into(),
                            time_in_force: stratbox_contract::TimeInForce::Ioc.into(),
                            tag: 0,
                            decision_price: None,
                        },
                    );
                    self.journal(fill.time, JournalEvent::Risk { client_id: id.clone(), accepted: true, reason: Some(PROTECTIVE_EXIT.into()) });
                    self.journal(fill.time, JournalEvent::Acknowledged { client_id: id.clone(), broker_id: fill.order_id });
                    id
                }
            };
            // Stamped when it happened (a bar's open fill at the bar's start),
            // not when the host learnt of it.
            self.journal(
                fill.time,
                JournalEvent::Fill {
                    client_id: client_id.clone(),
                    broker_id: fill.order_id,
                    plugin: owner.to_string(),
                    instrument: fill.instrument,
                    side: fill.side.into(),
                    quantity: fill.quantity,
                    price: fill.price,
                    fee: fill.fee,
                },
            );
            if self.orders.fill(&client_id, fill.quantity, fill.price, fill.time).is_ok_and(|s| s.is_final()) {
                self.exit_orders.remove(&fill.order_id);
            }
            self.traded_notional += fill.quantity * fill.price.abs();
        }
        for (owner, instrument, side) in protective {
            self.trim_after_protective_exit(&owner, instrument, side, now);
        }
    }

    /// A broker's protective level closed some or all of a position: while
    /// the book may only reduce, the plugin's own orders on that closing side
    /// that now reach past flat are cancelled (they could only open the other
    /// way, which a reduce-only or halted book may not).
    fn trim_after_protective_exit(&mut self, owner: &Arc<str>, instrument: InstrumentId, side: stratbox_contract::Side, now: Timestamp) {
        if self.risk.state_of(owner).state == TradingState::Active {
            return;
        }
        let held = self.world.ledger().quantity(owner, instrument);
        let closing: Vec<OrderView> = self.working_of(owner, Some(instrument), false).into_iter().filter(|o| o.side == side).collect();
        if closing.iter().map(|o| o.quantity - o.filled_quantity).sum::<f64>() <= held.abs() + 1e-9 {
            return;
        }
        for o in closing {
            self.cancel(owner, Plan::Cancel(Some(o.id), None), now, false);
        }
        self.book_changes += 1;
    }

    /// Cancels and expiries from the broker into the order tracker.
    fn apply_broker_events(&mut self, now: Timestamp) {
        self.journal_broker_facts(now);
        let events = self.broker.take_events();
        if !events.is_empty() {
            self.book_changes += 1;
        }
        for (id, event) in events {
            if let Some(client_id) = self.orders.client_id_of(id).map(str::to_owned) {
                match event {
                    OrderEvent::Cancelled => self.journal(now, JournalEvent::Cancelled { client_id: client_id.clone() }),
                    OrderEvent::Expired => self.journal(now, JournalEvent::Expired { client_id: client_id.clone() }),
                    _ => {}
                }
                let _ = self.orders.apply(&client_id, event, now, None);
                // Cancelled or expired: no longer an exit that works.
                self.exit_orders.remove(&id);
            }
        }
    }

    /// Hands the risk engine's new alerts to the sink (log and webhooks, never
    /// blocking), journaling the trading states they set.
    fn raise_alerts(&mut self) {
        for alert in self.risk.take_alerts() {
            if let Some(state) = alert.state {
                let plugin = (alert.scope != "global").then(|| alert.scope.clone());
                let cause = alert.cause.unwrap_or_default();
                let until = if state == TradingState::Halted && cause == Cause::CircuitBreaker { self.risk.until_of(plugin.as_deref(), cause) } else { None };
                self.journal(alert.time, JournalEvent::TradingState { plugin, state, reason: alert.message.clone(), cause, until });
            }
            self.alerts.raise(alert);
        }
    }

    /// Financing charges and arrival mids since the last call, into the journal.
    fn journal_broker_facts(&mut self, now: Timestamp) {
        for (plugin, instrument, amount) in self.broker.take_financing() {
            self.journal(now, JournalEvent::Financing { plugin: plugin.to_string(), instrument, amount });
        }
        for (id, mid) in self.broker.take_arrivals() {
            if let Some(client_id) = self.orders.client_id_of(id).map(str::to_owned) {
                self.journal(now, JournalEvent::Arrival { client_id, mid });
            }
        }
    }

    /// Appends to the journal; if it cannot be written, trading halts (fail closed).
    fn journal(&mut self, time: Timestamp, event: JournalEvent) {
        if let Err(e) = self.journal.append(time, event) {
            tracing::error!(error = %e, "the execution journal cannot be written; halting trading");
            self.risk.set_cause(None, Cause::Journal, TradingState::Halted, &format!("the execution journal cannot be written: {e}"), time);
        }
    }

    /// Feeds the risk engine the P&L after an event.
    fn update_risk<'a>(&mut self, plugins: impl IntoIterator<Item = &'a Arc<str>>, now: Timestamp) {
        // Once per event, one summary per book: the totals (the account's P&L is
        // every book's, a plugin's unloaded since or an adopted one too) and the
        // loaded plugins' own P&L.
        let (per_plugin, totals) = {
            let ledger = self.world.ledger();
            // In book order, so the sum is the same bits in every run.
            let summaries: std::collections::BTreeMap<&str, crate::broker::BookSummary> = ledger.plugins().map(|p| (&**p, ledger.summary(p))).collect();
            let totals = totals_of(summaries.values().copied());
            let per_plugin: Vec<(Arc<str>, f64)> =
                plugins.into_iter().map(|name| (name.clone(), summaries.get(&**name).map_or(0.0, |s| s.realised_pnl + s.unrealised_pnl))).collect();
            (per_plugin, totals)
        };
        self.risk.on_pnl(totals.0 + totals.1, &per_plugin, now);
        self.journal_baselines(now);
        self.risk.tick(now);
        self.raise_alerts();
        self.sample_equity(now, totals);
    }

    /// The loss limits' baselines into a durable journal when they changed,
    /// so that a restart measures daily loss and drawdown from where they were.
    fn journal_baselines(&mut self, now: Timestamp) {
        let b = self.risk.baselines();
        if !self.journal.is_durable() || self.journaled_baselines == Some(b) {
            return;
        }
        self.journaled_baselines = Some(b);
        let plugin_day_start = self.risk.plugin_day_starts();
        self.journal(now, JournalEvent::RiskBaselines { peak_equity: b.peak_equity, day: b.day, day_start_equity: b.day_start_equity, plugin_day_start, reference_open: b.reference_open });
    }

    /// A point of the equity curve into the journal, every `equity_every_secs`
    /// of market time, from the event's (realised, unrealised, gross exposure).
    fn sample_equity(&mut self, now: Timestamp, (realised, unrealised, gross_exposure): (f64, f64, f64)) {
        let every = secs_to_nanos(self.equity_every_secs);
        if every <= 0 || now < self.next_equity_at {
            return;
        }
        self.next_equity_at = now.div_euclid(every).saturating_add(1).saturating_mul(every);
        let equity = self.capital + realised + unrealised;
        self.journal(now, JournalEvent::Equity { equity, realised, unrealised, gross_exposure });
    }

    /// Writes the journal entries so far as one batch (fail closed if it
    /// cannot), then lets a remote broker send what it queued.
    pub fn commit(&mut self) {
        let mut written = self.journal.commit().map(|_| ());
        // A remote broker's requests leave only once they are on disk: a crash
        // can lose a reply (reconciliation finds it), never a request.
        if written.is_ok() && self.broker.queued() > 0 {
            written = self.journal.flush();
        }
        match written {
            Ok(()) => self.broker.dispatch(),
            Err(e) => {
                tracing::error!(error = %e, "the execution journal cannot be written; halting trading");
                self.risk.set_cause(None, Cause::Journal, TradingState::Halted, &format!("the execution journal cannot be written: {e}"), self.world.clock.now());
                self.broker.discard_queued(&e.to_string());
                self.book_changes += 1;
            }
        }
    }

    /// Sends again the operator's exits that are not done (see `exits_due`).
    fn retry_exits(&mut self, now: Timestamp) {
        // While a flatten holds, a position opened after it (an order that was
        // on its way, found in doubt) is closed too.
        // Resting orders of a book with nothing to close are cancelled again
        // too (a cancel that failed at the broker would leave them working).
        let flattening = self.risk.holds(Cause::Flatten);
        if flattening {
            let open: Vec<(Arc<str>, InstrumentId)> = {
                let ledger = self.world.ledger();
                let positions = ledger.plugins().flat_map(|p| ledger.positions(p).into_iter().map(move |q| (p.clone(), q.instrument)));
                let resting = ledger.plugins().flat_map(|p| ledger.book(p).into_iter().flat_map(move |b| b.orders.values().map(move |o| (p.clone(), o.instrument))));
                positions.chain(resting).collect()
            };
            for key in open {
                self.exits_due.entry(key).or_insert(ExitDue { target: 0.0, next_at: now, tries: 0 });
            }
        }
        // Sized from the ledger: not while it is known to differ from the broker's.
        if self.exits_due.is_empty() || self.risk.holds(Cause::Reconciliation) {
            return;
        }
        let due: Vec<((Arc<str>, InstrumentId), ExitDue)> = self.exits_due.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for ((plugin, instrument), mut exit) in due {
            let held = self.world.ledger().quantity(&plugin, instrument);
            // A position that went past flat the other way is taken to flat, never grown.
            let target = if held * exit.target < 0.0 { 0.0 } else { exit.target };
            let resting = flattening && target == 0.0 && self.working_of(&plugin, Some(instrument), false).iter().any(|o| o.order_type != stratbox_contract::OrderType::Market);
            if held * target >= 0.0 && held.abs() <= target.abs() + 1e-9 && !resting {
                self.exits_due.remove(&(plugin, instrument));
                continue;
            }
            if now < exit.next_at || self.broker.unresolved(&plugin, instrument).is_some() {
                continue;
            }
            let working = self.working_of(&plugin, Some(instrument), true);
            // On its way: an exit, or a market order.
            if working.iter().any(|o| self.exit_orders.contains(&o.id) || o.order_type == stratbox_contract::OrderType::Market) {
                continue;
            }
            // Again and again less often (1 s doubling to a minute): a broker that keeps refusing is not flooded.
            exit.tries += 1;
            exit.next_at = now.saturating_add(1_000_000_000i64.saturating_mul(1 << exit.tries.min(6)));
            self.exits_due.insert((plugin.clone(), instrument), exit);
            if target == 0.0 && !working.is_empty() {
                // Resting orders still there (a cancel that failed at the broker): asked to cancel again, the exit after.
                for o in working {
                    self.cancel(&plugin, Plan::Cancel(Some(o.id), None), now, false);
                }
                self.book_changes += 1;
                continue;
            }
            tracing::info!(market_time = %format_time(now), plugin = %plugin, instrument = %self.symbol(instrument), target, held, "an exit not done yet: sent again");
            self.route(&plugin, &Intent::Target(TargetPosition { instrument, quantity: target }), now, true);
        }
    }

    /// Routes the exits a broker's protective levels asked for (a stop-loss or
    /// take-profit reached): each one an exit through the path like any other.
    fn route_protective_exits(&mut self, now: Timestamp) {
        for (owner, instrument) in self.broker.take_protective_exits() {
            // A level asks again while it is reached: not while its exit is on its way, nor while
            // an order of the book is in doubt (the exit would be refused, and journaled every time).
            if self.working_of(&owner, Some(instrument), true).iter().any(|o| self.exit_orders.contains(&o.id)) || self.broker.unresolved(&owner, instrument).is_some() {
                continue;
            }
            tracing::info!(market_time = %format_time(now), plugin = %owner, instrument = %self.symbol(instrument), "protective level reached: exit");
            self.route(&owner, &Intent::Target(TargetPosition { instrument, quantity: 0.0 }), now, true);
        }
    }

    fn note_price(&mut self, instrument: InstrumentId, price: f64, now: Timestamp) {
        if let Some(slot) = self.last_prices.get_mut(instrument as usize) {
            *slot = Some(price);
            let symbol = &self.instruments[instrument as usize].symbol;
            self.risk.on_price(symbol, price, now);
            self.risk.on_var_price(instrument, price, now);
        }
    }
}
