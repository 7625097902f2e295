//! What a plugin's `Store` holds: its limits and budgets, and its narrow
//! handles on the host (clock, private store, read-only views). The import
//! implementations here are the whole of what a plugin can do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PluginLimits;
use stratbox_contract::stratbox::plugin::{clock, kv, log, market, orders, portfolio, types};
use stratbox_contract::{Bar, InstrumentId, Intent, LogLevel, OrderView, Position, Timestamp};
use crate::WorldView;

/// Longest key a plugin may store.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest log line kept; longer lines are cut (and counted in full).
pub const MAX_LOG_LINE: usize = 4 << 10;
/// A plugin attempting this many times its log budget in one second is quarantined.
pub const LOG_FLOOD_FACTOR: u64 = 16;

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
    /// The last error line the plugin logged (the SDK logs panic messages there).
    pub last_error: Option<String>,
    /// Intents submitted during the current callback.
    pub(crate) intents: Vec<Intent>,
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
            last_error: None,
            intents: Vec::new(),
        }
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
        let now = Instant::now();
        if now.duration_since(self.log.window_start) >= Duration::from_secs(1) {
            self.log.window_start = now;
            self.log.written = 0;
            self.log.attempted = 0;
        }
        let len = message.len() as u64;
        let budget = self.limits.log_bytes_per_sec;
        self.log.attempted += len;
        if self.log.attempted > budget.saturating_mul(LOG_FLOOD_FACTOR) {
            return Err(LogFlood { attempted: self.log.attempted, budget }.into());
        }
        if level == LogLevel::Error {
            self.last_error = Some(truncate(&message, MAX_LOG_LINE).to_owned());
        }
        if self.log.written + len > budget {
            self.log.dropped_lines += 1;
            return Ok(());
        }
        self.log.written += len;
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

fn truncate(s: &str, max: usize) -> &str {
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
        self.world.now()
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        let store = self.kv.as_ref()?;
        store.tree.get(key.as_bytes()).ok().flatten().map(|v| v.to_vec())
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
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
        let store = self.kv.as_mut().ok_or_else(|| kv::KvError::Unavailable("no store configured for this plugin".into()))?;
        if let Some(old) = store.tree.remove(key.as_bytes()).map_err(|e| kv::KvError::Unavailable(e.to_string()))? {
            store.used -= (key.len() + old.len()) as u64;
        }
        Ok(())
    }
}

impl portfolio::Host for HostState {
    fn positions(&mut self) -> Vec<Position> {
        self.world.positions(&self.plugin)
    }

    fn position_of(&mut self, instrument: InstrumentId) -> Option<Position> {
        self.world.position(&self.plugin, instrument)
    }

    fn open_orders(&mut self) -> Vec<OrderView> {
        self.world.open_orders(&self.plugin)
    }
}

impl market::Host for HostState {
    fn history(&mut self, instrument: InstrumentId, period_secs: u32, count: u32) -> Vec<Bar> {
        self.world.history(instrument, period_secs, count.min(10_000) as usize)
    }
}
