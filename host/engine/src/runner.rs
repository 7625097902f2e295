//! The host's event loop: feed -> world -> order path (fills) -> plugins by
//! role -> order path (intents, decisions) -> risk update, one event at a
//! time, with control commands handled between events (which is what makes a
//! hot swap lose nothing).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use stratbox_contract::{BarBatch, Intent, RunMode};
use stratbox_market::{Feed, FeedPoll, MarketEvent, Timestamp};
use stratbox_sandbox::{Fault, ModelProvider, PluginFactory, Sandbox, SandboxSettings, Started, Supervisor, SwapReport};
use stratbox_trading::{
    ADOPTED, AccountCheck, AdoptReport, Broker, BrokerStats, DeleveragePlan, Entry, FlattenReport, Journal, JournalError, OrderPath, OrderPathConfig, PaperBroker, PathStats, RiskView, SharedWorld, TrackerStats,
    TradingState, Violation,
};

use crate::board::{BoardQuery, BoardTick, PositionRow, ProtectionRow};
use crate::config::{HostConfig, Mode, OrderPolicy};
use crate::view::{PluginView, PluginWorld};

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
    /// Takes what the broker's account holds and the journal does not into the book `into`.
    Adopt { into: String, reply: oneshot::Sender<Result<AdoptReport, String>> },
    /// Up to `limit` journal entries from sequence number `from` (reports of a running host:
    /// sled lets one process open the journal).
    Journal { from: u64, limit: usize, reply: oneshot::Sender<Result<Vec<Entry>, String>> },
    /// What a dashboard shows, in one round trip.
    Board(Box<BoardQuery>, oneshot::Sender<Result<Box<BoardTick>, String>>),
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the plugin store in {path}: {source}")]
    Store { path: PathBuf, source: sled::Error },
    #[error("cannot start the sandbox: {0}")]
    Sandbox(#[from] stratbox_sandbox::LoadError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot start the broker: {0}")]
    Broker(String),
}

