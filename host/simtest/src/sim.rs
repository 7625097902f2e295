//! One deterministic run: the real order path, risk engine, sled journal and
//! paper broker, driven by a list of operations on a virtual clock, with the
//! invariants checked after every step.
//!
//! A crash drops the host where it stands and keeps exactly what the journal
//! had flushed: the simulation copies the journal's sled directory at every
//! flush (background flushing is off), and a restart opens that copy. The
//! paper broker lives in the host's process, so a crash rewinds it too; the
//! restart rebuilds it from the journal as the real host does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sha2::{Digest, Sha256};
use stratbox_contract::{
    Alarm, AlarmLevel, Bar, Fill, Instrument, InstrumentId, Intent, OrderIntent, OrderType, OrderView, Quote, Side, StopDecision, StopLevels, TargetPosition, TimeInForce,
    Timestamp,
};
use stratbox_trading::{
    AlertConfig, Baselines, Broker, BrokerStats, Cause, CircuitBreakerConfig, Journal, OrderPath, OrderPathConfig, PaperBroker, PaperConfig, Plan, Restored, RiskConfig,
    Submission, TradingState, AlarmLevelName,
};

use crate::capital::{CapitalWorld, Gate};
use crate::check::{Invariant, JournalModel, Violation};
use crate::op::{INSTRUMENTS, IntentOp, Kind, Op, PLUGINS, Tif};

const SEC: i64 = 1_000_000_000;
/// Market time of the first event: 2024-01-02 00:00 UTC.
const START: Timestamp = 1_704_153_600 * SEC;
/// Steps a flatten may take to end flat (bars arrive on a random instrument, volume caps apply).
pub const FLATTEN_BOUND: usize = 600;

/// The risk limits of the simulated host: small enough that intents reach them.
pub fn risk_config() -> RiskConfig {
    RiskConfig {
        capital: 100_000.0,
        require_open_market: false,
        max_order_quantity: 100.0,
        max_order_notional: 15_000.0,
        price_band: 0.10,
        max_position_notional: 30_000.0,
        max_gross_exposure: 60_000.0,
        max_net_exposure: 50_000.0,
        max_concentration: 0.5,
        max_open_orders: 12,
        orders_per_sec_per_plugin: 1_000,
        orders_per_sec: 1_000,
        duplicate_window_ms: 0,
        daily_loss_limit: Some(2_500.0),
        plugin_daily_loss_limit: Some(1_500.0),
        max_drawdown: 0.04,
        circuit_breaker: CircuitBreakerConfig { alarm_level: Some(AlarmLevelName::Critical), reference: None, drop: 0.07, halt_secs: 900 },
        ..RiskConfig::default()
    }
}

fn paper_config(latency_ms: u64) -> PaperConfig {
    PaperConfig { spread_bps: 2.0, commission_bps: 0.5, slippage_bps: 0.5, latency_ms, financing_bps_per_day: 1.0, max_volume_fraction: 0.1 }
}

/// The paper broker's latency a seed runs with: none, or orders live only
/// after one or two bars (an exit then waits while levels may fire).
pub fn latency_for(seed: u64) -> u64 {
    [0, 0, 30_000, 90_000][(seed % 4) as usize]
}

fn instruments() -> Vec<Instrument> {
    (0..INSTRUMENTS).map(|i| Instrument { id: i, symbol: format!("SIM{i}"), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() }).collect()
}

fn plugin_name(p: u8) -> Arc<str> {
    Arc::from(format!("p{p}").as_str())
}

/// The faults this simulation injects, by the names the stats count them under.
pub const FAULT_KINDS: [&str; 4] = ["crash", "downtime-days", "gap", "volume-cap"];
/// Those of the Capital.com world (the paper broker's volume cap has no counterpart there).
pub const CAPITAL_FAULT_KINDS: [&str; 12] = [
    "crash",
    "downtime-days",
    "gap",
    "crash-before-request",
    "crash-after-request",
    "deal-then-error",
    "refused",
    "confirm-missing",
    "cancel-missing",
    "rate-limited",
    "session-expired",
    "activity-late",
];

/// The epics of the mock account, by instrument id.
fn epics() -> Vec<String> {
    stratbox_capital_mock::default_epics(INSTRUMENTS as usize)
}

/// Which broker a run trades with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerKind {
    #[default]
    Paper,
    /// Capital.com (the mock, in process), a netting account.
    Netting,
    /// Capital.com, a hedging account.
    Hedging,
}

impl BrokerKind {
    pub fn capital(self) -> bool {
        self != BrokerKind::Paper
    }
}

/// What a run did, summed over runs by the binary.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub steps: u64,
    pub crashes: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Invariant checks made, by invariant.
    pub checks: BTreeMap<&'static str, u64>,
    /// Journal entries read back and checked (a restart re-reads the journal).
    pub entries: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.crashes += o.crashes;
        for (k, v) in &o.faults {
            *self.faults.entry(k).or_default() += v;
        }
        for (k, v) in &o.checks {
            *self.checks.entry(k).or_default() += v;
        }
        self.entries += o.entries;
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    fn check(&mut self, i: Invariant) {
        *self.checks.entry(i.name()).or_default() += 1;
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// SHA-256 over every operation and every journal entry, in order.
    pub trace: String,
    pub stats: Stats,
    pub violation: Option<Violation>,
}

/// The paper broker, shared so that the checker reads its own book (the
/// order path owns a handle like any broker).
#[derive(Clone)]
struct SharedPaper(Arc<Mutex<PaperBroker>>);

