//! The host's event loop: feed -> history and broker -> plugins by role ->
//! validation -> broker, one event at a time, with control commands handled
//! between events (which is what makes a hot swap lose nothing).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::broker::{Broker, BrokerNote, BrokerStats, PaperBroker, Plan, Submission};
use crate::config::{HostConfig, Mode, OrderPolicy};
use crate::execution::{Journal, JournalError, JournalEvent, OrderEvent, OrderTracker, TrackerStats, rebuild};
use crate::market::{Feed, FeedPoll, Instrument, InstrumentId, MarketEvent, Timestamp};
use crate::risk::{AlertSink, OrderCheck, RiskEngine, RiskView, TradingState};
use crate::runtime::bindings::{Alarm, BarBatch, Intent, RunMode, StopDecision, TargetPosition};
use crate::runtime::{Fault, Sandbox, SandboxSettings};
use crate::supervisor::{PluginFactory, PluginView, Started, Supervisor, SwapReport};
use crate::validation::{self, IntentBounds};
use crate::world::SharedWorld;

/// A request to the running host (from the control API or a test).
pub enum Command {
    List(oneshot::Sender<Vec<PluginView>>),
    Status(oneshot::Sender<StatusView>),
    Install(Box<Started>, oneshot::Sender<Result<PluginView, String>>),
    Unload(String, oneshot::Sender<Result<PluginView, String>>),
    Swap(String, Box<Started>, oneshot::Sender<Result<SwapReport, String>>),
    /// Emergency flatten: cancel every order, close every position, halt.
    Flatten(oneshot::Sender<FlattenReport>),
    /// Set the global trading state back to active (the operator's call).
    Resume(oneshot::Sender<RiskView>),
    /// Reduce every position by `fraction` in `steps` equal steps, `every_secs` of market time apart.
    Deleverage { fraction: f64, steps: u32, every_secs: u64, reply: oneshot::Sender<Result<DeleveragePlan, String>> },
    /// Up to `limit` journal entries from sequence number `from` (reports of a running host:
    /// sled lets one process open the journal).
    Journal { from: u64, limit: usize, reply: oneshot::Sender<Result<Vec<crate::execution::Entry>, String>> },
    Shutdown,
}

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
    start: Vec<(Arc<str>, InstrumentId, f64)>,
}

/// A position as the risk checks see it: instrument, signed quantity, mark.
type RiskPosition = (InstrumentId, f64, f64);

/// Per plugin: the (event, fill) counts a position list reflects, and the list.
type PositionsCache = std::collections::HashMap<Arc<str>, ((u64, u64), Vec<RiskPosition>)>;

/// What an emergency flatten did.
#[derive(Debug, Clone, Serialize)]
pub struct FlattenReport {
    pub cancelled_orders: usize,
    /// Closing orders placed: (plugin, instrument symbol, quantity closed, signed).
    pub closing_orders: Vec<(String, String, f64)>,
    pub risk: RiskView,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the plugin store in {path}: {source}")]
    Store { path: PathBuf, source: sled::Error },
    #[error("cannot start the sandbox: {0}")]
    Sandbox(#[from] crate::runtime::LoadError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot start the broker: {0}")]
    Broker(String),
}

/// How a halt for a failed reconciliation starts its reason.
pub const RECONCILIATION_FAILED: &str = "reconciliation failed: ";

/// Counters of one run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunStats {
    pub events: u64,
    pub bars: u64,
    pub intents: u64,
    pub invalid_intents: u64,
    /// Orders the risk engine refused (by rule in `risk.stats`).
    pub risk_rejected: u64,
    pub stop_decisions: u64,
    pub alarms: u64,
    pub swaps: u64,
    #[serde(with = "crate::util::duration_ms")]
    pub longest_swap_hold: Duration,
    /// Plugins from the config that were refused at start, with the reason.
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub market_time: Timestamp,
    #[serde(with = "crate::util::duration_ms")]
    pub uptime: Duration,
    pub stats: RunStats,
    pub broker: BrokerStats,
    pub orders: TrackerStats,
    pub risk: RiskView,
    pub plugins_running: usize,
    /// Live feeds: from the frame read off the network to the event fully
    /// dispatched (every plugin callback returned), over the last events.
    pub feed_latency: Option<LatencySummary>,
}

/// Percentiles of recent latencies, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// The last `LATENCY_WINDOW` feed-to-dispatch latencies.
const LATENCY_WINDOW: usize = 20_000;

#[derive(Default)]
struct Latencies {
    ring: Vec<Duration>,
    next: usize,
}

