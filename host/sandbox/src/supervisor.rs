//! Plugin lifecycle: start (describe, limits, parameters, init), event
//! dispatch by role, quarantine on any fault, restarts with backoff, and hot
//! swap with state hand-over between two events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{ModelProvider, NoModels, OrderPolicy, ParamInput, PluginSpec, WorldView};
use stratbox_contract::{
    Alarm, AlarmLevel, Bar, BarBatch, Descriptor, Quote, Timestamp, Fill, InitContext, Instrument, Intent, Param, ParamSpec, ParamValue, Roles, RunMode, StopDecision,
};
use crate::{CallStats, Fault, HostState, LoadError, PluginInstance, PluginKv, PluginLimits, PreparedPlugin, Sandbox};
use stratbox_contract::util::unix_ms;

/// Why a plugin could not be started, swapped or found.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("plugin {path}: {source}")]
    Load { path: String, source: LoadError },
    #[error("plugin `{name}` {fault}")]
    Fault { name: String, fault: Fault },
    #[error("plugin `{name}`: {message}")]
    Params { name: String, message: String },
    #[error("a plugin named `{0}` is already loaded")]
    Duplicate(String),
    #[error("no plugin named `{0}` is loaded")]
    NoSuchPlugin(String),
    #[error("plugin `{0}` is quarantined; only a running plugin can be swapped (unload and load it instead)")]
    NotRunning(String),
}

/// Builds ready-to-run instances; shared with the control API so loads and
/// swaps compile and initialise off the event loop.
pub struct PluginFactory {
    pub sandbox: Arc<Sandbox>,
    pub world: Arc<dyn WorldView>,
    kv: Option<sled::Db>,
    pub mode: RunMode,
    pub instruments: Vec<Instrument>,
    /// The operator's models, served through the `inference` import.
    pub models: Arc<dyn ModelProvider>,
}

/// An initialised instance waiting to be installed (or swapped in).
pub struct Started {
    pub name: Arc<str>,
    pub spec: PluginSpec,
    pub prepared: PreparedPlugin,
    pub descriptor: Descriptor,
    pub instance: PluginInstance,
}

impl PluginFactory {
    pub fn new(sandbox: Arc<Sandbox>, world: Arc<dyn WorldView>, kv: Option<sled::Db>, mode: RunMode, instruments: Vec<Instrument>) -> Self {
        Self { sandbox, world, kv, mode, instruments, models: Arc::new(NoModels) }
    }

    /// Serves `models` to the plugins this factory starts.
    pub fn with_models(mut self, models: Arc<dyn ModelProvider>) -> Self {
        self.models = models;
        self
    }

    /// Reads, checks and compiles the component, then starts it.
    pub fn load(&self, spec: PluginSpec) -> Result<Started, StartError> {
        let prepared = self
            .sandbox
            .prepare_file(&spec.path)
            .map_err(|source| StartError::Load { path: spec.path.display().to_string(), source })?;
        self.start(spec, prepared)
    }

    fn kv_for(&self, name: &str) -> Option<PluginKv> {
        let db = self.kv.as_ref()?;
        match db.open_tree(format!("plugin/{name}")) {
            Ok(tree) => Some(PluginKv::open(tree)),
            Err(e) => {
                tracing::warn!(plugin = name, error = %e, "plugin store unavailable");
                None
            }
        }
    }