impl SharedPaper {
    fn lock(&self) -> std::sync::MutexGuard<'_, PaperBroker> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Broker for SharedPaper {
    fn plan(&self, owner: &Arc<str>, intent: &Intent) -> Plan {
        self.lock().plan(owner, intent)
    }
    fn execute(&mut self, owner: &Arc<str>, plan: Plan, now: Timestamp) -> Submission {
        self.lock().execute(owner, plan, now)
    }
    fn on_quote(&mut self, quote: &Quote) -> Vec<(Arc<str>, Fill)> {
        self.lock().on_quote(quote)
    }
    fn on_bar(&mut self, bar: &Bar) -> Vec<(Arc<str>, Fill)> {
        self.lock().on_bar(bar)
    }
    fn cancel_all(&mut self, owner: &str) -> usize {
        self.lock().cancel_all(owner)
    }
    fn protect(&mut self, owner: &Arc<str>, levels: StopLevels) {
        self.lock().protect(owner, levels)
    }
    fn protections(&self) -> Vec<(Arc<str>, StopLevels)> {
        self.lock().protections()
    }
    fn take_events(&mut self) -> Vec<(u64, stratbox_trading::OrderEvent)> {
        self.lock().take_events()
    }
    fn take_financing(&mut self) -> Vec<(Arc<str>, InstrumentId, f64)> {
        self.lock().take_financing()
    }
    fn take_arrivals(&mut self) -> Vec<(u64, f64)> {
        Broker::take_arrivals(&mut *self.lock())
    }
    fn restore(&mut self, order: &Restored) {
        self.lock().restore(order)
    }
    fn reserve_ids_below(&mut self, id: u64) {
        self.lock().reserve_ids_below(id)
    }
    fn stats(&self) -> BrokerStats {
        self.lock().stats
    }
}

struct Host {
    path: OrderPath,
    world: Arc<stratbox_trading::SharedWorld>,
    /// The paper broker (the Capital.com broker's book is the mock's).
    broker: Option<SharedPaper>,
    /// Capital.com: the crash point in the host's transport.
    gate: Option<Arc<Gate>>,
}

/// A working order at the broker: (book, id, instrument, signed quantity left).
type Working = (String, u64, u32, f64);

impl Host {
    /// Every book's open positions, as the broker booked them.
    fn positions(&self) -> ByBook<f64> {
        let ledger = self.world.ledger();
        ledger.plugins().flat_map(|p| ledger.positions(p).into_iter().map(move |pos| ((p.to_string(), pos.instrument), pos.quantity))).collect()
    }

    /// The broker's own working orders, in id order.
    fn working(&self) -> Vec<Working> {
        let signed = |v: &OrderView| (v.quantity - v.filled_quantity) * if v.side == Side::Buy { 1.0 } else { -1.0 };
        let Some(broker) = &self.broker else { return Vec::new() };
        broker.lock().working().into_iter().map(|(o, v)| (o.to_string(), v.id, v.instrument, signed(&v))).collect()
    }
}

fn round2(p: f64) -> f64 {
    (p * 100.0).round() / 100.0
}

/// The journal's directory, and the copy of it as of the last flush (what a crash keeps).
struct Disk {
    live: PathBuf,
    durable: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// What was durable at the last flush: the causes in force and the baselines.
#[derive(Debug, Clone, Default)]
struct Durable {
    causes: Vec<(String, Cause, TradingState, Option<Timestamp>)>,
    baselines: Option<Baselines>,
    /// The de-leveraging in progress: (steps done, steps, next step at).
    deleverage: Option<(u32, u32, Timestamp)>,
}

struct Sim {
    disk: Disk,
    host: Option<Host>,
    now: Timestamp,
    loaded: BTreeSet<u8>,
    last_price: Vec<Option<f64>>,
    model: JournalModel,
    durable: Durable,
    flushes_seen: u64,
    /// The step of the flatten in force, if one is.
    flatten_since: Option<usize>,
    hasher: Sha256,
    stats: Stats,
    max_order_quantity: f64,
    /// `SIMTEST_JOURNAL=1`: every journal entry to stderr as it is checked.
    show_journal: bool,
    /// The paper broker's latency.
    latency_ms: u64,
    /// The order-notional cap the checker holds accepted orders to.
    order_notional_cap: f64,
    /// Capital.com: the runtime and the mock account (which outlive a crash).
    capital: Option<CapitalWorld>,
    /// The downtime of a crash armed at a broker request.
    armed_downtime: u64,
    /// What the restart after it restored, checked against what was durable (invariant 5).
    restart_check: Option<Check>,
}

type Check = Result<(), (Invariant, String)>;
/// Per (book, instrument).
type ByBook<T> = BTreeMap<(String, u32), T>;
/// Protective levels: (stop-loss, take-profit).
type Levels = (Option<f64>, Option<f64>);

impl Sim {
    fn new(dir: &Path, options: Options) -> Self {
        let disk = Disk { live: dir.join("journal"), durable: dir.join("durable") };
        let risk = risk_config();
        let capital = options.broker.capital().then(|| {
            let world = CapitalWorld::new(options.seed, options.broker == BrokerKind::Hedging, epics(), START / 1_000_000);
            // Every market has a price before the first order.
            for i in 0..INSTRUMENTS as usize {
                world.publish(i, 99.99, 100.01);
            }
            world
        });
        let mut sim = Sim {
            capital,
            armed_downtime: 0,
            restart_check: None,
            disk,
            host: None,
            now: START,
            loaded: (0..PLUGINS).collect(),
            last_price: vec![None; INSTRUMENTS as usize],
            model: JournalModel::new(risk.max_order_quantity, risk.max_order_notional),
            durable: Durable::default(),
            flushes_seen: 0,
            flatten_since: None,
            hasher: Sha256::new(),
            stats: Stats::default(),
            max_order_quantity: risk.max_order_quantity,
            show_journal: std::env::var_os("SIMTEST_JOURNAL").is_some(),
            latency_ms: options.latency_ms,
            order_notional_cap: risk.max_order_notional,
        };
        sim.max_order_quantity = options.order_cap;
        sim.model = JournalModel::new(options.order_cap, sim.order_notional_cap);
        sim.host = Some(sim.open_host());
        sim
    }

    fn host(&mut self) -> &mut Host {
        self.host.as_mut().expect("a host runs between steps")
    }

