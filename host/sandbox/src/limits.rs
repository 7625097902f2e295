//! Per-plugin resource limits: what the plugin asks for, what the operator
//! configures, clamped by what the host allows.

use serde::{Deserialize, Serialize};

use stratbox_contract::ResourceRequest;

/// The limits one plugin instance runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Linear memory, in bytes, across all of the instance's memories.
    pub memory_bytes: u64,
    /// Fuel (about one unit per wasm instruction) per callback: the
    /// deterministic CPU cap, identical in every replay.
    pub fuel_per_callback: u64,
    /// Wall-clock deadline per callback in live and paper mode, in milliseconds
    /// (epoch interruption; 0 disables it, as backtests do).
    pub deadline_ms: u64,
    /// Wall-clock backstop per callback where there is no deadline (backtests),
    /// in milliseconds: far beyond what the fuel budget allows on any sane
    /// machine, it only catches what fuel cannot see. 0 disables it.
    pub backstop_ms: u64,
    /// Intents one callback may return.
    pub max_intents_per_callback: u32,
    /// Log bytes per wall-clock second; excess lines are dropped, and a plugin
    /// attempting 16 times its budget in one second is quarantined.
    pub log_bytes_per_sec: u64,
    /// Core instances the component may create. A Rust plugin has a few; a
    /// Python one (componentize-py: CPython, its libc and extension modules
    /// linked at instantiation) 38 with componentize-py 0.25.1, with about
    /// 5,700 table elements and 12 MB or more of linear memory.
    pub max_instances: u32,
    /// Tables the component may create.
    pub max_tables: u32,
    /// Elements in any one table.
    pub max_table_elements: u32,
    /// Bytes (keys + values) in the plugin's key-value store.
    pub kv_quota_bytes: u64,
    /// Fuel one callback may spend on inference (`inference.predict`, each
    /// row at its model's fixed cost); past it, predict returns
    /// `budget-exceeded`. Counted in every mode, so live runs refuse exactly
    /// what a backtest refuses.
    pub inference_fuel_per_callback: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            fuel_per_callback: 50_000_000,
            deadline_ms: 50,
            backstop_ms: 2_000,
            max_intents_per_callback: 1_024,
            log_bytes_per_sec: 64 << 10,
            max_instances: 48,
            max_tables: 16,
            max_table_elements: 100_000,
            kv_quota_bytes: 1 << 20,
            inference_fuel_per_callback: 25_000_000,
        }
    }
}

impl PluginLimits {
    /// The host's ceilings when none are configured.
    pub fn host_maxima() -> Self {
        Self {
            memory_bytes: 512 << 20,
            fuel_per_callback: 10_000_000_000,
            deadline_ms: 10_000,
            backstop_ms: 60_000,
            max_intents_per_callback: 100_000,
            log_bytes_per_sec: 1 << 20,
            max_instances: 64,
            max_tables: 32,
            max_table_elements: 1_000_000,
            kv_quota_bytes: 256 << 20,
            inference_fuel_per_callback: 10_000_000_000,
        }
    }

    /// Applies what the plugin requested (zero fields mean "no preference"),
    /// then what the operator configured, then clamps everything to `maxima`.
    pub fn resolve(defaults: &Self, requested: &ResourceRequest, configured: &LimitOverrides, maxima: &Self) -> Self {
        let pick = |default: u64, asked: u64, set: Option<u64>| set.unwrap_or(if asked > 0 { asked } else { default });
        let l = Self {
            memory_bytes: pick(defaults.memory_bytes, requested.memory_bytes, configured.memory_bytes),
            fuel_per_callback: pick(defaults.fuel_per_callback, requested.fuel_per_callback, configured.fuel_per_callback),
            deadline_ms: configured.deadline_ms.unwrap_or(defaults.deadline_ms),
            backstop_ms: configured.backstop_ms.unwrap_or(defaults.backstop_ms),
            max_intents_per_callback: pick(
                defaults.max_intents_per_callback.into(),
                requested.max_intents_per_callback.into(),
                configured.max_intents_per_callback.map(u64::from),
            ) as u32,
            log_bytes_per_sec: configured.log_bytes_per_sec.unwrap_or(defaults.log_bytes_per_sec),
            kv_quota_bytes: configured.kv_quota_bytes.unwrap_or(defaults.kv_quota_bytes),
            inference_fuel_per_callback: configured.inference_fuel_per_callback.unwrap_or(defaults.inference_fuel_per_callback),
            ..*defaults
        };
        l.clamp_to(maxima)
    }

    /// The wall-clock cap of one callback in milliseconds: the deadline, or
    /// without one the backstop; `None` when neither is set.
    pub fn wall_clock_cap_ms(&self) -> Option<u64> {
        Some(if self.deadline_ms > 0 { self.deadline_ms } else { self.backstop_ms }).filter(|&ms| ms > 0)
    }

    /// Every field at most the corresponding one of `maxima`.
    pub fn clamp_to(&self, maxima: &Self) -> Self {
        Self {
            memory_bytes: self.memory_bytes.min(maxima.memory_bytes),
            fuel_per_callback: self.fuel_per_callback.min(maxima.fuel_per_callback),
            deadline_ms: self.deadline_ms.min(maxima.deadline_ms),
            backstop_ms: self.backstop_ms.min(maxima.backstop_ms),
            max_intents_per_callback: self.max_intents_per_callback.min(maxima.max_intents_per_callback),
            log_bytes_per_sec: self.log_bytes_per_sec.min(maxima.log_bytes_per_sec),
            max_instances: self.max_instances.min(maxima.max_instances),
            max_tables: self.max_tables.min(maxima.max_tables),
            max_table_elements: self.max_table_elements.min(maxima.max_table_elements),
            kv_quota_bytes: self.kv_quota_bytes.min(maxima.kv_quota_bytes),
            inference_fuel_per_callback: self.inference_fuel_per_callback.min(maxima.inference_fuel_per_callback),
        }
    }
}

/// Limits an operator sets for one plugin in the config; unset fields defer
/// to the plugin's request or the host default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOverrides {
    pub memory_bytes: Option<u64>,
    pub fuel_per_callback: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub backstop_ms: Option<u64>,
    pub max_intents_per_callback: Option<u32>,
    pub log_bytes_per_sec: Option<u64>,
    pub kv_quota_bytes: Option<u64>,
    pub inference_fuel_per_callback: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_honoured_then_overridden_then_clamped() {
        let asked = ResourceRequest { memory_bytes: 8 << 20, fuel_per_callback: 0, max_intents_per_callback: 5_000_000 };
        let d = PluginLimits::default();
        let l = PluginLimits::resolve(&d, &asked, &LimitOverrides::default(), &PluginLimits::host_maxima());
        assert_eq!(l.memory_bytes, 8 << 20, "request honoured");
        assert_eq!(l.fuel_per_callback, d.fuel_per_callback, "zero request means default");
        assert_eq!(l.max_intents_per_callback, 100_000, "clamped to the host maximum");
        let set = LimitOverrides { memory_bytes: Some(4 << 30), ..Default::default() };
        let l = PluginLimits::resolve(&d, &asked, &set, &PluginLimits::host_maxima());
        assert_eq!(l.memory_bytes, 512 << 20, "operator value clamped too");
    }
}
