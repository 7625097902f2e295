//! What a plugin's `Store` holds: its limits and budgets, and its narrow
//! handles on the host (clock, private store, read-only views). The import
//! implementations here are the whole of what a plugin can do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PluginLimits;
use stratbox_contract::stratbox::plugin::inference::{self, Budget, InferenceError, ModelInfo, ShapeMismatch};
use stratbox_contract::stratbox::plugin::{clock, kv, log, market, orders, portfolio, types};
use stratbox_contract::{Bar, InstrumentId, Intent, LogLevel, OrderView, Position, Timestamp};
use crate::{ModelProvider, NoModels, WorldView};

/// Longest key a plugin may store.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest log line kept; longer lines are cut (and counted in full).
pub const MAX_LOG_LINE: usize = 4 << 10;
/// A plugin attempting this many times its log budget in one second is quarantined.
pub const LOG_FLOOD_FACTOR: u64 = 16;

/// Fuel an import costs the plugin, for the host's work behind it. Fuel counts
/// guest instructions only, so without these a loop over a cheap-looking
/// import (`market.history` of 10,000 bars) would hold the host for seconds
/// inside one callback. The charges are fixed numbers, not timings, so a
/// backtest stays reproducible. They are sized so that a nanosecond of the
/// host's work (lowering included) costs what a nanosecond of guest code
/// burns, about 18 units on the reference machine: `cargo bench -p
/// stratbox-engine --bench host_calls` measures both and prints the
/// equivalents beside these numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportCosts {
    /// Any import: the crossing, argument lifting, the result's allocation.
    pub call: u64,
    /// Each bar `market.history` returns (read, copied, lowered into the guest).
    pub per_bar: u64,
    /// Each position or order view returned.
    pub per_record: u64,
    /// A key-value read, write or delete: a sled operation before any byte moves.
    pub kv_op: u64,
    /// Each key or value byte read or written.
    pub per_kv_byte: u64,
    /// Each byte of log or alarm text.
    pub per_text_byte: u64,
}

impl Default for ImportCosts {
    fn default() -> Self {
        Self { call: 5_000, per_bar: 1_700, per_record: 1_700, kv_op: 20_000, per_kv_byte: 4, per_text_byte: 16 }
    }
}

impl ImportCosts {
    /// Nothing charged: fuel counts guest instructions alone (the baseline
    /// the benchmark compares against; never a production setting).
    pub const NONE: Self = Self { call: 0, per_bar: 0, per_record: 0, kv_op: 0, per_kv_byte: 0, per_text_byte: 0 };
}

/// A memory growth beyond the plugin's cap (raised as a trap).
#[derive(Debug, thiserror::Error)]
#[error("linear memory cap hit: the plugin asked for {desired} bytes, its limit is {limit}")]
pub struct MemoryCapExceeded {
    pub desired: usize,
    pub limit: u64,
}

/// A table growth beyond the plugin's cap (raised as a trap).
#[derive(Debug, thiserror::Error)]
#[error("table cap hit: the plugin asked for {desired} elements, its limit is {limit}")]
pub struct TableCapExceeded {
    pub desired: usize,
    pub limit: u32,
}

/// An import's charge exceeded the fuel left in the callback (raised as a trap).
#[derive(Debug, thiserror::Error)]
#[error("import `{import}` cost {charge} fuel with {left} left")]
pub struct ImportFuelExhausted {
    pub import: &'static str,
    pub charge: u64,
    pub left: u64,
}

/// Sustained logging far over budget (raised as a trap).
#[derive(Debug, thiserror::Error)]
#[error("log flood: {attempted} bytes attempted within one second, budget {budget} bytes/s")]
pub struct LogFlood {
    pub attempted: u64,
    pub budget: u64,
}

/// More intents submitted in one callback than allowed (raised as a trap).
#[derive(Debug, thiserror::Error)]
#[error("submitted more than {limit} intents in one callback")]
pub struct IntentFlood {
    pub limit: u32,
}