    /// Instantiates, describes, applies limits and parameters, and initialises.
    pub fn start(&self, spec: PluginSpec, prepared: PreparedPlugin) -> Result<Started, StartError> {
        let name: Arc<str> = Arc::from(spec.resolved_name());
        let fault = |fault: Fault| StartError::Fault { name: name.to_string(), fault };
        let settings = self.sandbox.settings();
        let no_request = stratbox_contract::ResourceRequest { memory_bytes: 0, fuel_per_callback: 0, max_intents_per_callback: 0 };
        let mut limits = PluginLimits::resolve(&settings.defaults, &no_request, &spec.limits, &settings.maxima);
        if self.mode == RunMode::Backtest {
            limits.deadline_ms = 0; // fuel alone: deterministic
        }
        let state = HostState::new(name.clone(), limits, self.world.clone(), self.kv_for(&name)).with_models(self.models.clone());
        let mut instance = self.sandbox.instantiate(&prepared, state).map_err(fault)?;
        let descriptor = instance.describe().map_err(fault)?;
        check_descriptor(&descriptor).map_err(|m| fault(Fault::BadDescriptor(m)))?;
        let mut limits = PluginLimits::resolve(&settings.defaults, &descriptor.requested, &spec.limits, &settings.maxima);
        if self.mode == RunMode::Backtest {
            limits.deadline_ms = 0;
        }
        instance.state_mut().limits = limits;
        let params = resolve_params(&descriptor.params, &spec)
            .map_err(|message| StartError::Params { name: name.to_string(), message })?;
        let context = InitContext { mode: self.mode, instruments: self.instruments.clone(), params };
        instance.init(&context).map_err(fault)?;
        Ok(Started { name, spec, prepared, descriptor, instance })
    }
}

fn check_descriptor(d: &Descriptor) -> Result<(), String> {
    if d.roles == Roles::empty() {
        return Err(format!("descriptor of `{}` declares no role", d.name));
    }
    for p in &d.params {
        if let Some(v) = numeric(&p.default)
            && (p.min.is_some_and(|m| v < m) || p.max.is_some_and(|m| v > m))
        {
            return Err(format!("parameter `{}` has default {v} outside its own range", p.name));
        }
    }
    Ok(())
}

fn numeric(v: &ParamValue) -> Option<f64> {
    match v {
        ParamValue::Integer(i) => Some(*i as f64),
        ParamValue::Number(x) => Some(*x),
        _ => None,
    }
}

/// Every declared parameter, with the configured value (checked against the
/// declared type and range) or the default. Unknown names are errors.
pub fn resolve_params(declared: &[ParamSpec], spec: &PluginSpec) -> Result<Vec<Param>, String> {
    if let Some(unknown) = spec.params.keys().find(|k| !declared.iter().any(|d| &d.name == *k)) {
        let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
        return Err(format!("unknown parameter `{unknown}` (it declares: {})", names.join(", ")));
    }
    declared
        .iter()
        .map(|d| {
            let value = match (spec.params.get(&d.name), &d.default) {
                (None, default) => default.clone(),
                (Some(ParamInput::Integer(i)), ParamValue::Integer(_)) => ParamValue::Integer(*i),
                (Some(ParamInput::Integer(i)), ParamValue::Number(_)) => ParamValue::Number(*i as f64),
                (Some(ParamInput::Number(x)), ParamValue::Number(_)) => ParamValue::Number(*x),
                (Some(ParamInput::Flag(b)), ParamValue::Flag(_)) => ParamValue::Flag(*b),
                (Some(ParamInput::Text(s)), ParamValue::Text(_)) => ParamValue::Text(s.clone()),
                (Some(given), default) => {
                    return Err(format!("parameter `{}`: {given:?} does not match its declared type ({default:?})", d.name));
                }
            };
            if let Some(v) = numeric(&value)
                && (v.is_nan() || d.min.is_some_and(|m| v < m) || d.max.is_some_and(|m| v > m))
            {
                let bound = |b: Option<f64>| b.map_or("unbounded".to_string(), |x| x.to_string());
                return Err(format!("parameter `{}` = {v} is outside [{}, {}]", d.name, bound(d.min), bound(d.max)));
            }
            Ok(Param { name: d.name.clone(), value })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Running,
    Quarantined,
}

struct Slot {
    name: Arc<str>,
    spec: PluginSpec,
    prepared: PreparedPlugin,
    descriptor: Descriptor,
    instance: Option<PluginInstance>,
    health: Health,
    reason: Option<String>,
    quarantined_at_ms: Option<u64>,
    restarts: u32,
    next_restart: Option<Instant>,
    /// Counters of instances that have ended (faulted or swapped out).
    finished: CallStats,
    faults: u64,
    alarms: u64,
    last_alarm: Option<Alarm>,
    swaps: u32,
    /// Market time of the next `on-timer` call, for plugins that declared a timer.
    next_timer: Option<Timestamp>,
}

/// One plugin's health and counters (the engine adds its book for `stratbox plugin list`).
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub version: String,
    pub roles: Vec<&'static str>,
    pub health: Health,
    pub reason: Option<String>,
    pub quarantined_at_ms: Option<u64>,
    pub restarts: u32,
    pub next_restart_in_ms: Option<u64>,
    pub contract: String,
    pub hash: String,
    pub size: usize,
    pub stats: CallStats,
    pub faults: u64,
    pub alarms: u64,
    pub last_alarm: Option<String>,
    pub swaps: u32,
    pub limits: Option<PluginLimits>,
    pub dropped_log_lines: u64,
    /// Rows the current instance ran through the host's models.
    pub inference_rows: u64,
}

/// How long events waited while a swap took place, and what moved.
#[derive(Debug, Clone, Serialize)]
pub struct SwapReport {
    #[serde(with = "stratbox_contract::util::duration_ms")]
    pub held: Duration,
    pub state_bytes: usize,
    pub from_version: String,
    pub to_version: String,
}

fn alarm_level(l: AlarmLevel) -> &'static str {
    match l {
        AlarmLevel::Normal => "normal",
        AlarmLevel::Elevated => "elevated",
        AlarmLevel::Severe => "severe",
        AlarmLevel::Critical => "critical",
    }
}