impl Latencies {
    fn record(&mut self, d: Duration) {
        if self.ring.len() < LATENCY_WINDOW {
            self.ring.push(d);
        } else {
            self.ring[self.next] = d;
            self.next = (self.next + 1) % LATENCY_WINDOW;
        }
    }

    fn summary(&self) -> Option<LatencySummary> {
        if self.ring.is_empty() {
            return None;
        }
        // Selection, not a sort: this runs inside the event loop.
        let mut v = self.ring.clone();
        let mut at = |q: f64| {
            let k = ((v.len() - 1) as f64 * q).round() as usize;
            v.select_nth_unstable(k).1.as_secs_f64() * 1e6
        };
        let (p50, p99) = (at(0.5), at(0.99));
        let max = self.ring.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e6);
        Some(LatencySummary { samples: self.ring.len(), p50_us: p50, p99_us: p99, max_us: max })
    }
}

/// What `stratbox run` prints at the end.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub status: StatusView,
    pub plugins: Vec<PluginView>,
}

/// How long to run, and a flag that stops the loop (Ctrl-C).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub duration: Option<Duration>,
    pub stop: Arc<AtomicBool>,
}

pub struct Host {
    config: HostConfig,
    feed: Box<dyn Feed>,
    instruments: Vec<Instrument>,
    pub supervisor: Supervisor,
    pub broker: Box<dyn Broker>,
    pub risk: RiskEngine,
    pub alerts: AlertSink,
    pub orders: OrderTracker,
    journal: Journal,
    /// Last price (bar close, quote mid) per instrument, for risk checks.
    last_prices: Vec<Option<f64>>,
    world: Arc<SharedWorld>,
    commands: Receiver<Command>,
    bounds: IntentBounds,
    pub stats: RunStats,
    started: Instant,
    /// When set, every intent accepted from a plugin, in order (for tests and audits).
    pub intent_log: Option<Vec<(Timestamp, Arc<str>, Intent)>>,
    latencies: Latencies,
    deleverage: Option<DeleveragePlan>,
    /// Each plugin's positions for the risk checks, and the (event, fill) counts they reflect.
    positions_cache: PositionsCache,
    /// Market time of the next equity-curve point.
    next_equity_at: Timestamp,
}

impl Host {
    /// Opens the data directory and sandbox, and starts the configured plugins.
    /// A plugin that fails to start is refused (logged, counted); the host runs on.
    pub fn new(config: HostConfig, feed: Box<dyn Feed>, commands: Receiver<Command>) -> Result<Self, HostError> {
        let paper = config.broker;
        Self::with_broker(config, feed, move |world| Ok(Box::new(PaperBroker::new(paper, world))), commands)
    }

