//! `stratbox run`: the host, on the simulator, a replay or Capital.com, until the feed
//! ends, the duration passes, Ctrl-C, or `stratbox shutdown`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};

use stratbox_trading::{Broker, CapitalBroker};
use stratbox_capital::CapitalFeed;
use stratbox_engine::config::{BUNDLED_PLUGIN_DIR, FeedConfig, HostConfig};
use stratbox_engine::ControlServer;
use stratbox_market::{Feed, ReplayFeed, SimulatedMarket};
use stratbox_engine::{Host, HostError, RunOptions, RunSummary, format_time};

use crate::capital::CapitalArgs;
use crate::credentials::load_capital;
use crate::print_json;

#[allow(clippy::too_many_arguments)]
pub fn run(config: Option<PathBuf>, data_dir: Option<PathBuf>, duration: Option<f64>, json: bool, feed: Option<String>, orders: Option<String>, capital: CapitalArgs) -> Result<()> {
    let mut config = match &config {
        Some(path) => HostConfig::load(path)?,
        None => {
            let dir = std::env::var_os("STRATBOX_PLUGIN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(BUNDLED_PLUGIN_DIR));
            let config = HostConfig::bundled(&dir);
            if let Some(missing) = config.plugins.iter().find(|p| !p.path.exists()) {
                bail!(
                    "bundled plugin {} not found: build the bundled plugins first with `scripts/build-plugins.sh` \
                     (or set STRATBOX_PLUGIN_DIR)",
                    missing.path.display()
                );
            }
            config
        }
    };
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
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
    let _control = if config.control.enabled {
        Some(ControlServer::start(&config.control.listen, &config.data_dir, host.factory(), tx.clone())?)
    } else {
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());
    let summary = host.run(&RunOptions { duration, stop });
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
    println!("{:<14} {:<12} {:<18} {:>8} {:>14} {:>8} {:>6} {:>8} {:>12}", "plugin", "health", "roles", "calls", "fuel used", "intents", "faults", "restarts", "P&L");
    for p in &s.plugins {
        println!(
            "{:<14} {:<12} {:<18} {:>8} {:>14} {:>8} {:>6} {:>8} {:>12.2}",
            p.name, format!("{:?}", p.health).to_lowercase(), p.roles.join(","), p.stats.calls, p.stats.fuel_used, p.stats.intents,
            p.faults, p.restarts, p.book.realised_pnl + p.book.unrealised_pnl
        );
        if let Some(reason) = &p.reason {
            println!("    quarantined: {reason}");
        }
        if let Some(alarm) = &p.last_alarm {
            println!("    last alarm ({} in all): {alarm}", p.alarms);
        }
    }
}