pub fn role_names(roles: Roles) -> Vec<&'static str> {
    let mut v = Vec::new();
    if roles.contains(Roles::STRATEGY) {
        v.push("strategy");
    }
    if roles.contains(Roles::STOP_POLICY) {
        v.push("stop-policy");
    }
    if roles.contains(Roles::ANOMALY_DETECTOR) {
        v.push("anomaly-detector");
    }
    v
}

/// Intents by the plugin that asked for them.
pub type PluginIntents = Vec<(Arc<str>, Vec<Intent>)>;

/// The running plugins.
pub struct Supervisor {
    factory: Arc<PluginFactory>,
    slots: Vec<Slot>,
    /// Plugins quarantined since the last drain, with their order policy.
    notices: Vec<(Arc<str>, OrderPolicy)>,
}

impl Supervisor {
    pub fn new(factory: Arc<PluginFactory>) -> Self {
        Self { factory, slots: Vec::new(), notices: Vec::new() }
    }

    pub fn factory(&self) -> &Arc<PluginFactory> {
        &self.factory
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| &*s.name == name)
    }

    /// Adds a started plugin.
    pub fn install(&mut self, started: Started) -> Result<(), StartError> {
        if self.index(&started.name).is_some() {
            return Err(StartError::Duplicate(started.name.to_string()));
        }
        tracing::info!(plugin = %started.name, version = %started.descriptor.version,
            roles = ?role_names(started.descriptor.roles), "plugin running");
        self.slots.push(Slot {
            name: started.name,
            spec: started.spec,
            prepared: started.prepared,
            descriptor: started.descriptor,
            instance: Some(started.instance),
            health: Health::Running,
            reason: None,
            quarantined_at_ms: None,
            restarts: 0,
            next_restart: None,
            finished: CallStats::default(),
            faults: 0,
            alarms: 0,
            last_alarm: None,
            swaps: 0,
            next_timer: None,
        });
        Ok(())
    }

    /// Removes a plugin; returns its final view and its order policy.
    pub fn unload(&mut self, name: &str) -> Result<(PluginStatus, OrderPolicy), StartError> {
        let i = self.index(name).ok_or_else(|| StartError::NoSuchPlugin(name.to_owned()))?;
        let view = self.view(&self.slots[i]);
        let slot = self.slots.remove(i);
        tracing::info!(plugin = name, "plugin unloaded");
        Ok((view, slot.spec.on_fault))
    }

    /// Replaces a running plugin with `next`, handing over its state. Between
    /// two events: the caller holds the event loop for exactly this call. If
    /// the successor rejects the state, the current plugin keeps running.
    pub fn swap(&mut self, name: &str, mut next: Started) -> Result<SwapReport, StartError> {
        let i = self.index(name).ok_or_else(|| StartError::NoSuchPlugin(name.to_owned()))?;
        if self.slots[i].health != Health::Running {
            return Err(StartError::NotRunning(name.to_owned()));
        }
        let began = Instant::now();
        let exported = self.slots[i].instance.as_mut().expect("running slot has an instance").export_state();
        let state = match exported {
            Ok(s) => s,
            Err(fault) => {
                self.quarantine_at(i, fault.clone());
                return Err(StartError::Fault { name: name.to_owned(), fault });
            }
        };
        next.instance.state_mut().refresh_kv_usage();
        next.instance.import_state(&state).map_err(|fault| StartError::Fault { name: name.to_owned(), fault })?;
        let slot = &mut self.slots[i];
        let old = slot.instance.replace(next.instance).expect("running slot has an instance");
        let held = began.elapsed();
        slot.finished.add(&old.stats);
        let from_version = std::mem::replace(&mut slot.descriptor, next.descriptor).version;
        slot.prepared = next.prepared;
        slot.spec = next.spec;
        slot.swaps += 1;
        let report = SwapReport { held, state_bytes: state.len(), from_version, to_version: slot.descriptor.version.clone() };
        tracing::info!(plugin = name, from = %report.from_version, to = %report.to_version,
            held_us = held.as_micros() as u64, state_bytes = state.len(), "plugin swapped");
        Ok(report)
    }

    fn quarantine_at(&mut self, i: usize, fault: Fault) {
        let slot = &mut self.slots[i];
        if let Some(instance) = slot.instance.take() {
            slot.finished.add(&instance.stats);
        }
        slot.faults += 1;
        slot.health = Health::Quarantined;
        let reason = fault.to_string();
        let policy = slot.spec.restart;
        slot.next_restart = (slot.restarts < policy.max_restarts).then(|| {
            let backoff = policy.backoff_ms.saturating_mul(1u64 << slot.restarts.min(20)).min(policy.max_backoff_ms);
            Instant::now() + Duration::from_millis(backoff)
        });
        tracing::warn!(plugin = %slot.name, %reason, restarts = slot.restarts,
            restart_scheduled = slot.next_restart.is_some(), "plugin quarantined");
        slot.reason = Some(reason);
        slot.quarantined_at_ms = Some(unix_ms());
        self.notices.push((slot.name.clone(), slot.spec.on_fault));
    }

    /// Quarantines `name` for a fault found outside a call (an invalid intent).
    pub fn quarantine(&mut self, name: &str, fault: Fault) {
        if let Some(i) = self.index(name).filter(|&i| self.slots[i].health == Health::Running) {
            self.quarantine_at(i, fault);
        }
    }

    /// Plugins quarantined since the last call, with their order policy.
    pub fn take_notices(&mut self) -> Vec<(Arc<str>, OrderPolicy)> {
        std::mem::take(&mut self.notices)
    }

    /// Restarts quarantined plugins whose backoff has elapsed.
    pub fn maintain(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.health != Health::Quarantined || slot.next_restart.is_none_or(|t| t > now) {
                continue;
            }
            slot.restarts += 1;
            slot.next_restart = None;
            match self.factory.start(slot.spec.clone(), slot.prepared.clone()) {
                Ok(started) => {
                    tracing::info!(plugin = %slot.name, attempt = slot.restarts, "plugin restarted");
                    slot.instance = Some(started.instance);
                    slot.health = Health::Running;
                }
                Err(e) => {
                    let fault = match e {
                        StartError::Fault { fault, .. } => fault,
                        other => Fault::InitRefused(other.to_string()),
                    };
                    self.quarantine_at(i, fault);
                }
            }
        }
    }

    /// Calls `f` on every running plugin with `role` (with its name and spec);
    /// a fault quarantines that plugin only.
    fn each<R>(&mut self, role: Roles, mut f: impl FnMut(&str, &PluginSpec, &mut PluginInstance) -> Result<R, Fault>) -> Vec<(Arc<str>, R)> {
        let mut out = Vec::new();
        for i in 0..self.slots.len() {
            let Slot { name, spec, descriptor, instance, .. } = &mut self.slots[i];
            let Some(instance) = instance.as_mut().filter(|_| descriptor.roles.contains(role)) else { continue };
            match f(name, spec, instance) {
                Ok(r) => out.push((name.clone(), r)),
                Err(fault) => self.quarantine_at(i, fault),
            }
        }
        out
    }

    /// Bars closing together, to every strategy (one call per plugin).
    pub fn on_bars(&mut self, bars: &[Bar], batch: &BarBatch) -> Vec<(Arc<str>, Vec<Intent>)> {
        self.each(Roles::STRATEGY, |_, _, p| if let [bar] = bars { p.on_bar(*bar) } else { p.on_bars(batch) })
    }

    /// Top of book, to every strategy and anomaly detector.
    pub fn on_quote(&mut self, quote: Quote) -> (PluginIntents, Vec<(Arc<str>, Alarm)>) {
        let intents = self.each(Roles::STRATEGY, |_, _, p| p.on_quote(quote));
        let alarms = self.each(Roles::ANOMALY_DETECTOR, |_, _, p| p.observe_quote(quote));
        (intents, self.record_alarms(alarms))
    }

    /// Fires the timers due at market time `now`. A timer fires at most once
    /// per call, however many periods were skipped (no burst after a gap).
    pub fn on_timers(&mut self, now: Timestamp) -> Vec<(Arc<str>, Vec<Intent>)> {
        const NANOS: i64 = 1_000_000_000;
        let mut due = Vec::new();
        for slot in &mut self.slots {
            let period = i64::from(slot.descriptor.timer_secs) * NANOS;
            if period == 0 || slot.health != Health::Running || !slot.descriptor.roles.contains(Roles::STRATEGY) {
                continue;
            }
            let next = *slot.next_timer.get_or_insert(now - now.rem_euclid(period) + period);
            if now >= next {
                slot.next_timer = Some(now - now.rem_euclid(period) + period);
                due.push(slot.name.clone());
            }
        }
        if due.is_empty() {
            return Vec::new();
        }
        self.each(Roles::STRATEGY, |name, _, p| if due.iter().any(|d| &**d == name) { p.on_timer(now) } else { Ok(Vec::new()) })
    }

    /// Fills, each to the strategy that owns it.
    pub fn on_fills(&mut self, fills: &[(Arc<str>, Fill)]) -> Vec<(Arc<str>, Vec<Intent>)> {
        self.each(Roles::STRATEGY, |name, _, p| {
            let mut intents = Vec::new();
            for (_, fill) in fills.iter().filter(|(owner, _)| &**owner == name) {
                intents.extend(p.on_fill(*fill)?);
            }
            Ok(intents)
        })
    }

    /// Every stop policy sees each bar for each open position it protects.
    /// Returns (policy, protected plugin, decision).
    pub fn on_position_bars(&mut self, bars: &[Bar]) -> Vec<(Arc<str>, Arc<str>, StopDecision)> {
        let world = self.factory.world.clone();
        let mut out = Vec::new();
        for (policy, decisions) in self.each(Roles::STOP_POLICY, |name, spec, p| {
            let targets = &spec.protects;
            let mut decided = Vec::new();
            for bar in bars {
                for (holder, position) in world.holders(bar.instrument) {
                    if &*holder == name || !(targets.is_empty() || targets.iter().any(|t| *t == *holder)) {
                        continue;
                    }
                    decided.extend(p.stop_on_bar(*bar, position)?.into_iter().map(|d| (holder.clone(), d)));
                }
            }
            Ok(decided)
        }) {
            out.extend(decisions.into_iter().map(|(holder, d)| (policy.clone(), holder, d)));
        }
        out
    }

    /// Bars closing together, to every anomaly detector; returns the alarms raised.
    pub fn observe_bars(&mut self, batch: &BarBatch) -> Vec<(Arc<str>, Alarm)> {
        let alarms = self.each(Roles::ANOMALY_DETECTOR, |_, _, p| p.observe_bars(batch));
        self.record_alarms(alarms)
    }

    fn record_alarms(&mut self, alarms: Vec<(Arc<str>, Option<Alarm>)>) -> Vec<(Arc<str>, Alarm)> {
        let alarms: Vec<(Arc<str>, Alarm)> = alarms.into_iter().filter_map(|(n, a)| a.map(|a| (n, a))).collect();
        for (name, alarm) in &alarms {
            if let Some(slot) = self.slots.iter_mut().find(|s| &s.name == name) {
                slot.alarms += 1;
                slot.last_alarm = Some(alarm.clone());
            }
        }
        alarms
    }

    /// Bytes in a running plugin's private store.
    pub fn kv_used(&self, name: &str) -> Option<u64> {
        self.slots.iter().find(|s| &*s.name == name)?.instance.as_ref()?.state().kv_used()
    }

    /// Every installed plugin's name (cheap, unlike [`Supervisor::views`]).
    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.slots.iter().map(|s| &s.name)
    }

    pub fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.health == Health::Running).count()
    }

    fn view(&self, s: &Slot) -> PluginStatus {
        let mut stats = s.finished;
        if let Some(i) = &s.instance {
            stats.add(&i.stats);
        }
        PluginStatus {
            name: s.name.to_string(),
            version: s.descriptor.version.clone(),
            roles: role_names(s.descriptor.roles),
            health: s.health,
            reason: s.reason.clone(),
            quarantined_at_ms: s.quarantined_at_ms,
            restarts: s.restarts,
            next_restart_in_ms: s.next_restart.map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
            contract: s.prepared.info.contract_version.clone(),
            hash: s.prepared.info.hash[..12].to_owned(),
            size: s.prepared.info.size,
            stats,
            faults: s.faults,
            alarms: s.alarms,
            last_alarm: s.last_alarm.as_ref().map(|a| format!("{}: {}", alarm_level(a.level), a.reason)),
            swaps: s.swaps,
            limits: s.instance.as_ref().map(|i| i.state().limits),
            dropped_log_lines: s.instance.as_ref().map_or(0, |i| i.state().dropped_log_lines()),
            inference_rows: s.instance.as_ref().map_or(0, |i| i.state().inference_rows),
        }
    }

    pub fn views(&self) -> Vec<PluginStatus> {
        self.slots.iter().map(|s| self.view(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(params: &[(&str, ParamInput)]) -> PluginSpec {
        let mut s = PluginSpec::new("x.wasm");
        for (k, v) in params {
            s = s.param(k, v.clone());
        }
        s
    }

    fn declared() -> Vec<ParamSpec> {
        vec![
            ParamSpec { name: "fast".into(), description: String::new(), default: ParamValue::Integer(10), min: Some(1.0), max: Some(100.0) },
            ParamSpec { name: "size".into(), description: String::new(), default: ParamValue::Number(1.5), min: Some(0.0), max: None },
        ]
    }

    #[test]
    fn parameters_resolve_with_defaults_types_and_ranges() {
        let p = resolve_params(&declared(), &spec(&[("size", ParamInput::Integer(3))])).unwrap();
        assert_eq!(p[0].value, ParamValue::Integer(10));
        assert_eq!(p[1].value, ParamValue::Number(3.0), "integers widen to numbers");
        let e = resolve_params(&declared(), &spec(&[("slow", ParamInput::Integer(3))])).unwrap_err();
        assert_eq!(e, "unknown parameter `slow` (it declares: fast, size)");
        let e = resolve_params(&declared(), &spec(&[("fast", ParamInput::Integer(0))])).unwrap_err();
        assert_eq!(e, "parameter `fast` = 0 is outside [1, 100]");
        let e = resolve_params(&declared(), &spec(&[("fast", ParamInput::Number(2.5))])).unwrap_err();
        assert!(e.contains("does not match its declared type"), "{e}");
    }
}
