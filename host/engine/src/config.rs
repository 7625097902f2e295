//! The host configuration (`stratbox run --config FILE`, TOML). Every field
//! has a default; `stratbox run` with no file runs the built-in simulator
//! with the bundled plugins, paper trading.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use stratbox_trading::PaperConfig;
use stratbox_capital::CapitalFeedConfig;
use stratbox_trading::{AlertConfig, RiskConfig};
use stratbox_market::{ReplayConfig, SimulatorConfig};
use stratbox_sandbox::{Metering, PluginLimits};
pub use stratbox_sandbox::{OrderPolicy, ParamInput, PluginSpec, RestartPolicy};

/// A plugin path naming one of the binary's bundled plugins: `bundled:sma-cross`.
pub const BUNDLED_PREFIX: &str = "bundled:";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deterministic: fuel caps only, no wall-clock deadlines.
    Backtest,
    #[default]
    Paper,
    Live,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeedConfig {
    Simulator(SimulatorConfig),
    /// Bars imported with `stratbox data import`, from `<data_dir>/market`.
    Replay(ReplayConfig),
    /// Capital.com's price stream (credentials from the encrypted store).
    Capital(Box<CapitalFeedConfig>),
}

impl Mode {
    /// The metering profile a mode uses unless configured otherwise.
    pub fn default_metering(self) -> Metering {
        match self {
            // Backtests cap CPU by fuel alone; their epochs only drive the
            // wall-clock backstop (see `PluginLimits::backstop_ms`).
            Mode::Backtest | Mode::Paper => Metering::FuelAndEpoch,
            Mode::Live => Metering::Epoch,
        }
    }
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig::Simulator(SimulatorConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Limits of a plugin that asks for nothing and has no overrides.
    pub defaults: PluginLimits,
    /// Ceilings for every plugin.
    pub maxima: PluginLimits,
    pub max_component_bytes: usize,
    /// Running plugins plus those being swapped in or restarted.
    pub max_instances: u32,
    /// CPU metering; by default fuel in backtests, epochs live, both in paper mode.
    pub metering: Option<Metering>,
    /// sled's page cache for the plugins' key-value stores (one database), in bytes.
    pub store_cache_bytes: u64,
    /// Compiled components, keyed by content and engine (default
    /// `<data_dir>/compiled`). Hosts on one machine may share one: a Python
    /// plugin takes seconds to compile and 10-20 ms to load from it.
    pub cache_dir: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            defaults: PluginLimits::default(),
            maxima: PluginLimits::host_maxima(),
            max_component_bytes: 32 << 20,
            max_instances: 64,
            metering: None,
            store_cache_bytes: 8 << 20,
            cache_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    pub enabled: bool,
    /// Loopback address; port 0 picks a free one (written to `<data_dir>/control.json`).
    pub listen: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self { enabled: true, listen: "127.0.0.1:0".into() }
    }
}

/// The live dashboard (`stratbox-dashboard`), served by the running host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    pub enabled: bool,
    /// Where it listens. A busy port falls back to a free one (the URL is
    /// printed and written to `<data_dir>/dashboard.json`). Any address but
    /// loopback is served over TLS only.
    pub listen: String,
    /// PEM certificate chain and private key for TLS; beyond loopback without
    /// them a self-signed pair is generated into `<data_dir>/dashboard-tls/`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Host names (with port) the dashboard answers to besides loopback ones,
    /// e.g. `trading.example.net:8765`: any other `Host` header is refused
    /// (a page from another site cannot reach it by DNS rebinding).
    pub hosts: Vec<String>,
    /// Research reports listed in the Reports view (default `<data_dir>/reports`).
    pub reports_dir: Option<PathBuf>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self { enabled: true, listen: "127.0.0.1:8765".into(), tls_cert: None, tls_key: None, hosts: Vec::new(), reports_dir: None }
    }
}