    fn plugins(&self) -> Vec<Arc<str>> {
        self.loaded.iter().map(|&p| plugin_name(p)).collect()
    }

    /// Starts a host on the live journal as the engine does: the journal
    /// replayed, the broker drained, the reconciliation finished.
    fn open_host(&mut self) -> Host {
        let world = Arc::new(stratbox_trading::SharedWorld::new(16));
        world.clock.set(self.now);
        let (boxed, broker, gate): (Box<dyn Broker>, _, _) = match self.capital.as_mut() {
            Some(cw) => {
                let (capital, gate) = cw.connect(world.clone(), epics());
                (Box::new(capital), None, Some(gate))
            }
            None => {
                let paper = SharedPaper(Arc::new(Mutex::new(PaperBroker::new(paper_config(self.latency_ms), world.clone()))));
                (Box::new(paper.clone()), Some(paper), None)
            }
        };
        let journal = Journal::open_flushed_by_hand(&self.disk.live).expect("the simulation's journal opens");
        let config = OrderPathConfig { risk: risk_config(), alerts: AlertConfig::default(), equity_every_secs: 3_600, ..OrderPathConfig::default() };
        let hours = vec![None; INSTRUMENTS as usize];
        let (mut path, rebuilt) = OrderPath::open(boxed, journal, world.clone(), instruments(), hours, config).expect("the journal replays");
        let rebuilt = rebuilt.unwrap_or_default();
        let outcome = path.begin_reconcile(&rebuilt);
        path.poll_broker();
        path.finish_reconcile(rebuilt, outcome);
        self.flushes_seen = path.journal_flushes();
        if let Some(cw) = &self.capital {
            // Reconciling took the broker's time.
            self.now = self.now.max(cw.now_ns());
            world.clock.set(self.now);
        }
        Host { path, world, broker, gate }
    }

    /// Capital.com: a price at the broker and then at the host, as the stream would bring it.
    fn price(&mut self, instrument: u32, bid: f64, ask: f64) {
        if let Some(cw) = &self.capital {
            cw.publish(instrument as usize, bid, ask);
        }
        let quote = Quote { instrument, time: self.now, bid, bid_size: 0.0, ask, ask_size: 0.0 };
        let (now, plugins) = (self.now, self.plugins());
        let h = self.host();
        h.path.on_quote(&quote, now);
        h.path.end_event(plugins.iter(), now);
    }

    /// A bar's prices for the next intents, and a gap counted as a fault.
    fn note_bar(&mut self, instrument: u32, open: f64, close: f64) {
        let last = &mut self.last_price[instrument as usize];
        if last.is_some_and(|p| (open / p - 1.0).abs() > 0.03) {
            self.stats.fault("gap");
        }
        *last = Some(close);
    }

