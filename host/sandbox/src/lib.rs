//! The sandbox: compiling, checking and instantiating plugin components, and
//! supervising them while they run.
//!
//! It is responsible for everything a plugin can reach: the imports of the
//! WIT world are implemented here and nowhere else (`host_state.rs`), over a
//! read-only [`WorldView`] the engine hands it. It must never see credentials,
//! the network, the market store or the broker: a plugin's intents leave this
//! crate as values for the engine to hand to the order path, which alone
//! decides what becomes an order. This crate depends on the contract only.
//!
//! One [`Sandbox`] per host holds the wasmtime `Engine` (fuel metering, epoch
//! interruption, pooling allocator), the `Linker` with exactly the imports of
//! the WIT world, and the compiled-component cache. [`Sandbox::prepare`] runs
//! the load-time checks and produces an `InstancePre` once per component;
//! [`Sandbox::instantiate`] makes a [`PluginInstance`] with its own `Store`.

pub mod bounds;
mod cache;
mod engine;
mod host_state;
mod instance;
mod limits;
mod loader;
mod models;
mod spec;
mod supervisor;
mod world;

use std::path::{Path, PathBuf};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store};

pub use cache::{CacheOutcome, ComponentCache, content_hash};
pub use engine::{EPOCH_TICK, EpochTicker, MAX_WASM_STACK, Metering, PoolSize, build_engine};
pub use host_state::{HostState, IntentFlood, LOG_FLOOD_FACTOR, MAX_KEY_BYTES, ImportCosts, PluginKv};
pub use instance::{CallStats, Fault, PluginInstance};
pub use limits::{LimitOverrides, PluginLimits};
pub use spec::{OrderPolicy, ParamInput, PluginSpec, RestartPolicy};
pub use supervisor::{Health, PluginFactory, PluginIntents, PluginStatus, StartError, Started, Supervisor, SwapReport, resolve_params, role_names};
pub use world::{EmptyWorld, WorldView};
pub use models::{ModelProvider, NoModels};
pub use stratbox_contract::stratbox::plugin::inference::{Budget, InferenceError, ModelInfo, ShapeMismatch};
pub use loader::{CONTRACT_PACKAGE, CONTRACT_VERSION, ComponentInfo, GRANTED_IMPORTS, LoadError, check_binary, check_contract_version};

/// Host-wide settings of the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Limits a plugin gets when neither it nor the operator says otherwise.
    pub defaults: PluginLimits,
    /// Ceilings no plugin or operator setting can exceed.
    pub maxima: PluginLimits,
    /// Largest component file accepted.
    pub max_component_bytes: usize,
    /// Compiled-component cache directory; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    pub pool: PoolSize,
    pub metering: Metering,
    /// Fuel charged for the host's work in imports.
    pub import_costs: ImportCosts,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            defaults: PluginLimits::default(),
            maxima: PluginLimits::host_maxima(),
            max_component_bytes: 32 << 20,
            cache_dir: None,
            pool: PoolSize::default(),
            metering: Metering::FuelAndEpoch,
            import_costs: ImportCosts::default(),
        }
    }
}

/// A component that passed every load-time check, ready to instantiate.
#[derive(Clone)]
pub struct PreparedPlugin {
    pre: stratbox_contract::PluginPre<HostState>,
    pub info: ComponentInfo,
    pub cache: Option<CacheOutcome>,
}

/// The shared compilation and instantiation machinery.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    settings: SandboxSettings,
    _ticker: Option<EpochTicker>,
}

impl Sandbox {
    pub fn new(settings: SandboxSettings) -> Result<Self, LoadError> {
        let engine = build_engine(&settings.maxima, settings.pool, settings.metering).map_err(|e| LoadError::Compile(format!("engine configuration: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        stratbox_contract::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let cache = match &settings.cache_dir {
            Some(dir) => Some(ComponentCache::open(dir).map_err(|source| LoadError::Read { path: dir.clone(), source })?),
            None => None,
        };
        let ticker = settings.metering.epoch().then(|| EpochTicker::start(&engine));
        Ok(Self { engine, linker, cache, settings, _ticker: ticker })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    /// Reads and prepares a component file.
    pub fn prepare_file(&self, path: &Path) -> Result<PreparedPlugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        self.prepare(&bytes)
    }

    /// Checks, compiles (or loads from the cache) and links a component.
    pub fn prepare(&self, bytes: &[u8]) -> Result<PreparedPlugin, LoadError> {
        check_binary(bytes, self.settings.max_component_bytes)?;
        let hash = content_hash(bytes);
        let (component, cache) = match &self.cache {
            Some(c) => {
                let (component, outcome) = c.load_or_compile(&self.engine, bytes, &hash).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                (component, Some(outcome))
            }
            None => (wasmtime::component::Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?, None),
        };
        let info = loader::check_world(&self.engine, &component, hash, bytes.len())?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = stratbox_contract::PluginPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        Ok(PreparedPlugin { pre, info, cache })
    }

    /// A fresh instance with its own store, under `state.limits`.
    pub fn instantiate(&self, prepared: &PreparedPlugin, state: HostState) -> Result<PluginInstance, Fault> {
        let mut store = Store::new(&self.engine, state);
        store.data_mut().costs = self.settings.import_costs;
        store.limiter(|s| s);
        let limits = store.data().limits;
        let metering = self.settings.metering;
        if metering.epoch() {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(limits.wall_clock_cap_ms().unwrap_or(u64::MAX / 2));
        }
        // Imports charge fuel for their work as they return to the guest.
        let metered = metering.fuel();
        store.call_hook(move |store, hook| match hook {
            wasmtime::CallHook::ReturningFromHost => HostState::settle_import(store, metered),
            _ => Ok(()),
        });
        if metering.fuel() {
            store.set_fuel(limits.fuel_per_callback).map_err(|e| Fault::Host { detail: e.to_string(), callback: "instantiate" })?;
        }
        let bindings = prepared.pre.instantiate(&mut store).map_err(|e| {
            let detail = format!("{e:#}");
            match e.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::OutOfFuel) => Fault::OutOfFuel { budget: limits.fuel_per_callback, callback: "instantiate", host_calls: 0 },
                Some(_) => Fault::Trap { trap: detail, callback: "instantiate" },
                // Not a trap: the exports' types differ from this host's
                // bindings (a build from another revision of the contract).
                None => Fault::ContractMismatch { detail },
            }
        })?;
        Ok(PluginInstance::new(store, bindings, metering))
    }
}
