//! `stratbox run`: the host, on the simulator, a replay or Capital.com, until the feed
//! ends, the duration passes, Ctrl-C, or `stratbox shutdown`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use stratbox_trading::{Broker, CapitalBroker};
use stratbox_capital::CapitalFeed;
use stratbox_engine::config::{FeedConfig, HostConfig};
use stratbox_engine::ControlServer;
use stratbox_dashboard::{DashboardServer, HostHandle};
use stratbox_market::{Feed, ReplayFeed, SimulatedMarket};
use stratbox_engine::{Host, HostError, RunOptions, RunSummary, format_time};

use crate::capital::CapitalArgs;
use crate::credentials::load_capital;
use crate::print_json;

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// Where the bundled plugins are read from: `STRATBOX_PLUGIN_DIR` when set,
/// else the components embedded in this binary at build time, written to
/// Points `bundled:NAME` plugin paths of `config` at the bundled plugin's file.
pub(crate) fn resolve_bundled(config: &mut HostConfig) -> Result<()> {
    for p in &mut config.plugins {
        let path = p.path.to_string_lossy().into_owned();
        if let Some(name) = path.strip_prefix(stratbox_engine::config::BUNDLED_PREFIX) {
            let file = bundled_plugin_dir(&config.data_dir)?.join(format!("{}.wasm", name.replace('-', "_")));
            if !file.exists() {
                bail!("plugin `{path}`: the binary bundles no plugin `{name}`");
            }
            p.path = file;
        }
    }
    Ok(())
}