    /// Runs one operation.
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Bar { instrument, advance_secs, open, high, low, close, volume } if self.capital.is_some() => {
                // At Capital.com the bar is four quotes across its time (the
                // extreme nearer the open first), each traded at the broker
                // and seen by the host, then the bar itself.
                self.note_bar(*instrument, *open, *close);
                let path = if high - open < open - low { [*open, *high, *low, *close] } else { [*open, *low, *high, *close] };
                for p in path {
                    self.advance(*advance_secs as i64 * SEC / 4);
                    self.price(*instrument, round2(p - 0.01), round2(p + 0.01));
                }
                let bar = Bar { instrument: *instrument, start: self.now - 60 * SEC, period_secs: 60, open: *open, high: *high, low: *low, close: *close, volume: *volume };
                let (now, plugins) = (self.now, self.plugins());
                let h = self.host();
                h.path.on_bars(&[bar], now);
                h.path.end_event(plugins.iter(), now);
            }
            Op::Quote { instrument, advance_ms, bid, ask, .. } if self.capital.is_some() => {
                self.advance(*advance_ms as i64 * 1_000_000);
                self.price(*instrument, *bid, *ask);
            }
            Op::Bar { instrument, advance_secs, open, high, low, close, volume } => {
                self.advance(*advance_secs as i64 * SEC);
                self.note_bar(*instrument, *open, *close);
                let bar = Bar { instrument: *instrument, start: self.now - 60 * SEC, period_secs: 60, open: *open, high: *high, low: *low, close: *close, volume: *volume };
                let (now, plugins) = (self.now, self.plugins());
                let h = self.host();
                let before = h.path.broker_stats().partial_fills;
                h.path.poll_broker();
                h.path.on_bars(&[bar], now);
                h.path.end_event(plugins.iter(), now);
                if h.path.broker_stats().partial_fills > before {
                    self.stats.fault("volume-cap");
                }
            }
            Op::Quote { instrument, advance_ms, bid, ask, size } => {
                self.advance(*advance_ms as i64 * 1_000_000);
                let quote = Quote { instrument: *instrument, time: self.now, bid: *bid, bid_size: *size, ask: *ask, ask_size: *size };
                let (now, plugins) = (self.now, self.plugins());
                let h = self.host();
                h.path.on_quote(&quote, now);
                h.path.end_event(plugins.iter(), now);
            }
            Op::Intents { plugin, intents } => {
                if !self.loaded.contains(plugin) {
                    return;
                }
                let name = plugin_name(*plugin);
                let intents: Vec<Intent> = intents.iter().filter_map(|i| self.intent(&name, i)).collect();
                let (now, plugins) = (self.now, self.plugins());
                let violations = self.host().path.submit(vec![(name, intents)], now);
                for (bad, _) in violations {
                    // As the engine quarantines a plugin that broke the contract.
                    self.host().path.cancel_all(&bad);
                    if let Some(p) = (0..PLUGINS).find(|p| plugin_name(*p) == bad) {
                        self.loaded.remove(&p);
                    }
                }
                let h = self.host();
                h.path.end_event(plugins.iter(), now);
            }
            Op::Levels { plugin, instrument, stop_loss, take_profit } => {
                let Some(last) = self.last_price[*instrument as usize] else { return };
                let at = |f: &Option<f64>| f.map(|f| ((last * (1.0 + f)) * 100.0).round() / 100.0);
                let levels = StopLevels { instrument: *instrument, stop_loss: at(stop_loss), take_profit: at(take_profit) };
                self.stop_decision(*plugin, StopDecision::SetLevels(levels));
            }
            Op::StopExit { plugin, instrument } => self.stop_decision(*plugin, StopDecision::Exit(*instrument)),
            Op::Alarm { critical } => {
                let level = if *critical { AlarmLevel::Critical } else { AlarmLevel::Severe };
                let (now, plugins) = (self.now, self.plugins());
                let h = self.host();
                h.path.on_alarm("detector", &Alarm { level, instrument: None, reason: "simulated".into() });
                h.path.end_event(plugins.iter(), now);
            }
            Op::Flatten => {
                let plugins = self.plugins();
                self.host().path.flatten(plugins.iter());
            }
            Op::Deleverage { fraction, steps, every_secs } => {
                let plugins = self.plugins();
                let _ = self.host().path.start_deleverage(plugins.iter(), *fraction, *steps, *every_secs);
            }
            Op::Resume => self.host().path.set_trading_state(None, TradingState::Active, "resumed by the operator"),
            Op::Halt { plugin } => {
                let name = plugin.map(plugin_name);
                self.host().path.set_trading_state(name.as_deref(), TradingState::Halted, "halted by the operator");
            }
            Op::Adopt => {
                let h = self.host();
                let outcome = h.path.begin_adopt();
                h.path.poll_broker();
                let _ = h.path.finish_adopt(stratbox_trading::ADOPTED, outcome);
            }
            Op::Quarantine { plugin } | Op::Unload { plugin, cancel: true } => {
                if self.loaded.remove(plugin) {
                    self.host().path.cancel_all(&plugin_name(*plugin));
                }
            }
            Op::Unload { plugin, cancel: false } => {
                self.loaded.remove(plugin);
            }
            Op::Load { plugin } => {
                self.loaded.insert(*plugin);
            }
            Op::Flush => {
                let _ = self.host().path.flush();
            }
            Op::Crash { downtime_secs } => self.crash(*downtime_secs),
            Op::CrashAtRequest { requests, after_handling, downtime_secs } => match self.host.as_ref().and_then(|h| h.gate.clone()) {
                Some(gate) => {
                    gate.arm(*requests, *after_handling);
                    self.armed_downtime = *downtime_secs;
                }
                None => self.crash(*downtime_secs),
            },
            Op::Fault { fault } => {
                if let Some(cw) = self.capital.as_mut() {
                    cw.inject(fault);
                    self.stats.fault(fault.kind());
                }
            }
        }
    }

    fn advance(&mut self, by: i64) {
        let Some(cw) = &self.capital else {
            self.now += by.max(0);
            let now = self.now;
            self.host().world.clock.set(now);
            return;
        };
        // The broker's world runs in steps of at most a second, the host
        // reading what came back after each (as its runner polls).
        let end = self.now + by.max(0);
        while self.now < end {
            let step = (end - self.now).min(SEC);
            cw.drive(std::time::Duration::from_nanos(step as u64));
            self.now = cw.now_ns().max(self.now + step);
            let now = self.now;
            let h = self.host.as_mut().expect("a host runs between steps");
            h.world.clock.set(now);
            h.path.poll_broker();
            h.path.settle();
            if h.gate.as_ref().is_some_and(|g| g.tripped()) {
                // The host is dead from here: its requests hang; time goes on at the crash.
                self.crash_at_request();
                return;
            }
        }
    }

    /// The armed crash point was reached: the host dies mid-request.
    fn crash_at_request(&mut self) {
        let after = self.host.as_ref().and_then(|h| h.gate.as_ref()).is_some_and(|g| g.after_handling());
        self.stats.fault(if after { "crash-after-request" } else { "crash-before-request" });
        let downtime = self.armed_downtime;
        self.crash(downtime);
    }

    fn stop_decision(&mut self, plugin: u8, decision: StopDecision) {
        let (now, plugins) = (self.now, self.plugins());
        let h = self.host();
        let _ = h.path.apply_stop_decisions(vec![(Arc::from("guard"), plugin_name(plugin), decision)], now);
        h.path.end_event(plugins.iter(), now);
    }

    fn intent(&mut self, plugin: &Arc<str>, i: &IntentOp) -> Option<Intent> {
        Some(match *i {
            IntentOp::Target { instrument, quantity } => Intent::Target(TargetPosition { instrument, quantity }),
            IntentOp::Order { instrument, buy, quantity, kind, offset, tif } => {
                let last = self.last_price[instrument as usize].unwrap_or(100.0);
                let price = ((last * (1.0 + offset)) * 100.0).round() / 100.0;
                let order_type = match kind {
                    Kind::Market => OrderType::Market,
                    Kind::Limit => OrderType::Limit(price),
                    Kind::Stop => OrderType::Stop(price),
                };
                let time_in_force = match tif {
                    Tif::Gtc => TimeInForce::Gtc,
                    Tif::Day => TimeInForce::Day,
                    Tif::Ioc => TimeInForce::Ioc,
                };
                Intent::Order(OrderIntent { instrument, side: if buy { Side::Buy } else { Side::Sell }, quantity, order_type, time_in_force, tag: 0 })
            }
            IntentOp::Cancel { nth } => {
                let ids: Vec<u64> = self.host().world.ledger().book(plugin).map(|b| b.orders.keys().copied().collect()).unwrap_or_default();
                if ids.is_empty() {
                    return None;
                }
                Intent::Cancel(ids[nth as usize % ids.len()])
            }
            IntentOp::CancelAll { instrument } => Intent::CancelAll(instrument),
        })
    }

    /// The host dies: nothing more is written; what was flushed is what the disk has.
    fn crash(&mut self, downtime_secs: u64) {
        self.stats.crashes += 1;
        self.stats.fault("crash");
        if downtime_secs >= 86_400 {
            self.stats.fault("downtime-days");
        }
        // What the host flushed during this step is on disk (a request
        // leaves only after its flush): take it before the host goes.
        if self.host.is_some() {
            self.note_flushes();
        }
        drop(self.host.take());
        if self.disk.durable.exists() {
            copy_dir(&self.disk.durable, &self.disk.live).expect("the durable journal copies");
        } else if self.disk.live.exists() {
            std::fs::remove_dir_all(&self.disk.live).expect("the journal directory goes");
        }
        match &self.capital {
            Some(cw) => {
                // The market goes on while the host is down: resting orders
                // trade or expire at the broker, unseen.
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(downtime_secs);
                let mut prices: Vec<f64> = self.last_price.iter().map(|p| p.unwrap_or(100.0)).collect();
                for k in 0..8 {
                    // Eight slices of the downtime, the last taking the rest.
                    let slice = if k < 7 { downtime_secs / 8 } else { downtime_secs - 7 * (downtime_secs / 8) };
                    cw.drive(std::time::Duration::from_secs(slice));
                    for (i, p) in prices.iter_mut().enumerate() {
                        *p = round2(*p * (1.0 + rand::Rng::gen_range(&mut rng, -0.02..0.02)));
                        cw.publish(i, round2(*p - 0.01), round2(*p + 0.01));
                    }
                }
                self.now = self.now.max(cw.now_ns());
            }
            None => self.now += downtime_secs as i64 * SEC,
        }
        self.durable = self.read_durable();
        self.loaded = (0..PLUGINS).collect();
        // The checker re-reads the surviving journal from its start.
        self.model = JournalModel::new(self.max_order_quantity, self.order_notional_cap);
        self.flatten_since = None;
        self.host = Some(self.open_host());
        // Checked at once: the rest of a step cut by a crash at a request
        // runs on the new host, which may move on from what it restored.
        let restored = self.check_restart();
        self.restart_check = Some(restored);
    }

    /// After a step: a new flush is a new durable point (what a crash keeps).
    fn note_flushes(&mut self) {
        let h = self.host.as_ref().expect("a host runs");
        if h.path.journal_flushes() == self.flushes_seen {
            return;
        }
        self.flushes_seen = h.path.journal_flushes();
        copy_dir(&self.disk.live, &self.disk.durable).expect("the journal copies");
    }

    /// What the journal a restart opens says was in force: the trading-state
    /// causes, the risk baselines and the de-leveraging plan, read from its
    /// entries (not from the host that wrote them, which may have moved on
    /// after its last flush).
    fn read_durable(&self) -> Durable {
        let mut durable = Durable::default();
        if !self.disk.live.exists() {
            return durable;
        }
        let journal = Journal::open_flushed_by_hand(&self.disk.live).expect("the durable journal opens");
        let mut causes: BTreeMap<(String, Cause), (TradingState, Option<Timestamp>)> = BTreeMap::new();
        for entry in journal.entries() {
            match entry.expect("the durable journal reads").event {
                stratbox_trading::JournalEvent::TradingState { plugin, state, cause, until, .. } => {
                    let key = (plugin.unwrap_or_else(|| "global".into()), cause);
                    if state == TradingState::Active {
                        causes.remove(&key);
                    } else {
                        causes.insert(key, (state, until));
                    }
                }
                stratbox_trading::JournalEvent::RiskBaselines { peak_equity, day, day_start_equity, plugin_day_start, reference_open } => {
                    durable.baselines = Some(Baselines { peak_equity, day, day_start_equity, plugins: plugin_day_start.len(), reference_open });
                }
                stratbox_trading::JournalEvent::Deleverage { steps, steps_done, next_at, .. } => {
                    durable.deleverage = (steps_done < steps).then_some((steps_done, steps, next_at));
                }
                _ => {}
            }
        }
        durable.causes = causes.into_iter().map(|((scope, cause), (state, until))| (scope, cause, state, until)).collect();
        durable
    }

    /// Worst-case position per (book, instrument): held, plus every working
    /// order on one side filling; and the state in force per book.
    fn exposure(&self) -> (ByBook<(f64, f64)>, BTreeMap<String, TradingState>) {
        if self.capital.is_some() {
            return self.capital_exposure();
        }
        let h = self.host.as_ref().expect("a host runs");
        let mut sides: ByBook<(f64, f64, f64)> = h.positions().into_iter().map(|(k, q)| (k, (q, 0.0, 0.0))).collect();
        for (book, _, instrument, left) in h.working() {
            let e = sides.entry((book, instrument)).or_default();
            if left > 0.0 { e.1 += left } else { e.2 -= left }
        }
        // Each side on its own: a position that could flip to a smaller opposite one adds risk too.
        let worst = sides.into_iter().map(|(k, (q, b, s))| (k, ((q + b).max(0.0), (s - q).max(0.0)))).collect();
        (worst, self.states())
    }

    /// The trading state in force per book.
    fn states(&self) -> BTreeMap<String, TradingState> {
        let view = self.host.as_ref().expect("a host runs").path.risk_view();
        let mut states = BTreeMap::new();
        for p in (0..PLUGINS).map(plugin_name).chain([Arc::from(stratbox_trading::ADOPTED)]) {
            let own = view.plugins.get(&*p).map_or(TradingState::Active, |r| r.state);
            states.insert(p.to_string(), own.max(view.global.state));
        }
        states
    }

    /// Invariants 1, 2 and 6, after every step; 4 while a flatten holds.
    fn check(&mut self, step: usize) -> Check {
        let h = self.host.as_mut().expect("a host runs");
        let entries = h.path.journal_page(self.model.next_seq, usize::MAX).map_err(|e| (Invariant::BooksMatch, format!("the journal cannot be read: {e}")))?;
        for e in &entries {
            self.hasher.update(serde_json::to_vec(e).expect("entries serialise"));
        }
        if self.show_journal {
            for e in &entries {
                eprintln!("step {step} | {}", serde_json::to_string(e).expect("entries serialise"));
            }
        }
        self.stats.check(Invariant::UniqueIds);
        self.stats.entries += entries.len() as u64;
        self.model.apply(&entries)?;
        if self.capital.is_some() {
            return self.check_capital(step);
        }
        let h = self.host.as_ref().expect("a host runs");
        // 1. Positions: the journal's fills against the broker's book.
        self.stats.check(Invariant::BooksMatch);
        let broker_positions = h.positions();
        let keys: BTreeSet<&(String, u32)> = broker_positions.keys().chain(self.model.positions.keys()).collect();
        for k in keys {
            let (j, b) = (self.model.positions.get(k).copied().unwrap_or(0.0), broker_positions.get(k).copied().unwrap_or(0.0));
            if (j - b).abs() > 1e-6 {
                return Err((Invariant::BooksMatch, format!("{} SIM{}: the journal's fills make {j}, the broker holds {b}", k.0, k.1)));
            }
        }
        // ... and working orders: the journal's open orders against the broker's own book.
        let broker_working = h.working();
        let journal_working = self.model.working();
        if journal_working.len() != broker_working.len() || journal_working.iter().zip(&broker_working).any(|(a, b)| a.0 != b.0 || a.1 != b.1 || (a.3 - b.3).abs() > 1e-6) {
            let show = |w: &[Working]| w.iter().map(|(p, id, i, q)| format!("{p}#{id} SIM{i} {q:+}")).collect::<Vec<_>>().join(", ");
            return Err((Invariant::BooksMatch, format!("working orders: the journal has [{}], the broker [{}]", show(&journal_working), show(&broker_working))));
        }
        // 6. Memory: final orders within the tracker's bound, the rest working.
        self.stats.check(Invariant::Bounded);
        let f = h.path.footprint();
        let keep = stratbox_trading::OrderTracker::KEEP_FINISHED;
        let risk = risk_config();
        let queue_cap = risk.orders_per_sec as usize + (PLUGINS as usize + 1) * risk.orders_per_sec_per_plugin as usize;
        if f.finished_orders > keep
            || f.tracked_orders > f.finished_orders + self.model.open_orders() + 1
            || f.broker_ids > f.tracked_orders
            || f.cached_books > PLUGINS as usize + 2
            || f.exit_orders > broker_working.len()
            || f.risk_queued > queue_cap
            || f.exits_due > (PLUGINS as usize + 2) * INSTRUMENTS as usize
        {
            return Err((Invariant::Bounded, format!("the order path holds {f:?} with {} orders open (keeps {keep} final)", self.model.open_orders())));
        }
        // 4. Flatten: while it holds, each position is covered by exits and nothing else works.
        let Some(since) = self.flattening(step) else { return Ok(()) };
        for ((book, instrument), held) in &broker_positions {
            let exits: f64 = broker_working.iter().filter(|w| &w.0 == book && w.2 == *instrument).map(|w| w.3).sum();
            if (held + exits).abs() > 1e-6 {
                return Err((Invariant::FlattenCloses, format!("flatten: {book} holds {held} SIM{instrument} with {exits:+} working to close it")));
            }
        }
        if let Some(w) = broker_working.iter().find(|w| broker_positions.get(&(w.0.clone(), w.2)).is_none_or(|q| q * w.3 >= 0.0)) {
            return Err((Invariant::FlattenCloses, format!("flatten: {}#{} ({:+} SIM{}) works without a position to close", w.0, w.1, w.3, w.2)));
        }
        if step - since > FLATTEN_BOUND && !broker_positions.is_empty() {
            return Err((Invariant::FlattenCloses, format!("flatten: {} positions still open {} steps after it", broker_positions.len(), step - since)));
        }
        Ok(())
    }

    /// Invariant 5, right after a restart: what was durable holds.
    fn check_restart(&mut self) -> Check {
        self.stats.check(Invariant::StatesSurvive);
        let h = self.host.as_ref().expect("a host runs");
        let view = h.path.risk_view();
        for (scope, cause, state, until) in &self.durable.causes {
            // A breaker halt ends by itself; a reconciliation's verdict is the new one's.
            if *cause == Cause::Reconciliation || until.is_some_and(|u| u <= self.now) {
                continue;
            }
            let now_state = view.causes.iter().find(|(s, r)| s == scope && r.cause == Some(*cause)).map(|(_, r)| r.state);
            if now_state.is_none_or(|s| s < *state) {
                return Err((Invariant::StatesSurvive, format!("{scope} was {state:?} for {cause:?} before the crash and is {now_state:?} for it after the restart")));
            }
        }
        let plan = h.path.deleverage_plan().map(|p| (p.steps_done, p.steps, p.next_at));
        if plan != self.durable.deleverage {
            return Err((Invariant::StatesSurvive, format!("de-leveraging (steps done, steps, next at) was {:?} before the crash and is {plan:?} after the restart", self.durable.deleverage)));
        }
        if let Some(b) = self.durable.baselines {
            let now = h.path.risk_baselines();
            // The same day keeps its starting equity; a restart past midnight starts the next day.
            let day_lost = b.day != i64::MIN && (now.day < b.day || (now.day == b.day && (now.day_start_equity - b.day_start_equity).abs() > 1e-6));
            if now.peak_equity < b.peak_equity - 1e-6 || day_lost {
                return Err((Invariant::StatesSurvive, format!("risk baselines before the crash {b:?}, after the restart {now:?}")));
            }
        }
        Ok(())
    }
}