/// The execution journal (`<data_dir>/journal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Rebuild positions, orders and trading states from the journal at start.
    /// Default: on a live market feed (Capital.com), where the market went on
    /// while the host was down; off on the simulator and replays, which start
    /// their market afresh (the old journal is kept as `journal.previous`).
    pub resume: Option<bool>,
    /// sled's flush interval: the most of the journal a crash can lose.
    pub flush_every_ms: u64,
    /// Market seconds between two points of the equity curve (0: none).
    pub equity_every_secs: u64,
    /// sled's page cache for the journal, in bytes. The journal is written
    /// far more than read (a restart reads it once), so a small cache is
    /// enough; sled's own default (1 GiB) lets a long run grow towards it.
    pub cache_bytes: u64,
    /// Keep the journal (and the plugins' key-value stores) in memory, for
    /// research runs: nothing survives the run, nothing is written to disk,
    /// and many runs can share one data directory (for its compiled plugins).
    pub in_memory: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self { resume: None, flush_every_ms: 50, equity_every_secs: 60, cache_bytes: 16 << 20, in_memory: false }
    }
}

impl HostConfig {
    /// Whether this run resumes from the journal (see [`JournalConfig::resume`]).
    pub fn resumes_journal(&self) -> bool {
        self.journal.resume.unwrap_or(matches!(self.feed, FeedConfig::Capital(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub feed: FeedConfig,
    /// Wall-clock milliseconds between events (0: as fast as possible).
    pub pace_ms: u64,
    /// Seconds between status lines (0: none).
    pub status_secs: u64,
    /// Bars of history kept per instrument and period.
    pub history_depth: usize,
    pub broker: PaperConfig,
    pub risk: RiskConfig,
    pub alerts: AlertConfig,
    pub journal: JournalConfig,
    /// When set (`[capital_broker]`), orders go to the Capital.com account of
    /// the feed instead of the paper broker; needs the Capital.com feed.
    pub capital_broker: Option<stratbox_trading::CapitalBrokerConfig>,
    pub sandbox: SandboxConfig,
    pub control: ControlConfig,
    pub dashboard: DashboardConfig,
    #[serde(rename = "plugin")]
    pub plugins: Vec<PluginSpec>,
    /// ONNX models served to plugins through the `inference` import, each
    /// granted to the plugins named (`[[model]]`: name, path, grant).
    #[serde(rename = "model")]
    pub models: Vec<stratbox_ml::ModelDecl>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Paper,
            data_dir: PathBuf::from("stratbox-data"),
            feed: FeedConfig::default(),
            pace_ms: 20,
            status_secs: 2,
            history_depth: 1_000,
            broker: PaperConfig::default(),
            risk: RiskConfig::default(),
            alerts: AlertConfig::default(),
            journal: JournalConfig::default(),
            capital_broker: None,
            sandbox: SandboxConfig::default(),
            control: ControlConfig::default(),
            dashboard: DashboardConfig::default(),
            plugins: Vec::new(),
            models: Vec::new(),
        }
    }
}

impl HostConfig {
    /// Reads a TOML file; relative paths (plugins, `data_dir`) are taken from the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config: HostConfig = toml::from_str(&text).map_err(|e| {
            // One line: where, then what (toml's own Display draws a multi-line snippet).
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let start = before.rfind('\n').map_or(0, |i| i + 1);
                let source_line = text[start..].lines().next().unwrap_or("").trim();
                format!("line {line}, column {} (`{source_line}`): ", before.len() - start + 1)
            });
            ConfigError::Invalid { path: path.to_owned(), message: format!("{}{}", at.unwrap_or_default(), e.message().trim()) }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        for p in &mut config.plugins {
            // `bundled:NAME` is a plugin the binary carries (the CLI resolves it).
            if p.path.is_relative() && !p.path.to_string_lossy().starts_with(BUNDLED_PREFIX) {
                p.path = base.join(&p.path);
            }
        }
        for p in [&mut config.dashboard.tls_cert, &mut config.dashboard.tls_key, &mut config.dashboard.reports_dir].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for m in &mut config.models {
            if m.path.is_relative() {
                m.path = base.join(&m.path);
            }
        }
        config.check_spans().map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })?;
        if let Some(v) = &config.risk.var_limit {
            v.check().map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })?;
        }
        Ok(config)
    }

    /// Spans of time must fit the market clock (nanoseconds in an `i64`):
    /// each is bounded where it enters, and saturates inside.
    pub fn check_spans(&self) -> Result<(), String> {
        const DAY_MS: u64 = 86_400_000;
        let year = stratbox_contract::util::MAX_SPAN_SECS;
        let spans = [
            ("risk.circuit_breaker.halt_secs", self.risk.circuit_breaker.halt_secs, year),
            ("journal.equity_every_secs", self.journal.equity_every_secs, year),
            ("broker.latency_ms", self.broker.latency_ms, DAY_MS),
            ("risk.duplicate_window_ms", self.risk.duplicate_window_ms, DAY_MS),
        ];
        match spans.iter().find(|(_, v, max)| v > max) {
            Some((key, v, max)) => Err(format!("`{key}` is {v}: at most {max}")),
            None => Ok(()),
        }
    }

    /// The main job's default: simulator, paper broker, the bundled plugins
    /// from `plugin_dir` (a strategy, a stop policy protecting it, a detector).
    pub fn bundled(plugin_dir: &Path) -> Self {
        let spec = |file: &str| PluginSpec::new(plugin_dir.join(file));
        let mut stop = spec("stops.wasm");
        stop.protects = vec!["sma-cross".into()];
        Self { plugins: vec![spec("sma_cross.wasm"), stop, spec("zscore_guard.wasm")], ..Self::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            r#"
mode = "backtest"
pace_ms = 0
[feed]
kind = "simulator"
instruments = 3
seed = 9
[sandbox.defaults]
memory_bytes = 1048576
[[plugin]]
path = "plugins/sma_cross.wasm"
params = { fast = 5, slow = 20, quantity = 2.5, allow_short = true }
limits = { fuel_per_callback = 1000 }
on_fault = "keep"
"#,
        )
        .unwrap();
        let c = HostConfig::load(&path).unwrap();
        assert_eq!(c.mode, Mode::Backtest);
        assert_eq!(c.data_dir, dir.path().join("stratbox-data"), "relative to the config file");
        let FeedConfig::Simulator(sim) = &c.feed else { panic!("simulator expected") };
        assert_eq!((sim.instruments, sim.seed, sim.bar_secs), (3, 9, 60));
        assert_eq!(c.sandbox.defaults.memory_bytes, 1 << 20);
        let p = &c.plugins[0];
        assert_eq!(p.path, dir.path().join("plugins/sma_cross.wasm"));
        assert_eq!(p.resolved_name(), "sma-cross");
        assert_eq!(p.params["fast"], ParamInput::Integer(5));
        assert_eq!(p.params["quantity"], ParamInput::Number(2.5));
        assert_eq!(p.params["allow_short"], ParamInput::Flag(true));
        assert_eq!(p.on_fault, OrderPolicy::Keep);

        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs");
        let capital = HostConfig::load(&examples.join("capital.toml")).unwrap();
        let FeedConfig::Capital(feed) = &capital.feed else { panic!("capital feed expected") };
        assert_eq!((feed.epics.len(), feed.rest.base_url.as_str(), feed.collector.backups_kept), (8, "http://127.0.0.1:18080", 7));
        for example in ["paper.toml", "backtest.toml", "replay.toml"] {
            HostConfig::load(&examples.join(example)).unwrap_or_else(|e| panic!("{example}: {e}"));
        }

        let paper = HostConfig::load(&examples.join("paper.toml")).unwrap();
        assert_eq!(paper.risk.var_limit.as_ref().map(|v| v.max_fraction), Some(0.05));
        std::fs::write(&path, "[risk.var_limit]\nconfidence = 1.5\n").unwrap();
        let e = HostConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("risk.var_limit.confidence 1.5"), "{e}");

        std::fs::write(&path, "pace_ms = 0\nfuel = 3\n").unwrap();
        let e = HostConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("host.toml") && e.contains("unknown field `fuel`") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn spans_past_the_market_clock_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        for (table, key) in [("[risk.circuit_breaker]", "halt_secs"), ("[journal]", "equity_every_secs"), ("[broker]", "latency_ms"), ("[risk]", "duplicate_window_ms")] {
            std::fs::write(&path, format!("{table}\n{key} = 9223372036854775807\n")).unwrap();
            let e = HostConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("at most"), "{e}");
        }
        std::fs::write(&path, "[risk.circuit_breaker]\nhalt_secs = 3600\n").unwrap();
        assert_eq!(HostConfig::load(&path).unwrap().risk.circuit_breaker.halt_secs, 3600);
    }
}