/// `<data_dir>/bundled-plugins/` (rewritten only when they differ).
pub(crate) fn bundled_plugin_dir(data_dir: &Path) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STRATBOX_PLUGIN_DIR") {
        return Ok(dir.into());
    }
    if bundled::BUNDLED.is_empty() {
        bail!(
            "this binary was built without its bundled plugins (there was no wasm toolchain when it was built): \
             build them with `scripts/build-plugins.sh` and set STRATBOX_PLUGIN_DIR=target/plugins"
        );
    }
    let dir = data_dir.join("bundled-plugins");
    stratbox_contract::util::create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (file, component) in bundled::BUNDLED {
        let path = dir.join(file);
        if std::fs::read(&path).ok().as_deref() != Some(*component) {
            stratbox_contract::util::write_atomic(&path, component, false).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(dir)
}

#[allow(clippy::too_many_arguments)]
pub fn run(config: Option<PathBuf>, data_dir: Option<PathBuf>, duration: Option<f64>, json: bool, feed: Option<String>, orders: Option<String>, capital: CapitalArgs) -> Result<()> {
    let mut config = match &config {
        Some(path) => HostConfig::load(path)?,
        None => {
            let dir = bundled_plugin_dir(data_dir.as_deref().unwrap_or(&HostConfig::default().data_dir))?;
            let config = HostConfig::bundled(&dir);
            if let Some(missing) = config.plugins.iter().find(|p| !p.path.exists()) {
                bail!("bundled plugin {} not found (STRATBOX_PLUGIN_DIR={}): build them with `scripts/build-plugins.sh`", missing.path.display(), dir.display());
            }
            config
        }
    };
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    resolve_bundled(&mut config)?;
    match feed.as_deref() {
        None => {}
        Some("simulator") => config.feed = FeedConfig::default(),
        Some("capital") => config.feed = FeedConfig::Capital(Box::new(capital.feed_config()?)),
        Some(other) => bail!("unknown --feed `{other}`: `simulator` or `capital` (a replay is configured in a config file)"),
    }
    match orders.as_deref() {
        None => {}
        Some("paper") => config.capital_broker = None,
        Some("capital") => config.capital_broker = Some(config.capital_broker.clone().unwrap_or_default()),
        Some(other) => bail!("unknown --orders `{other}`: `paper` or `capital`"),
    }
    if config.capital_broker.is_some() && !matches!(config.feed, FeedConfig::Capital(_)) {
        bail!("orders to Capital.com (`[capital_broker]` or --orders capital) need the Capital.com feed (--feed capital --epics ...)");
    }
    let duration = duration.map(|s| if s.is_finite() && s >= 0.0 { Ok(Duration::from_secs_f64(s)) } else { Err(anyhow::anyhow!("--duration {s}: expected a number of seconds >= 0")) }).transpose()?;
    let mut session = None;
    let feed: Box<dyn Feed> = match &config.feed {
        FeedConfig::Simulator(sim) => {
            tracing::info!(
                mode = ?config.mode, instruments = sim.instruments, bar_secs = sim.bar_secs, seed = sim.seed, pace_ms = config.pace_ms,
                plugins = config.plugins.len(), "starting the host on the built-in simulated market"
            );
            Box::new(SimulatedMarket::new(*sim))
        }
        FeedConfig::Capital(c) => {
            // A live feed paces itself.
            config.pace_ms = 0;
            let credentials = load_capital(&config.data_dir)?;
            let collector = if c.collect { Some(crate::capital::collector(&config.data_dir, c)?) } else { None };
            let feed = CapitalFeed::connect(c, credentials, collector)?;
            session = Some((feed.session(), c.epics.clone()));
            tracing::info!(mode = ?config.mode, instruments = feed.instruments().len(), url = %c.rest.base_url, plugins = config.plugins.len(), "starting the host on Capital.com's price stream");
            Box::new(feed)
        }
        FeedConfig::Replay(replay) => {
            let feed = ReplayFeed::open(&config.data_dir.join("market"), replay)?;
            tracing::info!(
                mode = ?config.mode, instruments = feed.instruments().len(), period_secs = replay.period_secs, pace_ms = config.pace_ms,
                plugins = config.plugins.len(), "starting the host on a replay of stored bars"
            );
            Box::new(feed)
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut host = match (session, config.capital_broker.clone()) {
        (Some(((rest, runtime), epics)), Some(broker)) => {
            tracing::warn!(url = %rest.config().base_url, "orders go to the Capital.com account");
            let make = move |world| {
                CapitalBroker::start(rest, runtime, epics, world, broker).map(|b| Box::new(b) as Box<dyn Broker>).map_err(|e| HostError::Broker(e.to_string()))
            };
            Host::with_broker(config.clone(), feed, make, rx)?
        }
        _ => Host::new(config.clone(), feed, rx)?,
    };
    let control = if config.control.enabled {
        Some(ControlServer::start(&config.control.listen, &config.data_dir, host.factory(), tx.clone())?)
    } else {
        None
    };
    let _dashboard = if config.dashboard.enabled {
        let handle = HostHandle {
            data_dir: config.data_dir.clone(),
            risk: config.risk.clone(),
            control_token: control.as_ref().map(|c| c.token.clone()),
            factory: host.factory(),
            commands: tx.clone(),
            journal: host.order_path.journal_reader(),
        };
        let dashboard = DashboardServer::start(&config.dashboard, handle)?;
        eprintln!("dashboard: {}", dashboard.endpoint.url);
        // The link's one-time code rides in the URL's fragment, which no server logs. It is
        // shown on a terminal only: when stderr goes to a file or a journal, it stays in the
        // 0600 file beside the control token.
        let file = config.data_dir.join(stratbox_dashboard::DASHBOARD_FILE);
        match &dashboard.endpoint.login_url {
            Some(link) if std::io::IsTerminal::is_terminal(&std::io::stderr()) => eprintln!("  log in once with {link}"),
            _ => eprintln!("  the one-time login link is in {} (login_url)", file.display()),
        }
        eprintln!("  or log in with the token in {}", config.data_dir.join(stratbox_engine::CONTROL_FILE).display());
        if let Some(cert) = &dashboard.generated_cert {
            eprintln!(
                "  TLS with a self-signed certificate ({}; SHA-256 {}): set dashboard.tls_cert and tls_key to use your own",
                cert.display(),
                dashboard.endpoint.tls_fingerprint_sha256.as_deref().unwrap_or("")
            );
        }
        Some(dashboard)
    } else {
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());
    let summary = host.run(&RunOptions { duration, stop });
    host.close_commands();
    if json { print_json(&summary) } else { print_summary(&summary); Ok(()) }
}

pub(crate) fn watch_ctrl_c(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            eprintln!("\nstopping (Ctrl-C)...");
            stop.store(true, Ordering::Relaxed);
        }
    });
}