impl Sim {
    /// The step a global flatten in force began at (invariant 4 is checked
    /// while one holds), or `None`.
    fn flattening(&mut self, step: usize) -> Option<usize> {
        let view = self.host.as_ref().expect("a host runs").path.risk_view();
        if !view.causes.iter().any(|(scope, r)| scope == "global" && r.cause == Some(Cause::Flatten)) {
            self.flatten_since = None;
            return None;
        }
        self.stats.check(Invariant::FlattenCloses);
        Some(*self.flatten_since.get_or_insert(step))
    }

    /// Whether nothing is on its way at Capital.com: every open order rests
    /// there under a known reference, no order is in doubt, and the
    /// account's last activity is older than the feed's lag and two polls
    /// (so the host has had the chance to read it).
    fn capital_quiet(&self) -> bool {
        let (Some(cw), Some(h)) = (&self.capital, &self.host) else { return false };
        if !self.model.at_rest() {
            return false;
        }
        let books = (0..PLUGINS).map(plugin_name).chain([Arc::from(stratbox_trading::ADOPTED)]);
        for book in books {
            if (0..INSTRUMENTS).any(|i| h.path.in_doubt(&book, i).is_some()) {
                return false;
            }
        }
        let settle = std::time::Duration::from_millis(cw.lag_ms + 2 * crate::capital::broker_config().poll_ms + 1_000);
        cw.since_last_activity().is_none_or(|a| a >= settle)
    }