/// A plugin's private key-value store: one sled tree, with a byte quota.
pub struct PluginKv {
    tree: sled::Tree,
    used: u64,
}

impl PluginKv {
    /// Opens the tree, measuring what it already holds against the quota.
    pub fn open(tree: sled::Tree) -> Self {
        let used = Self::measure(&tree);
        Self { tree, used }
    }

    /// Bytes of keys and values stored.
    pub fn used(&self) -> u64 {
        self.used
    }

    fn measure(tree: &sled::Tree) -> u64 {
        tree.iter().flatten().map(|(k, v)| (k.len() + v.len()) as u64).sum()
    }
}

/// Log accounting over one-second windows.
#[derive(Debug)]
struct LogBudget {
    window_start: Instant,
    written: u64,
    attempted: u64,
    dropped_lines: u64,
}

/// Per-plugin store data.
pub struct HostState {
    pub plugin: Arc<str>,
    pub limits: PluginLimits,
    world: Arc<dyn WorldView>,
    kv: Option<PluginKv>,
    log: LogBudget,
    models: Arc<dyn ModelProvider>,
    /// Models this instance resolved, by handle: the only ones it may run.
    resolved: Vec<ModelInfo>,
    /// Inference fuel spent in the current callback.
    pub(crate) inference_spent: u64,
    /// Rows run through models over the instance's life.
    pub(crate) inference_rows: u64,
    /// The last error line the plugin logged (the SDK logs panic messages there).
    pub last_error: Option<String>,
    /// Intents submitted during the current callback.
    pub(crate) intents: Vec<Intent>,
    /// Fuel owed for the import running now, taken from the store as it
    /// returns to the guest (see [`HostState::settle_import`]).
    pending_charge: (u64, &'static str),
    /// Fuel charged for imports over the instance's life.
    pub(crate) import_fuel: u64,
    pub(crate) costs: ImportCosts,
}

impl HostState {
    /// State for plugin `plugin`; `kv` is its tree (none: the store is unavailable).
    pub fn new(plugin: Arc<str>, limits: PluginLimits, world: Arc<dyn WorldView>, kv: Option<PluginKv>) -> Self {
        Self {
            plugin,
            limits,
            world,
            kv,
            log: LogBudget { window_start: Instant::now(), written: 0, attempted: 0, dropped_lines: 0 },
            models: Arc::new(NoModels),
            resolved: Vec::new(),
            inference_spent: 0,
            inference_rows: 0,
            last_error: None,
            intents: Vec::new(),
            pending_charge: (0, ""),
            import_fuel: 0,
            costs: ImportCosts::default(),
        }
    }

    /// Serves `models` to this plugin (none by default).
    pub fn with_models(mut self, models: Arc<dyn ModelProvider>) -> Self {
        self.models = models;
        self
    }

    /// Owes `fuel` for the work of `import`.
    fn charge(&mut self, import: &'static str, fuel: u64) {
        let (owed, _) = self.pending_charge;
        self.pending_charge = (owed.saturating_add(fuel), import);
    }

    /// Takes what the import just run owes from the fuel left in the
    /// callback; runs as each import returns to the guest (a wasmtime call
    /// hook, the one place that sees both the state and the fuel). Owing more
    /// than is left traps as running out of fuel.
    pub(crate) fn settle_import(mut store: wasmtime::StoreContextMut<'_, Self>, metered: bool) -> wasmtime::Result<()> {
        let (charge, import) = std::mem::take(&mut store.data_mut().pending_charge);
        if charge == 0 || !metered {
            return Ok(());
        }
        let left = store.get_fuel()?;
        if charge > left {
            store.set_fuel(0)?;
            store.data_mut().import_fuel += left;
            return Err(ImportFuelExhausted { import, charge, left }.into());
        }
        store.set_fuel(left - charge)?;
        store.data_mut().import_fuel += charge;
        Ok(())
    }