/// Counters of one run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunStats {
    pub events: u64,
    pub bars: u64,
    /// Intents, violations, risk refusals, stop decisions and alarms (the order path's).
    #[serde(flatten)]
    pub path: PathStats,
    pub swaps: u64,
    #[serde(with = "stratbox_contract::util::duration_ms")]
    pub longest_swap_hold: Duration,
    /// Plugins and models from the config that were refused at start, with the reason.
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub market_time: Timestamp,
    #[serde(with = "stratbox_contract::util::duration_ms")]
    pub uptime: Duration,
    pub stats: RunStats,
    pub broker: BrokerStats,
    pub orders: TrackerStats,
    pub risk: RiskView,
    pub plugins_running: usize,
    /// Live feeds: from the frame read off the network to the event fully
    /// dispatched (every plugin callback returned), over the last events.
    pub feed_latency: Option<LatencySummary>,
    /// Trading a broker's account: its balance and how the host's equity
    /// agrees with it (absent with the paper broker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountCheck>,
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
    pub supervisor: Supervisor,
    /// Every order's one way to the broker, and everything that comes back.
    pub order_path: OrderPath,
    world: Arc<SharedWorld>,
    commands: Receiver<Command>,
    /// Counters of the loop; `path` is filled in from the order path by [`Host::status`].
    stats: RunStats,
    started: Instant,
    latencies: Latencies,
    /// The feed's bar period, from the newest cross-section.
    bar_secs: Option<u32>,
    /// Wall clock (ms since the epoch) when the newest event was done.
    event_done_ms: Option<i64>,
    /// When the first event since the dashboard's last look was done.
    first_unseen_ms: Option<i64>,
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
        Self::with_parts(config, feed, make_broker, None, commands)
    }

    /// As [`Host::with_broker`], serving plugins `models` instead of the
    /// config's `[[model]]`s (`None`: the config's).
    pub fn with_parts(
        config: HostConfig,
        feed: Box<dyn Feed>,
        make_broker: impl FnOnce(Arc<SharedWorld>) -> Result<Box<dyn Broker>, HostError>,
        models: Option<Arc<dyn ModelProvider>>,
        commands: Receiver<Command>,
    ) -> Result<Self, HostError> {
        let dir = &config.data_dir;
        stratbox_contract::util::create_private_dir(dir).map_err(|source| HostError::DataDir { path: dir.clone(), source })?;
        let in_memory = config.journal.in_memory;
        let kv_path = dir.join("plugin-store");
        let kv = if in_memory { sled::Config::new().temporary(true) } else { sled::Config::new().path(&kv_path) }
            .cache_capacity(config.sandbox.store_cache_bytes)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| HostError::Store { path: kv_path, source })?;
        let sandbox = Sandbox::new(SandboxSettings {
            defaults: config.sandbox.defaults,
            maxima: config.sandbox.maxima,
            max_component_bytes: config.sandbox.max_component_bytes,
            cache_dir: Some(config.sandbox.cache_dir.clone().unwrap_or_else(|| dir.join("compiled"))),
            pool: stratbox_sandbox::PoolSize { component_instances: config.sandbox.max_instances },
            metering: config.sandbox.metering.unwrap_or(config.mode.default_metering()),
            ..SandboxSettings::default()
        })?;
        let world = Arc::new(SharedWorld::new(config.history_depth));
        let instruments = feed.instruments().to_vec();
        let mode = match config.mode {
            Mode::Backtest => RunMode::Backtest,
            Mode::Paper => RunMode::Paper,
            Mode::Live => RunMode::Live,
        };
        let plugin_world = Arc::new(PluginWorld(world.clone()));
        let mut stats = RunStats::default();
        let models: Arc<dyn ModelProvider> = match models {
            Some(given) => given,
            None => {
                let loaded = crate::models::load(&config.models);
                stats.refused.extend(loaded.refused.iter().cloned());
                loaded
            }
        };
        let factory = Arc::new(PluginFactory::new(Arc::new(sandbox), plugin_world, Some(kv), mode, instruments.clone()).with_models(models));
        let mut supervisor = Supervisor::new(factory.clone());
        for spec in &config.plugins {
            match factory.load(spec.clone()).and_then(|s| supervisor.install(s)) {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, "plugin refused");
                    stats.refused.push(e.to_string());
                }
            }
        }
        let broker = make_broker(world.clone())?;
        let journal_path = dir.join("journal");
        let journal = if in_memory {
            Journal::in_memory()
        } else {
            if !config.resumes_journal() && journal_path.exists() {
                // A fresh market: keep the last run's journal aside, start a new one.
                let previous = dir.join("journal.previous");
                let _ = std::fs::remove_dir_all(&previous);
                std::fs::rename(&journal_path, &previous).map_err(|source| HostError::DataDir { path: journal_path.clone(), source })?;
            }
            Journal::open_with_cache(&journal_path, config.journal.flush_every_ms, config.journal.cache_bytes)?
        };
        let hours = (0..instruments.len()).map(|i| feed.trading_hours(i as u32).cloned()).collect();
        let path_config = OrderPathConfig {
            risk: config.risk.clone(),
            alerts: config.alerts.clone(),
            equity_every_secs: config.journal.equity_every_secs,
            equity_tolerance: config.capital_broker.as_ref().map(|c| c.equity_tolerance).unwrap_or_default(),
        };
        let (order_path, rebuilt) = OrderPath::open(broker, journal, world.clone(), instruments, hours, path_config)?;
        let mut host =
            Self {
            config, feed, supervisor, order_path, world, commands, stats, started: Instant::now(), latencies: Latencies::default(), bar_secs: None, event_done_ms: None, first_unseen_ms: None,
        };
        // At every start, a first one too: a remote broker's account is compared
        // with the journal before anything trades (an account that already
        // holds positions or orders the host does not know halts trading).
        // After a restart, what the broker did meanwhile is journaled (and its
        // fills reach the plugins) before the positions are compared.
        let rebuilt = rebuilt.unwrap_or_default();
        let outcome = host.order_path.begin_reconcile(&rebuilt);
        host.drain_broker();
        host.order_path.finish_reconcile(rebuilt, outcome);
        Ok(host)
    }

    /// What the broker did since the last call, journaled; its fills to the
    /// plugins that own them, and their answers back into the order path.
    fn drain_broker(&mut self) {
        let Some(fills) = self.order_path.poll_broker() else { return };
        if !fills.is_empty() {
            let intents = self.supervisor.on_fills(&fills);
            self.submit(intents, self.world.clock.now());
        }
        self.order_path.settle();
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
        if let Err(e) = self.order_path.flush() {
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

    /// Stops taking commands, for a host whose last run has ended: what is
    /// still queued is answered "shutting down" (its reply channel closes),
    /// and so is every later request, at once. Without this a load that
    /// finishes compiling after the run would wait for a loop that is gone.
    pub fn close_commands(&mut self) {
        let (_, closed) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.commands, closed));
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
        self.order_path.commit();
        go_on
    }

    fn handle_command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::List(reply) => drop(reply.send(self.views())),
            Command::Status(reply) => drop(reply.send(self.status())),
            Command::Install(started, reply) => {
                let name = started.name.to_string();
                let r = self.supervisor.install(*started).map_err(|e| e.to_string()).map(|()| self.view(&name));
                let _ = reply.send(r);
            }
            Command::Unload(name, reply) => {
                let r = self.supervisor.unload(&name).map(|(status, policy)| {
                    if policy == OrderPolicy::Cancel {
                        self.order_path.cancel_all(&name);
                    }
                    PluginView::new(status, &self.world)
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
                let _ = reply.send(self.order_path.risk_view());
            }
            Command::Deleverage { fraction, steps, every_secs, reply } => {
                let _ = reply.send(self.start_deleverage(fraction, steps, every_secs));
            }
            Command::Adopt { into, reply } => {
                let _ = reply.send(self.adopt(&into));
            }
            Command::Journal { from, limit, reply } => {
                let _ = reply.send(self.order_path.journal_page(from, limit).map_err(|e| e.to_string()));
            }
            Command::Board(query, reply) => {
                let _ = reply.send(self.board(&query).map(Box::new));
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Starts reducing every position by `fraction` over `steps`; the first
    /// step is taken at once. Trading is reduce-only meanwhile.
    pub fn start_deleverage(&mut self, fraction: f64, steps: u32, every_secs: u64) -> Result<DeleveragePlan, String> {
        self.order_path.start_deleverage(self.supervisor.names(), fraction, steps, every_secs)
    }

    /// Sets a trading state now (journaled, alerted).
    pub fn set_trading_state(&mut self, plugin: Option<&str>, state: TradingState, reason: &str) {
        self.order_path.set_trading_state(plugin, state, reason);
    }

    /// Adopts what the broker's account holds and the journal does not (after
    /// a failed reconciliation): its fills first reach their plugins, then the
    /// rest becomes positions of the book `into`, and the halt ends.
    pub fn adopt(&mut self, into: &str) -> Result<AdoptReport, String> {
        if self.supervisor.names().any(|n| &**n == into) {
            return Err(format!("`{into}` is a loaded plugin: adopt into a book of its own (the default is `{ADOPTED}`)"));
        }
        let outcome = self.order_path.begin_adopt();
        self.drain_broker();
        self.order_path.finish_adopt(into, outcome)
    }

    /// Emergency flatten: halt, cancel every working order, and send an exit
    /// for every open position of every plugin.
    pub fn flatten(&mut self) -> FlattenReport {
        self.order_path.flatten(self.supervisor.names())
    }

    fn view(&self, name: &str) -> PluginView {
        self.views().into_iter().find(|v| v.name == name).expect("just installed")
    }

    /// Every plugin with its book, as `stratbox plugin list` shows it.
    pub fn views(&self) -> Vec<PluginView> {
        self.supervisor.views().into_iter().map(|s| PluginView::new(s, &self.world)).collect()
    }

    /// Processes one market event end to end: the feed's event into the
    /// world and the order path, fills and bars to the plugins by role, their
    /// intents and decisions back into the order path, then the risk update.
    pub fn process(&mut self, event: MarketEvent) {
        let now = event.time();
        self.world.clock.set(now);
        self.stats.events += 1;
        match event {
            MarketEvent::Bars(bars) => {
                self.stats.bars += bars.len() as u64;
                self.bar_secs = bars.first().map(|b| b.period_secs).or(self.bar_secs);
                {
                    let mut history = self.world.history_mut();
                    bars.iter().for_each(|b| history.record(b));
                }
                let fills = self.order_path.on_bars(&bars, now);
                let mut intents = self.supervisor.on_fills(&fills);
                let decisions = self.supervisor.on_position_bars(&bars);
                let violations = self.order_path.apply_stop_decisions(decisions, now);
                self.quarantine(violations);
                // One columnar copy of the cross-section, shared by every plugin.
                let batch = BarBatch::from_bars(&bars);
                for (detector, alarm) in self.supervisor.observe_bars(&batch) {
                    self.order_path.on_alarm(&detector, &alarm);
                }
                intents.extend(self.supervisor.on_bars(&bars, &batch));
                self.submit(intents, now);
            }
            MarketEvent::Quote(quote) => {
                let fills = self.order_path.on_quote(&quote, now);
                let mut intents = if fills.is_empty() { Vec::new() } else { self.supervisor.on_fills(&fills) };
                let (more, alarms) = self.supervisor.on_quote(quote);
                intents.extend(more);
                for (detector, alarm) in alarms {
                    self.order_path.on_alarm(&detector, &alarm);
                }
                self.submit(intents, now);
            }
        }
        let timed = self.supervisor.on_timers(now);
        self.submit(timed, now);
        self.apply_notices();
        self.order_path.end_event(self.supervisor.names(), now);
        let done = wall_ms();
        self.event_done_ms = Some(done);
        self.first_unseen_ms.get_or_insert(done);
    }

    /// What a dashboard shows (see [`crate::board`]).
    pub fn board(&mut self, query: &BoardQuery) -> Result<BoardTick, String> {
        let journal = self.order_path.journal_page(query.journal_from, query.journal_limit).map_err(|e| e.to_string())?;
        let symbols: Vec<String> = self.feed.instruments().iter().map(|i| i.symbol.clone()).collect();
        let (positions, closes, bars) = {
            let ledger = self.world.ledger();
            let mut positions = Vec::new();
            for plugin in ledger.plugins() {
                let Some(book) = ledger.book(plugin) else { continue };
                for (&instrument, (p, mark)) in &book.positions {
                    if p.quantity != 0.0 {
                        positions.push(PositionRow {
                            plugin: plugin.to_string(),
                            instrument,
                            quantity: p.quantity,
                            average_price: p.average_price,
                            mark: *mark,
                            realised_pnl: p.realised_pnl,
                            unrealised_pnl: p.unrealised(*mark),
                        });
                    }
                }
            }
            positions.sort_by(|a, b| (&a.plugin, a.instrument).cmp(&(&b.plugin, b.instrument)));
            let history = self.world.history();
            let (closes, bars) = match self.bar_secs {
                Some(period) => (
                    (0..symbols.len() as u32).map(|i| history.last(i, period, 1).first().map(|b| b.close)).collect(),
                    query
                        .bars
                        .iter()
                        .map(|q| {
                            let mut v = history.last(q.instrument, period, q.count);
                            v.retain(|b| b.start > q.after);
                            (q.instrument, v)
                        })
                        .collect(),
                ),
                None => (vec![None; symbols.len()], Vec::new()),
            };
            (positions, closes, bars)
        };
        let protections = self
            .order_path
            .protections()
            .into_iter()
            .map(|(owner, l)| ProtectionRow { plugin: owner.to_string(), instrument: l.instrument, stop_loss: l.stop_loss, take_profit: l.take_profit })
            .collect();
        Ok(BoardTick {
            status: self.status(),
            plugins: self.views(),
            symbols,
            positions,
            protections,
            journal,
            bars,
            closes,
            bar_secs: self.bar_secs,
            event_done_ms: self.event_done_ms,
            first_unseen_ms: if query.mark_seen { self.first_unseen_ms.take() } else { None },
            deleverage: self.order_path.deleverage_plan().cloned(),
        })
    }

    /// Plugins' intents into the order path; a plugin whose batch broke the
    /// contract is quarantined.
    fn submit(&mut self, batches: Vec<(Arc<str>, Vec<Intent>)>, now: Timestamp) {
        let violations = self.order_path.submit(batches, now);
        self.quarantine(violations);
    }

    fn quarantine(&mut self, violations: Vec<Violation>) {
        for (plugin, why) in violations {
            self.supervisor.quarantine(&plugin, Fault::InvalidIntent(why));
        }
    }

    fn apply_notices(&mut self) {
        for (plugin, policy) in self.supervisor.take_notices() {
            if policy == OrderPolicy::Cancel {
                let n = self.order_path.cancel_all(&plugin);
                if n > 0 {
                    tracing::info!(plugin = %plugin, cancelled = n, "cancelled the working orders of a quarantined plugin");
                }
            }
        }
    }

    pub fn status(&self) -> StatusView {
        let stats = RunStats { path: self.order_path.stats(), ..self.stats.clone() };
        StatusView {
            market_time: self.world.clock.now(),
            uptime: self.started.elapsed(),
            stats,
            broker: self.order_path.broker_stats(),
            orders: self.order_path.tracker_stats().clone(),
            risk: self.order_path.risk_view(),
            plugins_running: self.supervisor.running(),
            feed_latency: self.latencies.summary(),
            account: self.order_path.account_check(),
        }
    }

    pub fn summary(&self) -> RunSummary {
        RunSummary { status: self.status(), plugins: self.views() }
    }

    fn print_status(&self) {
        let s = self.status();
        let pnl: f64 = self.views().iter().map(|v| v.book.realised_pnl + v.book.unrealised_pnl).sum();
        tracing::info!(
            market_time = %format_time(s.market_time),
            events = s.stats.events,
            intents = s.stats.path.intents,
            orders = s.broker.orders,
            fills = s.broker.fills,
            alarms = s.stats.path.alarms,
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
        if let Err(e) = self.order_path.flush() {
            tracing::error!(error = %e, "the execution journal could not be flushed");
        }
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a market timestamp.
pub use stratbox_market::format_time;

#[cfg(test)]
mod tests {
    #[test]
    fn formats_market_time() {
        assert_eq!(super::format_time(1_704_103_200 * 1_000_000_000), "2024-01-01 10:00:00");
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
    }
}