    /// Invariants 1, 2, 4 and 6 against the Capital.com account (the mock's
    /// own book, never read back through the host's client).
    fn check_capital(&mut self, step: usize) -> Check {
        let quiet = self.capital_quiet();
        let cw = self.capital.as_ref().expect("a Capital.com world");
        let snapshot = cw.dealing();
        let epics = epics();
        if quiet {
            // 1. Net positions per instrument (the account has no books), and resting orders by reference.
            self.stats.check(Invariant::BooksMatch);
            for (i, epic) in epics.iter().enumerate() {
                let journal: f64 = self.model.positions.iter().filter(|((_, k), _)| *k as usize == i).map(|(_, q)| q).sum();
                let broker = snapshot.net.get(epic).copied().unwrap_or(0.0);
                if (journal - broker).abs() > 1e-6 {
                    return Err((Invariant::BooksMatch, format!("{epic} (SIM{i}): the journal's fills make {journal}, the account holds {broker}")));
                }
            }
            let journal: Vec<(String, u32, f64)> = self.model.resting();
            let mut broker: Vec<(String, u32, f64)> =
                snapshot.working.iter().map(|(epic, q, r)| (r.clone(), epics.iter().position(|e| e == epic).unwrap_or(usize::MAX) as u32, *q)).collect();
            broker.sort_by(|a, b| a.0.cmp(&b.0));
            if journal.len() != broker.len() || journal.iter().zip(&broker).any(|(a, b)| a.0 != b.0 || a.1 != b.1 || (a.2 - b.2).abs() > 1e-6) {
                return Err((Invariant::BooksMatch, format!("working orders: the journal has {journal:?}, the account {broker:?}")));
            }
            // 2. Every deal the account made for a request is journaled (so none was sent twice unseen).
            for d in snapshot.deals.iter().filter(|d| d.accepted && d.kind != "CLOSE") {
                if !self.model.references.contains_key(&d.deal_reference) {
                    return Err((Invariant::UniqueIds, format!("the account's deal {} ({} {} {} {}) is in no journaled order", d.deal_reference, d.kind, d.direction, d.size, d.epic)));
                }
            }
        }
        // 6. Memory.
        self.stats.check(Invariant::Bounded);
        let h = self.host.as_ref().expect("a host runs");
        let f = h.path.footprint();
        let keep = stratbox_trading::OrderTracker::KEEP_FINISHED;
        let risk = risk_config();
        let queue_cap = risk.orders_per_sec as usize + (PLUGINS as usize + 1) * risk.orders_per_sec_per_plugin as usize;
        let pending = self.model.pending().len();
        if f.finished_orders > keep
            || f.tracked_orders > f.finished_orders + pending + 1
            || f.broker_ids > f.tracked_orders
            || f.cached_books > PLUGINS as usize + 2
            || f.exit_orders > pending
            || f.risk_queued > queue_cap
            || f.exits_due > (PLUGINS as usize + 2) * INSTRUMENTS as usize
            || f.broker_references > self.model.references.len() + self.model.fills + pending
        {
            return Err((Invariant::Bounded, format!("the order path holds {f:?} with {pending} orders open (keeps {keep} final)")));
        }
        // 4. Flatten: nothing adds to a position, and every book is flat within the bound.
        let Some(since) = self.flattening(step) else { return Ok(()) };
        // Cancels take a round trip (and a refused one is asked again): what
        // still rests when all is quiet a while into the flatten must be an exit.
        let pending = if quiet && step - since > 20 { self.model.pending() } else { Vec::new() };
        for (book, instrument, left) in pending {
            let held = self.model.positions.get(&(book.clone(), instrument)).copied().unwrap_or(0.0);
            if held * left >= 0.0 || left.abs() > held.abs() + 1e-6 {
                return Err((Invariant::FlattenCloses, format!("flatten: {book} has an order for {left:+} SIM{instrument} open while it holds {held}")));
            }
        }
        // Flat at the account, and in every book (two books of opposite sizes net to nothing there).
        let held: Vec<_> = self.model.positions.iter().filter(|(_, q)| q.abs() > 1e-9).collect();
        if step - since > FLATTEN_BOUND && (snapshot.net.values().any(|q| q.abs() > 1e-9) || !held.is_empty()) {
            return Err((Invariant::FlattenCloses, format!("flatten: the account still holds {:?} and the books {held:?}, {} steps after it", snapshot.net, step - since)));
        }
        Ok(())
    }

