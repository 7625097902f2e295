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
    broker: SharedPaper,
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
        self.broker.lock().working().into_iter().map(|(o, v)| (o.to_string(), v.id, v.instrument, signed(&v))).collect()
    }
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
        let mut sim = Sim {
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
        let broker = SharedPaper(Arc::new(Mutex::new(PaperBroker::new(paper_config(self.latency_ms), world.clone()))));
        let journal = Journal::open_flushed_by_hand(&self.disk.live).expect("the simulation's journal opens");
        let config = OrderPathConfig { risk: risk_config(), alerts: AlertConfig::default(), equity_every_secs: 3_600, ..OrderPathConfig::default() };
        let hours = vec![None; INSTRUMENTS as usize];
        let (mut path, rebuilt) = OrderPath::open(Box::new(broker.clone()), journal, world.clone(), instruments(), hours, config).expect("the journal replays");
        let rebuilt = rebuilt.unwrap_or_default();
        let outcome = path.begin_reconcile(&rebuilt);
        path.poll_broker();
        path.finish_reconcile(rebuilt, outcome);
        self.flushes_seen = path.journal_flushes();
        Host { path, world, broker }
    }

    /// Runs one operation.
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Bar { instrument, advance_secs, open, high, low, close, volume } => {
                self.advance(*advance_secs as i64 * SEC);
                let i = *instrument as usize;
                if self.last_price[i].is_some_and(|p| (open / p - 1.0).abs() > 0.03) {
                    self.stats.fault("gap");
                }
                self.last_price[i] = Some(*close);
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
        }
    }

    fn advance(&mut self, by: i64) {
        self.now += by.max(0);
        let now = self.now;
        self.host().world.clock.set(now);
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
        drop(self.host.take());
        if self.disk.durable.exists() {
            copy_dir(&self.disk.durable, &self.disk.live).expect("the durable journal copies");
        } else if self.disk.live.exists() {
            std::fs::remove_dir_all(&self.disk.live).expect("the journal directory goes");
        }
        self.now += downtime_secs as i64 * SEC;
        self.loaded = (0..PLUGINS).collect();
        // The checker re-reads the surviving journal from its start.
        self.model = JournalModel::new(self.max_order_quantity, self.order_notional_cap);
        self.flatten_since = None;
        self.host = Some(self.open_host());
    }

    /// After a step: a new flush is a new durable point.
    fn note_flushes(&mut self) {
        let h = self.host.as_ref().expect("a host runs");
        if h.path.journal_flushes() == self.flushes_seen {
            return;
        }
        self.flushes_seen = h.path.journal_flushes();
        let view = h.path.risk_view();
        let causes = view.causes.iter().map(|(scope, r)| (scope.clone(), r.cause.unwrap_or_default(), r.state, r.until)).collect();
        let deleverage = h.path.deleverage_plan().map(|p| (p.steps_done, p.steps, p.next_at));
        self.durable = Durable { causes, baselines: Some(h.path.risk_baselines()), deleverage };
        copy_dir(&self.disk.live, &self.disk.durable).expect("the journal copies");
    }

    /// Worst-case position per (book, instrument): held, plus every working
    /// order on one side filling; and the state in force per book.
    fn exposure(&self) -> (ByBook<(f64, f64)>, BTreeMap<String, TradingState>) {
        let h = self.host.as_ref().expect("a host runs");
        let mut sides: ByBook<(f64, f64, f64)> = h.positions().into_iter().map(|(k, q)| (k, (q, 0.0, 0.0))).collect();
        for (book, _, instrument, left) in h.working() {
            let e = sides.entry((book, instrument)).or_default();
            if left > 0.0 { e.1 += left } else { e.2 -= left }
        }
        // Each side on its own: a position that could flip to a smaller opposite one adds risk too.
        let worst = sides.into_iter().map(|(k, (q, b, s))| (k, ((q + b).max(0.0), (s - q).max(0.0)))).collect();
        let view = h.path.risk_view();
        let mut states = BTreeMap::new();
        for p in (0..PLUGINS).map(plugin_name).chain([Arc::from(stratbox_trading::ADOPTED)]) {
            let own = view.plugins.get(&*p).map_or(TradingState::Active, |r| r.state);
            states.insert(p.to_string(), own.max(view.global.state));
        }
        (worst, states)
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
        let view = h.path.risk_view();
        let flattening = view.causes.iter().any(|(scope, r)| scope == "global" && r.cause == Some(Cause::Flatten));
        if !flattening {
            self.flatten_since = None;
            return Ok(());
        }
        let since = *self.flatten_since.get_or_insert(step);
        self.stats.check(Invariant::FlattenCloses);
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
            if now.peak_equity < b.peak_equity - 1e-6 || (b.day != i64::MIN && (now.day != b.day || (now.day_start_equity - b.day_start_equity).abs() > 1e-6)) {
                return Err((Invariant::StatesSurvive, format!("risk baselines before the crash {b:?}, after the restart {now:?}")));
            }
        }
        Ok(())
    }
}

impl Sim {
    /// The broker's protective levels, by (holder, instrument).
    fn protections(&self) -> ByBook<Levels> {
        let h = self.host.as_ref().expect("a host runs");
        h.broker.lock().protections().into_iter().map(|(o, l)| ((o.to_string(), l.instrument), (l.stop_loss, l.take_profit))).collect()
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
}

impl Default for Options {
    fn default() -> Self {
        Self { order_cap: risk_config().max_order_quantity, latency_ms: 0 }
    }
}

impl Options {
    /// What a seed runs with.
    pub fn for_seed(seed: u64) -> Self {
        Self { latency_ms: latency_for(seed), ..Self::default() }
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
        let crash = matches!(op, Op::Crash { .. });
        let before = (!crash).then(|| (sim.exposure(), sim.protections()));
        sim.apply(op);
        sim.host().path.settle();
        sim.stats.steps += 1;
        let mut result = sim.check(step);
        if result.is_ok() && crash {
            result = sim.check_restart();
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