fn print_summary(s: &RunSummary) {
    let st = &s.status;
    println!("\n== run summary ==");
    println!(
        "{} events ({} bars) up to {} in {:.1} s; {} intents ({} invalid), {} stop decisions, {} alarms; {} orders, {} fills ({} protective), {} swaps",
        st.stats.events, st.stats.bars, format_time(st.market_time), st.uptime.as_secs_f64(), st.stats.path.intents, st.stats.path.invalid_intents,
        st.stats.path.stop_decisions, st.stats.path.alarms, st.broker.orders, st.broker.fills, st.broker.protective_exits, st.stats.swaps
    );
    let risk = &st.risk;
    println!(
        "risk: {} ({}), equity {:.2}, drawdown {:.2}%, {} orders checked, {} refused {:?}",
        format!("{:?}", risk.global.state).to_lowercase(),
        risk.global.reason,
        risk.equity,
        risk.drawdown * 100.0,
        risk.stats.checked,
        st.stats.path.risk_rejected,
        risk.stats.rejected
    );
    for r in &st.stats.refused {
        println!("refused: {r}");
    }
    let rows: Vec<PluginRow> = s
        .plugins
        .iter()
        .map(|p| PluginRow {
            name: p.name.clone(),
            health: format!("{:?}", p.health).to_lowercase(),
            version: p.version.clone(),
            roles: p.roles.join(","),
            calls: p.stats.calls,
            fuel_used: p.stats.fuel_used,
            intents: p.stats.intents,
            faults: p.faults,
            restarts: p.restarts.into(),
            pnl: p.book.realised_pnl + p.book.unrealised_pnl,
            reason: p.reason.clone(),
            last_alarm: p.last_alarm.clone().map(|a| (p.alarms, a)),
        })
        .collect();
    print_plugin_table(&rows);
}

/// One plugin's line in the run summary and in `stratbox plugin list`.
pub(crate) struct PluginRow {
    pub name: String,
    pub health: String,
    pub version: String,
    pub roles: String,
    pub calls: u64,
    pub fuel_used: u64,
    pub intents: u64,
    pub faults: u64,
    pub restarts: u64,
    pub pnl: f64,
    pub reason: Option<String>,
    /// (alarms raised, the last one).
    pub last_alarm: Option<(u64, String)>,
}

/// The plugins as an aligned table, each column as wide as its widest cell.
pub(crate) fn print_plugin_table(rows: &[PluginRow]) {
    let header = ["plugin", "health", "version", "roles", "calls", "fuel used", "intents", "faults", "restarts", "P&L"];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(), r.health.clone(), r.version.clone(), r.roles.clone(), r.calls.to_string(), r.fuel_used.to_string(),
                r.intents.to_string(), r.faults.to_string(), r.restarts.to_string(), format!("{:.2}", r.pnl),
            ]
        })
        .collect();
    let width: Vec<usize> = (0..header.len()).map(|c| cells.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0)).collect();
    // Text left, numbers right.
    let line = |row: &[&str]| {
        let out: Vec<String> = row.iter().enumerate().map(|(c, v)| if c < 4 { format!("{v:<w$}", w = width[c]) } else { format!("{v:>w$}", w = width[c]) }).collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(&header);
    for (r, c) in rows.iter().zip(&cells) {
        line(&c.iter().map(String::as_str).collect::<Vec<_>>());
        if let Some(reason) = &r.reason {
            println!("    quarantined: {reason}");
        }
        if let Some((n, alarm)) = &r.last_alarm {
            println!("    last alarm ({n} in all): {alarm}");
        }
    }
}