    /// Worst-case position per (book, instrument) by the journal (held, plus
    /// every open order on one side filling), and the state in force per book.
    fn capital_exposure(&self) -> (ByBook<(f64, f64)>, BTreeMap<String, TradingState>) {
        let mut sides: ByBook<(f64, f64, f64)> = self.model.positions.iter().map(|(k, q)| (k.clone(), (*q, 0.0, 0.0))).collect();
        for (book, instrument, left) in self.model.pending() {
            let e = sides.entry((book, instrument)).or_default();
            if left > 0.0 { e.1 += left } else { e.2 -= left }
        }
        let worst = sides.into_iter().map(|(k, (q, b, s))| (k, ((q + b).max(0.0), (s - q).max(0.0)))).collect();
        (worst, self.states())
    }
}

impl Sim {
    /// The broker's protective levels, by (holder, instrument).
    fn protections(&self) -> ByBook<Levels> {
        let h = self.host.as_ref().expect("a host runs");
        let levels = match &h.broker {
            Some(paper) => paper.lock().protections(),
            None => h.path.protections(),
        };
        levels.into_iter().map(|(o, l)| ((o.to_string(), l.instrument), (l.stop_loss, l.take_profit))).collect()
    }

    /// Invariant 7: a step that is not the policy's change of a position's
    /// levels, nor market data that may reach them, leaves the levels of an
    /// open position.
    fn check_protections(&mut self, op: &Op, before: &ByBook<Levels>) -> Check {
        self.stats.check(Invariant::ProtectionsKept);
        let after = self.protections();
        let h = self.host.as_ref().expect("a host runs");
        for ((holder, instrument), levels) in before {
            let touched = match op {
                Op::Levels { plugin, instrument: i, .. } => plugin_name(*plugin).as_ref() == holder && i == instrument,
                Op::Bar { instrument: i, .. } | Op::Quote { instrument: i, .. } => i == instrument,
                _ => false,
            };
            let open = h.world.ledger().quantity(holder, *instrument) != 0.0;
            if !touched && open && after.get(&(holder.clone(), *instrument)) != Some(levels) {
                return Err((Invariant::ProtectionsKept, format!("{holder} SIM{instrument}: levels {levels:?} of an open position became {:?} after {op:?}", after.get(&(holder.clone(), *instrument)))));
            }
        }
        Ok(())
    }
}