    /// Re-measures the store's usage: a successor started off the loop while
    /// its predecessor kept writing must count those writes against its quota.
    pub fn refresh_kv_usage(&mut self) {
        if let Some(kv) = &mut self.kv {
            kv.used = PluginKv::measure(&kv.tree);
        }
    }

    /// Bytes in the plugin's store, if it has one.
    pub fn kv_used(&self) -> Option<u64> {
        self.kv.as_ref().map(PluginKv::used)
    }

    /// Log lines dropped for exceeding the budget.
    pub fn dropped_log_lines(&self) -> u64 {
        self.log.dropped_lines
    }
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limits.memory_bytes {
            return Err(MemoryCapExceeded { desired, limit: self.limits.memory_bytes }.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limits.max_table_elements as usize {
            return Err(TableCapExceeded { desired, limit: self.limits.max_table_elements }.into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.max_instances as usize
    }

    fn tables(&self) -> usize {
        self.limits.max_tables as usize
    }

    fn memories(&self) -> usize {
        2
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.charge("log.log", self.costs.call + self.costs.per_text_byte * message.len() as u64);
        self.spend_log_budget(message.len() as u64)?;
        if level == LogLevel::Error {
            self.last_error = Some(truncate(&message, MAX_LOG_LINE).to_owned());
        }
        if self.log.written + message.len() as u64 > self.limits.log_bytes_per_sec {
            self.log.dropped_lines += 1;
            return Ok(());
        }
        self.log.written += message.len() as u64;
        let (plugin, line) = (&*self.plugin, truncate(&message, MAX_LOG_LINE));
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, "{line}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, "{line}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, "{line}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, "{line}"),
            LogLevel::Error => tracing::error!(target: "plugin", plugin, "{line}"),
        }
        Ok(())
    }
}

impl HostState {
    /// Counts `len` bytes of text (a log line or an alarm's reason) against
    /// the plugin's log budget; attempting [`LOG_FLOOD_FACTOR`] times the
    /// budget within one second is a flood.
    pub fn spend_log_budget(&mut self, len: u64) -> Result<(), LogFlood> {
        let now = Instant::now();
        if now.duration_since(self.log.window_start) >= Duration::from_secs(1) {
            self.log.window_start = now;
            self.log.written = 0;
            self.log.attempted = 0;
        }
        let budget = self.limits.log_bytes_per_sec;
        self.log.attempted += len;
        if self.log.attempted > budget.saturating_mul(LOG_FLOOD_FACTOR) {
            return Err(LogFlood { attempted: self.log.attempted, budget });
        }
        Ok(())
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl orders::Host for HostState {
    fn submit(&mut self, intent: Intent) -> wasmtime::Result<()> {
        self.charge("orders.submit", self.costs.call);
        let limit = self.limits.max_intents_per_callback;
        if self.intents.len() >= limit as usize {
            return Err(IntentFlood { limit }.into());
        }
        self.intents.push(intent);
        Ok(())
    }
}

impl clock::Host for HostState {
    fn now(&mut self) -> Timestamp {
        self.charge("clock.now", self.costs.call);
        self.world.now()
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.charge("kv.get", self.costs.call + self.costs.kv_op + self.costs.per_kv_byte * key.len() as u64);
        let store = self.kv.as_ref()?;
        let value = store.tree.get(key.as_bytes()).ok().flatten().map(|v| v.to_vec());
        self.charge("kv.get", self.costs.per_kv_byte * value.as_ref().map_or(0, |v| v.len() as u64));
        value
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
        self.charge("kv.set", self.costs.call + self.costs.kv_op + self.costs.per_kv_byte * (key.len() + value.len()) as u64);
        if key.len() > MAX_KEY_BYTES {
            return Err(kv::KvError::KeyTooLong(MAX_KEY_BYTES as u32));
        }
        let quota = self.limits.kv_quota_bytes;
        let store = self.kv.as_mut().ok_or_else(|| kv::KvError::Unavailable("no store configured for this plugin".into()))?;
        let old = store.tree.get(key.as_bytes()).map_err(|e| kv::KvError::Unavailable(e.to_string()))?;
        let old_len = old.map_or(0, |v| key.len() + v.len()) as u64;
        let used = store.used - old_len + (key.len() + value.len()) as u64;
        if used > quota {
            return Err(kv::KvError::QuotaExceeded(quota));
        }
        store.tree.insert(key.as_bytes(), value).map_err(|e| kv::KvError::Unavailable(e.to_string()))?;
        store.used = used;
        Ok(())
    }

    fn delete(&mut self, key: String) -> Result<(), kv::KvError> {
        self.charge("kv.delete", self.costs.call + self.costs.kv_op + self.costs.per_kv_byte * key.len() as u64);
        let store = self.kv.as_mut().ok_or_else(|| kv::KvError::Unavailable("no store configured for this plugin".into()))?;
        if let Some(old) = store.tree.remove(key.as_bytes()).map_err(|e| kv::KvError::Unavailable(e.to_string()))? {
            store.used -= (key.len() + old.len()) as u64;
        }
        Ok(())
    }
}

impl portfolio::Host for HostState {
    fn positions(&mut self) -> Vec<Position> {
        let out = self.world.positions(&self.plugin);
        self.charge("portfolio.positions", self.costs.call + self.costs.per_record * out.len() as u64);
        out
    }

    fn position_of(&mut self, instrument: InstrumentId) -> Option<Position> {
        self.charge("portfolio.position-of", self.costs.call + self.costs.per_record);
        self.world.position(&self.plugin, instrument)
    }

    fn open_orders(&mut self) -> Vec<OrderView> {
        let out = self.world.open_orders(&self.plugin);
        self.charge("portfolio.open-orders", self.costs.call + self.costs.per_record * out.len() as u64);
        out
    }
}

impl market::Host for HostState {
    fn history(&mut self, instrument: InstrumentId, period_secs: u32, count: u32) -> Vec<Bar> {
        let out = self.world.history(instrument, period_secs, count.min(10_000) as usize);
        self.charge("market.history", self.costs.call + self.costs.per_bar * out.len() as u64);
        out
    }
}

impl inference::Host for HostState {
    fn resolve(&mut self, name: String) -> Result<ModelInfo, InferenceError> {
        self.charge("inference.resolve", self.costs.call + self.costs.per_text_byte * name.len() as u64);
        let info = self.models.resolve(&self.plugin, &name)?;
        if !self.resolved.iter().any(|m| m.handle == info.handle) {
            self.resolved.push(info.clone());
        }
        Ok(info)
    }

    fn predict(&mut self, model: u32, rows: Vec<f32>) -> Result<Vec<f32>, InferenceError> {
        self.charge("inference.predict", self.costs.call);
        let Some(info) = self.resolved.iter().find(|m| m.handle == model) else {
            return Err(InferenceError::NotGranted(format!("handle {model} was not resolved by this plugin")));
        };
        let width = info.features as usize;
        if rows.is_empty() || !rows.len().is_multiple_of(width) {
            return Err(InferenceError::WrongShape(ShapeMismatch { features: info.features, values: rows.len() as u32 }));
        }
        if let Some(at) = rows.iter().position(|v| !v.is_finite()) {
            return Err(InferenceError::NonFinite(at as u32));
        }
        let n = (rows.len() / width) as u64;
        let needed = info.fuel_per_row.saturating_mul(n);
        let left = self.limits.inference_fuel_per_callback.saturating_sub(self.inference_spent);
        if needed > left {
            return Err(InferenceError::BudgetExceeded(Budget { needed, left }));
        }
        self.inference_spent += needed;
        self.inference_rows += n;
        self.charge("inference.predict", needed);
        self.models.predict(model, &rows).map_err(InferenceError::Backend)
    }
}