    /// As [`Host::new`], trading through the broker `make_broker` builds on the host's world.
    pub fn with_broker(
        config: HostConfig,
        feed: Box<dyn Feed>,
        make_broker: impl FnOnce(Arc<SharedWorld>) -> Result<Box<dyn Broker>, HostError>,
        commands: Receiver<Command>,
    ) -> Result<Self, HostError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| HostError::DataDir { path: dir.clone(), source })?;
        let kv_path = dir.join("plugin-store");
        let kv = sled::Config::new()
            .path(&kv_path)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| HostError::Store { path: kv_path, source })?;
        let sandbox = Sandbox::new(SandboxSettings {
            defaults: config.sandbox.defaults,
            maxima: config.sandbox.maxima,
            max_component_bytes: config.sandbox.max_component_bytes,
            cache_dir: Some(dir.join("compiled")),
            pool: crate::runtime::PoolSize { component_instances: config.sandbox.max_instances },
            metering: config.sandbox.metering.unwrap_or(config.mode.default_metering()),
        })?;
        let world = Arc::new(SharedWorld::new(config.history_depth));
        let instruments = feed.instruments().to_vec();
        let mode = match config.mode {
            Mode::Backtest => RunMode::Backtest,
            Mode::Paper => RunMode::Paper,
            Mode::Live => RunMode::Live,
        };
        let factory = Arc::new(PluginFactory::new(Arc::new(sandbox), world.clone(), Some(kv), mode, instruments.clone()));
        let mut supervisor = Supervisor::new(factory.clone());
        let mut stats = RunStats::default();
        for spec in &config.plugins {
            match factory.load(spec.clone()).and_then(|s| supervisor.install(s)) {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, "plugin refused");
                    stats.refused.push(e.to_string());
                }
            }
        }
        let mut broker = make_broker(world.clone())?;
        let mut risk = RiskEngine::new(config.risk.clone());
        let journal_path = dir.join("journal");
        if !config.resumes_journal() && journal_path.exists() {
            // A fresh market: keep the last run's journal aside, start a new one.
            let previous = dir.join("journal.previous");
            let _ = std::fs::remove_dir_all(&previous);
            std::fs::rename(&journal_path, &previous).map_err(|source| HostError::DataDir { path: journal_path.clone(), source })?;
        }
        let mut journal = Journal::open(&journal_path, config.journal.flush_every_ms)?;
        let mut orders = OrderTracker::default();
        let mut rebuilt = None;
        if !journal.is_empty() {
            // Fail closed: nothing trades until the journal is replayed and the broker reconciled.
            risk.restore_state(None, TradingState::Halted, "reconciling with the broker after a restart", 0);
            let r = rebuild(&journal, &mut world.ledger_mut(), &mut orders)?;
            for o in &r.working {
                broker.restore(o);
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
        let alerts = AlertSink::new(config.alerts.clone());
        let last_prices = vec![None; instruments.len()];
        let mut host = Self {
            config,
            feed,
            instruments,
            supervisor,
            broker,
            risk,
            orders,
            journal,
            alerts,
            last_prices,
            world,
            commands,
            bounds: IntentBounds::default(),
            stats,
            started: Instant::now(),
            intent_log: None,
            latencies: Latencies::default(),
            deleverage: None,
            positions_cache: Default::default(),
            next_equity_at: Timestamp::MIN,
        };
        if let Some(rebuilt) = rebuilt {
            host.reconcile(rebuilt);
        }
        Ok(host)
    }

    /// After a restart: the broker's account against the rebuilt journal. What
    /// the broker did meanwhile (fills, rejects, cancels) is journaled; trading
    /// resumes only if every position then matches the broker's. Otherwise the
    /// host stays halted and says why.
    fn reconcile(&mut self, rebuilt: crate::execution::Rebuilt) {
        let now = self.world.clock.now();
        let outcome = self.broker.reconcile(now, &rebuilt.references);
        self.drain_broker();
        let verdict = outcome.and_then(|r| {
            let mut mismatches = Vec::new();
            let broker: HashMap<InstrumentId, f64> = r.broker_positions.iter().copied().collect();
            let ledger = self.world.ledger().net_positions();
            let mut instruments: Vec<InstrumentId> = broker.keys().chain(ledger.keys()).copied().collect();
            instruments.sort_unstable();
            instruments.dedup();
            // A paper broker has no account of its own: the journal replay was its state.
            for i in instruments.into_iter().filter(|_| r.compared) {
                let (b, j) = (broker.get(&i).copied().unwrap_or(0.0), ledger.get(&i).copied().unwrap_or(0.0));
                if (b - j).abs() > 1e-6 {
                    let symbol = self.instruments.get(i as usize).map_or_else(|| i.to_string(), |x| x.symbol.clone());
                    mismatches.push(format!("{symbol}: journal {j}, broker {b}"));
                }
            }
            if !r.unknown_working_orders.is_empty() {
                mismatches.push(format!("working orders at the broker that the journal does not know: {}", r.unknown_working_orders.join(", ")));
            }
            if mismatches.is_empty() { Ok(r) } else { Err(format!("positions differ from the broker's: {}", mismatches.join("; "))) }
        });
        match verdict {
            Ok(r) => {
                let reason = format!(
                    "reconciled after a restart: {} journal entries, {} fills, {} orders restored, {} looked up at the broker",
                    rebuilt.entries,
                    rebuilt.fills,
                    rebuilt.working.len(),
                    r.resolved
                );
                self.risk.restore_state(None, TradingState::Active, &reason, now);
                for (scope, (state, reason, since)) in &rebuilt.states {
                    // A halt for an earlier failed reconciliation ends with this one.
                    if scope.is_none() && reason.starts_with(RECONCILIATION_FAILED) {
                        self.set_trading_state(None, TradingState::Active, "reconciled: the earlier reconciliation failure is resolved");
                        continue;
                    }
                    self.risk.restore_state(scope.as_deref(), *state, reason, *since);
                }
                tracing::info!(reason, "reconciled");
            }
            Err(why) => {
                tracing::error!(reason = %why, "reconciliation failed: trading stays halted");
                self.risk.set_state(None, TradingState::Halted, &format!("{RECONCILIATION_FAILED}{why}"), now);
                self.raise_alerts();
            }
        }
        self.commit_journal();
    }

    /// What the broker did since the last call: references and rejections,
    /// fills (to the plugins too), cancels and expiries, all journaled.
    fn drain_broker(&mut self) {
        let fills = self.broker.poll();
        let notes = self.broker.take_notes();
        if fills.is_empty() && notes.is_empty() {
            self.apply_broker_events(self.world.clock.now());
            return;
        }
        let now = self.world.clock.now();
        for note in notes {
            let id = match &note {
                BrokerNote::Reference { order_id, .. } | BrokerNote::DealId { order_id, .. } | BrokerNote::Rejected { order_id, .. } => *order_id,
            };
            let Some(client_id) = self.orders.client_id_of(id).map(str::to_owned) else {
                tracing::error!(order = id, ?note, "a broker note for an order the host does not track");
                continue;
            };
            match note {
                BrokerNote::Reference { deal_reference, .. } => {
                    self.journal(now, JournalEvent::BrokerRef { client_id, deal_reference: Some(deal_reference), deal_id: None });
                }
                BrokerNote::DealId { deal_id, .. } => {
                    self.journal(now, JournalEvent::BrokerRef { client_id: client_id.clone(), deal_reference: None, deal_id: Some(deal_id) });
                    self.journal(now, JournalEvent::Acknowledged { client_id: client_id.clone(), broker_id: id });
                    let _ = self.orders.apply(&client_id, OrderEvent::Acknowledged, now, None);
                }
                BrokerNote::Rejected { reason, .. } => {
                    self.journal(now, JournalEvent::BrokerRejected { client_id: client_id.clone(), reason: reason.clone() });
                    let _ = self.orders.apply(&client_id, OrderEvent::BrokerRejected, now, Some(&reason));
                }
            }
        }
        if !fills.is_empty() {
            self.track_fills(&fills, now);
            let intents = self.supervisor.on_fills(&fills);
            self.submit(intents, now);
        }
        self.apply_broker_events(now);
        self.commit_journal();
    }

    pub fn factory(&self) -> Arc<PluginFactory> {
        self.supervisor.factory().clone()
    }

    pub fn world(&self) -> &Arc<SharedWorld> {
        &self.world
    }

    /// Runs until the feed ends, the duration passes, the stop flag is set
    /// or a shutdown command arrives.
    pub fn run(&mut self, options: &RunOptions) -> RunSummary {
        let deadline = options.duration.map(|d| Instant::now() + d);
        let pace = Duration::from_millis(self.config.pace_ms);
        let status_every = Duration::from_secs(self.config.status_secs);
        let mut next_status = Instant::now() + status_every;
        let mut next_event = Instant::now();
        'run: loop {
            // Commands and pacing: wait for the next event's slot, serving commands meanwhile.
            loop {
                let now = Instant::now();
                if options.stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
                    break 'run;
                }
                let wait = next_event.saturating_duration_since(now).min(Duration::from_millis(50));
                let cmd = if wait.is_zero() {
                    self.commands.try_recv().ok()
                } else {
                    match self.commands.recv_timeout(wait) {
                        Ok(cmd) => Some(cmd),
                        Err(RecvTimeoutError::Timeout) => None,
                        // Nobody can send commands any more: just keep the pace.
                        Err(RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(wait);
                            None
                        }
                    }
                };
                if let Some(cmd) = cmd {
                    if !self.handle(cmd) {
                        break 'run;
                    }
                } else if Instant::now() >= next_event {
                    break;
                }
            }
            if !self.step() {
                break;
            }
            // Keep the pace, but never try to catch up a backlog in a burst.
            let now = Instant::now();
            next_event = if pace.is_zero() { now } else { next_event.max(now.checked_sub(pace).unwrap_or(now)) + pace };
            if !status_every.is_zero() && Instant::now() >= next_status {
                next_status += status_every;
                self.print_status();
            }
        }
        if let Err(e) = self.journal.flush() {
            tracing::error!(error = %e, "the execution journal could not be flushed at the end of the run");
        }
        // Serve what is already queued so no caller waits forever.
        while let Ok(cmd) = self.commands.try_recv() {
            if matches!(cmd, Command::Shutdown) {
                continue;
            }
            self.handle(cmd);
        }
        self.summary()
    }

    /// Restarts what is due, then processes the feed's next event; `false`
    /// when the feed is exhausted.
    pub fn step(&mut self) -> bool {
        self.supervisor.maintain();
        self.apply_notices();
        self.drain_broker();
        match self.feed.poll_event(Duration::from_millis(20)) {
            FeedPoll::Event(event) => {
                self.process(event);
                if let Some(received) = self.feed.last_received() {
                    self.latencies.record(received.elapsed());
                }
                true
            }
            FeedPoll::Idle => true,
            FeedPoll::Ended => false,
        }
    }

    /// Handles one command; `false` means shut down.
    pub fn handle(&mut self, cmd: Command) -> bool {
        let go_on = self.handle_command(cmd);
        self.commit_journal();
        go_on
    }

    fn handle_command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::List(reply) => drop(reply.send(self.supervisor.views())),
            Command::Status(reply) => drop(reply.send(self.status())),
            Command::Install(started, reply) => {
                let name = started.name.to_string();
                let r = self.supervisor.install(*started).map_err(|e| e.to_string()).map(|()| self.view(&name));
                let _ = reply.send(r);
            }
            Command::Unload(name, reply) => {
                let r = self.supervisor.unload(&name).map(|(view, policy)| {
                    if policy == OrderPolicy::Cancel {
                        self.broker.cancel_all(&name);
                        self.apply_broker_events(self.world.clock.now());
                    }
                    view
                });
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            Command::Swap(name, started, reply) => {
                let r = self.supervisor.swap(&name, *started);
                if let Ok(report) = &r {
                    self.stats.swaps += 1;
                    self.stats.longest_swap_hold = self.stats.longest_swap_hold.max(report.held);
                }
                self.apply_notices();
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            Command::Flatten(reply) => {
                let report = self.flatten();
                let _ = reply.send(report);
            }
            Command::Resume(reply) => {
                self.set_trading_state(None, TradingState::Active, "resumed by the operator");
                let _ = reply.send(self.risk.view());
            }
            Command::Deleverage { fraction, steps, every_secs, reply } => {
                let _ = reply.send(self.start_deleverage(fraction, steps, every_secs));
            }
            Command::Journal { from, limit, reply } => {
                self.commit_journal();
                let page = self.journal.entries().filter(|e| e.as_ref().is_ok_and(|e| e.seq >= from) || e.is_err()).take(limit).collect::<Result<Vec<_>, _>>();
                let _ = reply.send(page.map_err(|e| e.to_string()));
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Starts reducing every position by `fraction` over `steps`; the first
    /// step is taken at once. Trading is reduce-only meanwhile.
    pub fn start_deleverage(&mut self, fraction: f64, steps: u32, every_secs: u64) -> Result<DeleveragePlan, String> {
        if !(fraction > 0.0 && fraction <= 1.0) || steps == 0 {
            return Err(format!("de-leveraging needs a fraction in (0, 1] and at least one step (got {fraction} in {steps})"));
        }
        let now = self.world.clock.now();
        let mut start = Vec::new();
        for plugin in self.supervisor.names().cloned().collect::<Vec<_>>() {
            for p in self.world.ledger().positions(&plugin) {
                start.push((plugin.clone(), p.instrument, p.quantity));
            }
        }
        let reason = format!("de-leveraging {:.0}% in {steps} steps every {every_secs} s (operator)", fraction * 100.0);
        self.risk.set_state(None, TradingState::ReduceOnly, &reason, now);
        self.raise_alerts();
        self.deleverage = Some(DeleveragePlan { fraction, steps, steps_done: 0, every_secs, next_at: now, start });
        self.step_deleverage(now);
        self.commit_journal();
        Ok(self.deleverage.clone().unwrap_or_else(|| DeleveragePlan { fraction, steps, steps_done: steps, every_secs, next_at: now, start: Vec::new() }))
    }

    /// Takes the de-leveraging steps that are due.
    fn step_deleverage(&mut self, now: Timestamp) {
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
                }
            }
            plan.next_at += plan.every_secs as i64 * crate::market::NANOS_PER_SEC;
            tracing::info!(step = plan.steps_done, of = plan.steps, keep = format!("{:.0}%", keep * 100.0), "de-leveraging step");
        }
        if plan.steps_done < plan.steps {
            self.deleverage = Some(plan);
        }
    }

    /// Sets a trading state now (journaled, alerted).
    pub fn set_trading_state(&mut self, plugin: Option<&str>, state: TradingState, reason: &str) {
        self.risk.set_state(plugin, state, reason, self.world.clock.now());
        self.raise_alerts();
        self.commit_journal();
    }

    /// Emergency flatten: halt, cancel every working order, and send an exit
    /// for every open position of every plugin.
    pub fn flatten(&mut self) -> FlattenReport {
        let now = self.world.clock.now();
        self.risk.set_state(None, TradingState::Halted, "emergency flatten by the operator", now);
        let plugins: Vec<Arc<str>> = self.supervisor.names().cloned().collect();
        let mut cancelled = 0;
        let mut closing = Vec::new();
        for plugin in plugins {
            cancelled += self.broker.cancel_all(&plugin);
            self.apply_broker_events(now);
            let positions = self.world.ledger().positions(&plugin);
            for p in positions {
                let intent = Intent::Target(TargetPosition { instrument: p.instrument, quantity: 0.0 });
                if self.route(&plugin, &intent, now, true) {
                    let symbol = self.instruments.get(p.instrument as usize).map_or_else(|| p.instrument.to_string(), |i| i.symbol.clone());
                    closing.push((plugin.to_string(), symbol, -p.quantity));
                }
            }
        }
        self.raise_alerts();
        self.commit_journal();
        tracing::warn!(cancelled, closing = closing.len(), "emergency flatten");
        FlattenReport { cancelled_orders: cancelled, closing_orders: closing, risk: self.risk.view() }
    }

    /// Plans an intent, puts any order through the risk engine, and executes
    /// what passes; `true` when something was placed or cancelled. Orders are
    /// tracked from creation (a client order id) to their final state.
    fn route(&mut self, plugin: &Arc<str>, intent: &Intent, now: Timestamp, exit: bool) -> bool {
        let plan = self.broker.plan(plugin, intent);
        let Plan::Place(o) = &plan else {
            let done = !matches!(self.broker.execute(plugin, plan, now), Submission::Nothing);
            self.apply_broker_events(now);
            return done;
        };
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
        // Positions change with fills, marks with events: rebuild once per event (or fill), not per order.
        let version = (self.stats.events, self.broker.stats().fills);
        if self.positions_cache.get(plugin).is_none_or(|(v, _)| *v != version) {
            let positions: Vec<(u32, f64, f64)> =
                self.world.ledger().positions(plugin).iter().map(|p| (p.instrument, p.quantity, p.average_price + p.unrealised_pnl / p.quantity)).collect();
            self.positions_cache.insert(plugin.clone(), (version, positions));
        }
        let positions = &self.positions_cache[plugin].1;
        let open_orders = self.world.ledger().book(plugin).map_or(0, |b| b.orders.len());
        let check = OrderCheck {
            plugin,
            instrument: o.instrument,
            symbol: self.instruments.get(i).map_or("?", |i| i.symbol.as_str()),
            side: o.side,
            quantity: o.quantity,
            order_type: o.order_type,
            position: self.world.ledger().quantity(plugin, o.instrument),
            last_price,
            market_open: self.feed.trading_hours(o.instrument).map(|h| h.is_open(now)),
            positions,
            open_orders,
            exit,
            now,
        };
        if let Err(reject) = self.risk.check(&check) {
            self.stats.risk_rejected += 1;
            tracing::debug!(plugin = %plugin, rule = ?reject.rule, detail = %reject.detail, "order refused by risk");
            self.journal(now, JournalEvent::Risk { client_id: client_id.clone(), accepted: false, reason: Some(reject.to_string()) });
            let _ = self.orders.apply(&client_id, OrderEvent::RiskRejected, now, Some(&reject.to_string()));
            return false;
        }
        // Journaled before the broker sees it.
        self.journal(now, JournalEvent::Risk { client_id: client_id.clone(), accepted: true, reason: None });
        let _ = self.orders.apply(&client_id, OrderEvent::RiskAccepted, now, None);
        match self.broker.execute(plugin, plan, now) {
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

    /// Fills into the order tracker; a fill of an order the host did not
    /// place through `route` (a protective exit) gets its record first.
    fn track_fills(&mut self, fills: &[(Arc<str>, crate::runtime::bindings::Fill)], now: Timestamp) {
        // Financing was charged before these fills (at the day's first bar or quote).
        self.journal_broker_facts(now);
        for (owner, fill) in fills {
            let client_id = match self.orders.client_id_of(fill.order_id) {
                Some(id) => id.to_owned(),
                None => {
                    let id = self.orders.next_client_id(owner);
                    self.orders.adopt(id.clone(), owner, fill.instrument, fill.side, fill.quantity, fill.order_id, now);
                    id
                }
            };
            self.journal(
                now,
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
            let _ = self.orders.fill(&client_id, fill.quantity, fill.price, now);
        }
    }

    /// Cancels and expiries from the broker into the order tracker.
    fn apply_broker_events(&mut self, now: Timestamp) {
        self.journal_broker_facts(now);
        for (id, event) in self.broker.take_events() {
            if let Some(client_id) = self.orders.client_id_of(id).map(str::to_owned) {
                match event {
                    OrderEvent::Cancelled => self.journal(now, JournalEvent::Cancelled { client_id: client_id.clone() }),
                    OrderEvent::Expired => self.journal(now, JournalEvent::Expired { client_id: client_id.clone() }),
                    _ => {}
                }
                let _ = self.orders.apply(&client_id, event, now, None);
            }
        }
    }

    /// Hands the risk engine's new alerts to the sink (log and webhooks, never
    /// blocking), journaling the trading states they set.
    fn raise_alerts(&mut self) {
        for alert in self.risk.take_alerts() {
            if let Some(state) = alert.state {
                let plugin = (alert.scope != "global").then(|| alert.scope.clone());
                self.journal(alert.time, JournalEvent::TradingState { plugin, state, reason: alert.message.clone() });
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
            self.risk.set_state(None, TradingState::Halted, &format!("the execution journal cannot be written: {e}"), time);
        }
    }

    /// Feeds the risk engine the P&L after an event.
    fn update_risk(&mut self, now: Timestamp) {
        // Once per event: names and the ledger's totals, not the full plugin views.
        let per_plugin: Vec<(Arc<str>, f64)> = {
            let ledger = self.world.ledger();
            self.supervisor
                .names()
                .map(|name| {
                    let book = ledger.summary(name);
                    (name.clone(), book.realised_pnl + book.unrealised_pnl)
                })
                .collect()
        };
        let total = per_plugin.iter().map(|(_, p)| p).sum();
        self.risk.on_pnl(total, &per_plugin, now);
        self.risk.tick(now);
        self.raise_alerts();
        self.sample_equity(now);
    }

    /// A point of the equity curve into the journal, every `equity_every_secs` of market time.
    fn sample_equity(&mut self, now: Timestamp) {
        let every = self.config.journal.equity_every_secs as i64 * crate::market::NANOS_PER_SEC;
        if every <= 0 || now < self.next_equity_at {
            return;
        }
        self.next_equity_at = (now.div_euclid(every) + 1) * every;
        let (realised, unrealised, gross_exposure) = {
            let ledger = self.world.ledger();
            ledger.plugins().map(|p| ledger.summary(p)).fold((0.0, 0.0, 0.0), |(r, u, g), s| (r + s.realised_pnl, u + s.unrealised_pnl, g + s.gross_exposure))
        };
        let equity = self.config.risk.capital + realised + unrealised;
        self.journal(now, JournalEvent::Equity { equity, realised, unrealised, gross_exposure });
    }

    fn view(&self, name: &str) -> PluginView {
        self.supervisor.views().into_iter().find(|v| v.name == name).expect("just installed")
    }

    /// Processes one market event end to end.
    pub fn process(&mut self, event: MarketEvent) {
        let now = event.time();
        self.world.clock.set(now);
        self.stats.events += 1;
        match event {
            MarketEvent::Bars(bars) => {
                self.stats.bars += bars.len() as u64;
                for b in &bars {
                    self.note_price(b.instrument, b.close, now);
                }
                {
                    let mut history = self.world.history_mut();
                    bars.iter().for_each(|b| history.record(b));
                }
                let fills: Vec<_> = bars.iter().flat_map(|b| self.broker.on_bar(b)).collect();
                self.track_fills(&fills, now);
                self.apply_broker_events(now);
                let mut intents = self.supervisor.on_fills(&fills);
                let decisions = self.supervisor.on_position_bars(&bars);
                self.apply_stop_decisions(decisions, now);
                // One columnar copy of the cross-section, shared by every plugin.
                let batch = BarBatch::from_bars(&bars);
                for (detector, alarm) in self.supervisor.observe_bars(&batch) {
                    self.raise(&detector, &alarm);
                }
                intents.extend(self.supervisor.on_bars(&bars, &batch));
                self.submit(intents, now);
            }
            MarketEvent::Quote(quote) => {
                self.note_price(quote.instrument, 0.5 * (quote.bid + quote.ask), now);
                let fills = self.broker.on_quote(&quote);
                let mut intents = Vec::new();
                if !fills.is_empty() {
                    self.track_fills(&fills, now);
                    intents = self.supervisor.on_fills(&fills);
                }
                self.apply_broker_events(now);
                let (more, alarms) = self.supervisor.on_quote(quote);
                intents.extend(more);
                for (detector, alarm) in alarms {
                    self.raise(&detector, &alarm);
                }
                self.submit(intents, now);
            }
        }
        let timed = self.supervisor.on_timers(now);
        self.submit(timed, now);
        self.apply_notices();
        self.step_deleverage(now);
        self.update_risk(now);
        self.commit_journal();
    }

    /// Writes the event's journal entries as one batch (fail closed if it cannot).
    fn commit_journal(&mut self) {
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
                self.risk.set_state(None, TradingState::Halted, &format!("the execution journal cannot be written: {e}"), self.world.clock.now());
                self.broker.discard_queued(&e.to_string());
            }
        }
    }

    fn note_price(&mut self, instrument: InstrumentId, price: f64, now: Timestamp) {
        if let Some(slot) = self.last_prices.get_mut(instrument as usize) {
            *slot = Some(price);
            let symbol = &self.instruments[instrument as usize].symbol;
            self.risk.on_price(symbol, price, now);
        }
    }

    fn raise(&mut self, detector: &str, alarm: &Alarm) {
        self.stats.alarms += 1;
        self.risk.on_alarm(detector, alarm.level, &alarm.reason, self.world.clock.now());
        let symbol = alarm.instrument.and_then(|i| self.instruments.get(i as usize)).map_or("market", |i| i.symbol.as_str());
        tracing::warn!(detector, level = ?alarm.level, instrument = symbol, reason = %alarm.reason, "anomaly alarm");
    }

    fn apply_stop_decisions(&mut self, decisions: Vec<(Arc<str>, Arc<str>, StopDecision)>, now: Timestamp) {
        for (policy, holder, decision) in decisions {
            self.stats.stop_decisions += 1;
            if let Err(why) = validation::validate_stop(&decision, &self.instruments, &self.bounds) {
                self.stats.invalid_intents += 1;
                self.supervisor.quarantine(&policy, Fault::InvalidIntent(why));
                continue;
            }
            match decision {
                StopDecision::SetLevels(levels) => self.broker.protect(&holder, levels),
                StopDecision::Exit(instrument) => {
                    tracing::debug!(policy = %policy, plugin = %holder, instrument, "stop policy exit");
                    self.route(&holder, &Intent::Target(TargetPosition { instrument, quantity: 0.0 }), now, true);
                }
            }
        }
    }

    /// Validates each plugin's intents as a batch: one malformed intent
    /// quarantines the plugin and none of that batch reaches the broker.
    fn submit(&mut self, batches: Vec<(Arc<str>, Vec<Intent>)>, now: Timestamp) {
        for (plugin, intents) in batches {
            self.stats.intents += intents.len() as u64;
            let bad = intents.iter().enumerate().find_map(|(k, i)| {
                validation::validate(i, &self.instruments, &self.bounds).err().map(|why| format!("intent #{k} of {}: {why}", intents.len()))
            });
            if let Some(why) = bad {
                self.stats.invalid_intents += 1;
                self.supervisor.quarantine(&plugin, Fault::InvalidIntent(why));
                continue;
            }
            for intent in &intents {
                self.route(&plugin, intent, now, false);
            }
            if let Some(log) = &mut self.intent_log {
                log.extend(intents.into_iter().map(|i| (now, plugin.clone(), i)));
            }
        }
    }

    fn apply_notices(&mut self) {
        for (plugin, policy) in self.supervisor.take_notices() {
            if policy == OrderPolicy::Cancel {
                let n = self.broker.cancel_all(&plugin);
                self.apply_broker_events(self.world.clock.now());
                if n > 0 {
                    tracing::info!(plugin = %plugin, cancelled = n, "cancelled the working orders of a quarantined plugin");
                }
            }
        }
    }

    pub fn status(&self) -> StatusView {
        StatusView {
            market_time: self.world.clock.now(),
            uptime: self.started.elapsed(),
            stats: self.stats.clone(),
            broker: self.broker.stats(),
            orders: self.orders.stats().clone(),
            risk: self.risk.view(),
            plugins_running: self.supervisor.running(),
            feed_latency: self.latencies.summary(),
        }
    }

    pub fn summary(&self) -> RunSummary {
        RunSummary { status: self.status(), plugins: self.supervisor.views() }
    }

    fn print_status(&self) {
        let s = self.status();
        let pnl: f64 = self.supervisor.views().iter().map(|v| v.book.realised_pnl + v.book.unrealised_pnl).sum();
        tracing::info!(
            market_time = %format_time(s.market_time),
            events = s.stats.events,
            intents = s.stats.intents,
            orders = s.broker.orders,
            fills = s.broker.fills,
            alarms = s.stats.alarms,
            plugins_running = s.plugins_running,
            pnl = format!("{pnl:.2}"),
            feed_p99_us = s.feed_latency.map(|l| format!("{:.0}", l.p99_us)),
            "status"
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // What was journaled is on disk when the host goes away.
        if let Err(e) = self.journal.flush() {
            tracing::error!(error = %e, "the execution journal could not be flushed");
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a market timestamp.
pub fn format_time(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_nanos(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_market_time() {
        assert_eq!(super::format_time(1_704_103_200 * 1_000_000_000), "2024-01-01 10:00:00");
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
    }
}