/// How the checker judges a run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The order-quantity cap the checker holds accepted orders to (the
    /// host's own by default; a lower one shows the harness catching and
    /// shrinking a breach).
    pub order_cap: f64,
    /// The paper broker's latency ([`latency_for`] a seed).
    pub latency_ms: u64,
    /// The broker the host trades with.
    pub broker: BrokerKind,
    /// Capital.com: seeds the mock's references and the client's backoff jitter.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { order_cap: risk_config().max_order_quantity, latency_ms: 0, broker: BrokerKind::Paper, seed: 0 }
    }
}

impl Options {
    /// What a seed runs with on the paper broker.
    pub fn for_seed(seed: u64) -> Self {
        Self { latency_ms: latency_for(seed), seed, ..Self::default() }
    }

    /// What a seed runs with on `broker`.
    pub fn for_broker(seed: u64, broker: BrokerKind) -> Self {
        match broker {
            BrokerKind::Paper => Self::for_seed(seed),
            _ => Self { broker, seed, ..Self::default() },
        }
    }
}

/// Runs `ops` in a fresh directory under `dir`; stops at the first violation.
pub fn run(ops: &[Op], dir: &Path) -> Outcome {
    run_with(ops, dir, Options::default())
}

/// [`run`] with the checker's options.
pub fn run_with(ops: &[Op], dir: &Path, options: Options) -> Outcome {
    let dir = tempfile::Builder::new().prefix("simtest-").tempdir_in(dir).expect("a temporary directory");
    let mut sim = Sim::new(dir.path(), options);
    let mut violation = None;
    for (step, op) in ops.iter().enumerate() {
        sim.hasher.update(serde_json::to_vec(op).expect("ops serialise"));
        let crash = matches!(op, Op::Crash { .. }) || (matches!(op, Op::CrashAtRequest { .. }) && !options.broker.capital());
        let before = (!crash).then(|| (sim.exposure(), sim.protections()));
        sim.apply(op);
        if sim.capital.is_some() && !matches!(op, Op::Bar { .. } | Op::Quote { .. } | Op::Crash { .. }) {
            // The worker sends what the step queued, and the replies come back.
            sim.advance(250_000_000);
        }
        sim.host().path.settle();
        // A crash at a request happens inside a step: its restart was checked.
        let crash = crash || sim.restart_check.is_some();
        let before = if crash { None } else { before };
        sim.stats.steps += 1;
        let mut result = sim.check(step);
        if let Some(restored) = sim.restart_check.take()
            && result.is_ok()
        {
            result = restored;
        }
        if result.is_ok()
            && let Some((_, protections)) = &before
        {
            result = sim.check_protections(op, protections);
        }
        if result.is_ok()
            && let Some(((worst_before, states_before), _)) = before
        {
            // 3. Reduce-only and halted never add risk.
            let (worst_after, states_after) = sim.exposure();
            sim.stats.check(Invariant::NoNewRisk);
            for ((book, instrument), after) in &worst_after {
                let restricted = |s: &BTreeMap<String, TradingState>| s.get(book).is_some_and(|s| *s != TradingState::Active);
                let was = worst_before.get(&(book.clone(), *instrument)).copied().unwrap_or((0.0, 0.0));
                if restricted(&states_before) && restricted(&states_after) && (after.0 > was.0 + 1e-6 || after.1 > was.1 + 1e-6) {
                    result = Err((
                        Invariant::NoNewRisk,
                        format!("{book} SIM{instrument}: worst-case (long, short) {was:?} -> {after:?} while {:?}", states_after.get(book).copied().unwrap_or(TradingState::Active)),
                    ));
                    break;
                }
            }
        }
        sim.note_flushes();
        if let Err((invariant, message)) = result {
            violation = Some(Violation { step, invariant, message });
            break;
        }
    }
    let stats = std::mem::take(&mut sim.stats);
    let trace = hex::encode(sim.hasher.clone().finalize());
    drop(sim);
    drop(dir);
    Outcome { trace, stats, violation }
}
