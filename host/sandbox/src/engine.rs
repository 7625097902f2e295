//! The one wasmtime `Engine` every plugin shares, and the epoch ticker that
//! gives live callbacks their wall-clock deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::PluginLimits;

/// Length of one epoch tick: the resolution of callback deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Wasm call-stack budget per instance; unbounded recursion traps here.
pub const MAX_WASM_STACK: usize = 512 << 10;

/// How CPU is capped, engine-wide. Instrumentation is compiled into the code,
/// so each profile is its own engine (and its own compiled-cache entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metering {
    /// Fuel only: deterministic, the same cap in every replay (backtests).
    Fuel,
    /// Epoch deadlines only: wall-clock caps at the lowest cost (live).
    Epoch,
    /// Both: fuel accounting and wall-clock deadlines (paper trading).
    FuelAndEpoch,
}

impl Metering {
    pub fn fuel(self) -> bool {
        matches!(self, Metering::Fuel | Metering::FuelAndEpoch)
    }

    pub fn epoch(self) -> bool {
        matches!(self, Metering::Epoch | Metering::FuelAndEpoch)
    }
}

/// Engine-wide sizing of the pooling allocator.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Component instances alive at once (running plugins, plus those being
    /// swapped in or restarted).
    pub component_instances: u32,
}

impl Default for PoolSize {
    fn default() -> Self {
        Self { component_instances: 64 }
    }
}

/// Builds the engine: the `metering` profile, the pooling allocator sized
/// from the host's maxima.
pub fn build_engine(maxima: &PluginLimits, pool: PoolSize, metering: Metering) -> wasmtime::Result<Engine> {
    let mut pooling = PoolingAllocationConfig::default();
    let n = pool.component_instances;
    pooling
        .total_component_instances(n)
        .total_core_instances(n * maxima.max_instances)
        .max_core_instances_per_component(maxima.max_instances)
        .total_memories(n * 2)
        .max_memories_per_component(2)
        .max_memories_per_module(1)
        .total_tables(n * maxima.max_tables)
        .max_tables_per_component(maxima.max_tables)
        .table_elements(maxima.max_table_elements as usize)
        .max_memory_size(maxima.memory_bytes as usize)
        // Keep a plugin's first pages resident between instantiations: cheap restarts and swaps.
        .linear_memory_keep_resident(64 << 10);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(metering.fuel())
        .epoch_interruption(metering.epoch())
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config)
}

/// Background thread that advances the engine's epoch every [`EPOCH_TICK`].
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, engine) = (stop.clone(), engine.clone());
        let thread = std::thread::Builder::new()
            .name("stratbox-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
