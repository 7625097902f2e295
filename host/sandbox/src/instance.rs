//! One running plugin: its `Store`, its bindings, the per-callback CPU
//! budget, and the translation of every way a call can fail into a [`Fault`].

use std::time::Instant;

use wasmtime::{Store, Trap};

use super::Metering;
use crate::bounds::{MAX_TEXT_BYTES, bound_descriptor, bounded};
use stratbox_contract::{Alarm, Bar, BarBatch, Descriptor, Fill, InitContext, Intent, Plugin, Position, Quote, StopDecision, Timestamp};
use super::host_state::{HostState, ImportFuelExhausted, IntentFlood, LogFlood, MemoryCapExceeded, TableCapExceeded};

/// Why a plugin was stopped. Every variant reads as a reason an operator can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    #[error("ran out of fuel: used its whole budget of {budget} in one callback (`{callback}`; {host_calls} of it charged for host calls)")]
    OutOfFuel { budget: u64, callback: &'static str, host_calls: u64 },
    #[error("missed its deadline: `{callback}` was still running after {deadline_ms} ms")]
    DeadlineExceeded { deadline_ms: u64, callback: &'static str },
    #[error("hit the backtest's wall-clock backstop: `{callback}` was still running after {backstop_ms} ms")]
    BackstopExceeded { backstop_ms: u64, callback: &'static str },
    #[error("{detail} (in `{callback}`)")]
    MemoryCap { detail: String, callback: &'static str },
    #[error("overflowed its call stack in `{callback}` (unbounded recursion?)")]
    StackOverflow { callback: &'static str },
    #[error("panicked in `{callback}`: {message}")]
    Panic { message: String, callback: &'static str },
    /// A Python plugin's uncaught exception; `traceback` is Python's own.
    #[error("raised an exception in `{callback}`: {traceback}")]
    Exception { traceback: String, callback: &'static str },
    #[error("trapped in `{callback}`: {trap}")]
    Trap { trap: String, callback: &'static str },
    #[error("{detail} (in `{callback}`)")]
    LogFlood { detail: String, callback: &'static str },
    #[error("submitted more than {limit} intents in one `{callback}` call (its limit)")]
    TooManyIntents { limit: u32, callback: &'static str },
    #[error("emitted an invalid intent: {0}")]
    InvalidIntent(String),
    #[error("refused to start: {0}")]
    InitRefused(String),
    #[error("could not take over its predecessor's state: {0}")]
    StateRejected(String),
    #[error("is not valid: {0}")]
    BadDescriptor(String),
    #[error("does not match the contract it names ({detail}); rebuild it against this SDK")]
    ContractMismatch { detail: String },
    #[error("host error in `{callback}`: {detail}")]
    Host { detail: String, callback: &'static str },
}

/// Counters of one instance (and, summed by the supervisor, of a plugin).
/// Fuel is the CPU measure (about one unit per wasm instruction); it is
/// counted when the engine meters fuel (backtest and paper modes).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CallStats {
    pub calls: u64,
    /// Fuel used in all, guest instructions and host calls together.
    pub fuel_used: u64,
    /// The part of `fuel_used` charged for host calls (imports).
    pub import_fuel: u64,
    pub intents: u64,
    /// Wall time of the slowest callback, in microseconds.
    pub max_call_us: u64,
}

impl CallStats {
    pub fn add(&mut self, o: &CallStats) {
        self.calls += o.calls;
        self.fuel_used += o.fuel_used;
        self.import_fuel += o.import_fuel;
        self.intents += o.intents;
        self.max_call_us = self.max_call_us.max(o.max_call_us);
    }
}

/// A live plugin instance.
pub struct PluginInstance {
    store: Store<HostState>,
    bindings: Plugin,
    metering: Metering,
    pub stats: CallStats,
}

impl PluginInstance {
    pub(crate) fn new(store: Store<HostState>, bindings: Plugin, metering: Metering) -> Self {
        Self { store, bindings, metering, stats: CallStats::default() }
    }

    /// The store data (limits, log counters).
    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    /// Mutable store data, e.g. to apply limits resolved after `describe`.
    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Runs one guest call under the plugin's fuel budget and deadline.
    fn call<R>(
        &mut self,
        callback: &'static str,
        f: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let limits = self.store.data().limits;
        if self.metering.fuel() {
            self.store.set_fuel(limits.fuel_per_callback).map_err(|e| Fault::Host { detail: e.to_string(), callback })?;
        }
        if self.metering.epoch() {
            // One tick is one millisecond; without a deadline, effectively never.
            self.store.set_epoch_deadline(limits.wall_clock_cap_ms().unwrap_or(u64::MAX / 2));
        }
        self.store.data_mut().intents.clear();
        self.store.data_mut().inference_spent = 0;
        let import_fuel_before = self.store.data().import_fuel;
        let began = Instant::now();
        let result = f(&self.bindings, &mut self.store);
        self.stats.max_call_us = self.stats.max_call_us.max(began.elapsed().as_micros() as u64);
        self.stats.calls += 1;
        let host_calls = self.store.data().import_fuel - import_fuel_before;
        self.stats.import_fuel += host_calls;
        if self.metering.fuel() {
            self.stats.fuel_used += limits.fuel_per_callback - self.store.get_fuel().unwrap_or(0);
        }
        result.map_err(|e| self.classify(e, callback, host_calls))
    }

    fn classify(&mut self, e: wasmtime::Error, callback: &'static str, host_calls: u64) -> Fault {
        let limits = self.store.data().limits;
        if e.downcast_ref::<ImportFuelExhausted>().is_some() {
            return Fault::OutOfFuel { budget: limits.fuel_per_callback, callback, host_calls };
        }
        if let Some(m) = e.downcast_ref::<MemoryCapExceeded>() {
            return Fault::MemoryCap { detail: m.to_string(), callback };
        }
        if let Some(t) = e.downcast_ref::<TableCapExceeded>() {
            return Fault::MemoryCap { detail: t.to_string(), callback };
        }
        if let Some(l) = e.downcast_ref::<LogFlood>() {
            return Fault::LogFlood { detail: l.to_string(), callback };
        }
        if let Some(f) = e.downcast_ref::<IntentFlood>() {
            return Fault::TooManyIntents { limit: f.limit, callback };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Fault::OutOfFuel { budget: limits.fuel_per_callback, callback, host_calls },
            // No live deadline set: what interrupted it was the backstop.
            Some(Trap::Interrupt) if limits.deadline_ms == 0 => Fault::BackstopExceeded { backstop_ms: limits.backstop_ms, callback },
            Some(Trap::Interrupt) => Fault::DeadlineExceeded { deadline_ms: limits.deadline_ms, callback },
            Some(Trap::StackOverflow) => Fault::StackOverflow { callback },
            Some(trap) => match self.store.data_mut().last_error.take() {
                // The SDK logs the panic message just before aborting.
                Some(line) if *trap == Trap::UnreachableCodeReached && line.starts_with("panic") => {
                    Fault::Panic { message: bounded(line, MAX_TEXT_BYTES), callback }
                }
                // The Python SDK logs `exception in <callback>: <traceback>` before re-raising (a trap).
                Some(line) if line.starts_with("exception in ") => {
                    let traceback = line.split_once(": ").map_or(line.as_str(), |(_, t)| t).to_owned();
                    Fault::Exception { traceback: bounded(traceback, MAX_TEXT_BYTES), callback }
                }
                _ => Fault::Trap { trap: trap.to_string(), callback },
            },
            None => Fault::Host { detail: format!("{e:#}"), callback },
        }
    }

    /// The intents submitted during the last call.
    fn take_intents(&mut self) -> Vec<Intent> {
        let intents = std::mem::take(&mut self.store.data_mut().intents);
        self.stats.intents += intents.len() as u64;
        intents
    }

    /// The plugin's descriptor, its strings bounded (see [`crate::bounds`]).
    pub fn describe(&mut self) -> Result<Descriptor, Fault> {
        let d = self.call("describe", |b, s| b.stratbox_plugin_lifecycle().call_describe(s))?;
        bound_descriptor(d).map_err(Fault::BadDescriptor)
    }

    pub fn init(&mut self, context: &InitContext) -> Result<(), Fault> {
        self.call("init", |b, s| b.stratbox_plugin_lifecycle().call_init(s, context))?
            .map_err(|e| Fault::InitRefused(bounded(e, MAX_TEXT_BYTES)))
    }

    pub fn export_state(&mut self) -> Result<Vec<u8>, Fault> {
        self.call("export-state", |b, s| b.stratbox_plugin_lifecycle().call_export_state(s))
    }

    pub fn import_state(&mut self, state: &[u8]) -> Result<(), Fault> {
        self.call("import-state", |b, s| b.stratbox_plugin_lifecycle().call_import_state(s, state))?
            .map_err(|e| Fault::StateRejected(bounded(e, MAX_TEXT_BYTES)))
    }

    pub fn on_bar(&mut self, bar: Bar) -> Result<Vec<Intent>, Fault> {
        self.call("on-bar", |b, s| b.stratbox_plugin_strategy().call_on_bar(s, bar))?;
        Ok(self.take_intents())
    }

    pub fn on_bars(&mut self, bars: &BarBatch) -> Result<Vec<Intent>, Fault> {
        self.call("on-bars", |b, s| b.stratbox_plugin_strategy().call_on_bars(s, bars))?;
        Ok(self.take_intents())
    }

    pub fn on_quote(&mut self, quote: Quote) -> Result<Vec<Intent>, Fault> {
        self.call("on-quote", |b, s| b.stratbox_plugin_strategy().call_on_quote(s, quote))?;
        Ok(self.take_intents())
    }

    pub fn on_fill(&mut self, fill: Fill) -> Result<Vec<Intent>, Fault> {
        self.call("on-fill", |b, s| b.stratbox_plugin_strategy().call_on_fill(s, fill))?;
        Ok(self.take_intents())
    }

    pub fn on_timer(&mut self, now: Timestamp) -> Result<Vec<Intent>, Fault> {
        self.call("on-timer", |b, s| b.stratbox_plugin_strategy().call_on_timer(s, now))?;
        Ok(self.take_intents())
    }

    pub fn stop_on_bar(&mut self, bar: Bar, position: Position) -> Result<Vec<StopDecision>, Fault> {
        let out = self.call("stop-policy.on-bar", |b, s| b.stratbox_plugin_stop_policy().call_on_bar(s, bar, position))?;
        let limit = self.store.data().limits.max_intents_per_callback;
        if out.len() > limit as usize {
            return Err(Fault::TooManyIntents { limit, callback: "stop-policy.on-bar" });
        }
        Ok(out)
    }

    pub fn observe_bars(&mut self, bars: &BarBatch) -> Result<Option<Alarm>, Fault> {
        let alarm = self.call("observe-bars", |b, s| b.stratbox_plugin_anomaly_detector().call_observe_bars(s, bars))?;
        self.bound_alarm(alarm, "observe-bars")
    }

    pub fn observe_quote(&mut self, quote: Quote) -> Result<Option<Alarm>, Fault> {
        let alarm = self.call("observe-quote", |b, s| b.stratbox_plugin_anomaly_detector().call_observe_quote(s, quote))?;
        self.bound_alarm(alarm, "observe-quote")
    }

    /// An alarm's reason is text the host logs and journals: it counts
    /// against the plugin's log budget in full, and is kept cut to size.
    fn bound_alarm(&mut self, alarm: Option<Alarm>, callback: &'static str) -> Result<Option<Alarm>, Fault> {
        let Some(mut alarm) = alarm else { return Ok(None) };
        self.store.data_mut().spend_log_budget(alarm.reason.len() as u64).map_err(|l| Fault::LogFlood { detail: l.to_string(), callback })?;
        alarm.reason = bounded(alarm.reason, MAX_TEXT_BYTES);
        Ok(Some(alarm))
    }
}
