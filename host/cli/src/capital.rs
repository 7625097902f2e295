//! `stratbox collect` (Capital.com prices into the market store) and
//! `stratbox mock capital` (the local Capital.com server).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use stratbox_capital_mock::{Faults, MockAccount, MockConfig, MockReplay, MockServer, default_epics};
use stratbox_capital::{CapitalFeed, CapitalFeedConfig, Collector, RestConfig, StreamConfig};
use stratbox_market::{Feed, FeedPoll, MarketEvent};
use stratbox_market::store::{MarketStore, PriceSource, StoreConfig};

use crate::credentials::{capital_url, load_capital};

/// Where Capital.com is and what to stream (shared by `collect` and `run --feed capital`).
#[derive(Args, Debug, Clone)]
pub struct CapitalArgs {
    /// Epics to stream, comma-separated (e.g. US500,EURUSD,GOLD).
    #[arg(long, value_delimiter = ',')]
    pub epics: Vec<String>,
    /// REST base URL (default: the demo host; a mock: http://127.0.0.1:PORT).
    #[arg(long)]
    pub url: Option<String>,
    /// Use the live host instead of the demo.
    #[arg(long, conflicts_with = "url")]
    pub live: bool,
    /// Bar resolution: MINUTE, MINUTE_5, MINUTE_15, MINUTE_30, HOUR, HOUR_4, DAY, WEEK.
    #[arg(long, default_value = "MINUTE")]
    pub resolution: String,
}

impl CapitalArgs {
    pub fn feed_config(&self) -> Result<CapitalFeedConfig> {
        if self.epics.is_empty() {
            bail!("give the epics to stream with --epics A,B,...");
        }
        Ok(CapitalFeedConfig {
            epics: self.epics.clone(),
            rest: RestConfig { base_url: capital_url(self.url.clone(), self.live), ..RestConfig::default() },
            stream: StreamConfig { resolution: self.resolution.clone(), ..StreamConfig::default() },
            ..CapitalFeedConfig::default()
        })
    }
}

/// Opens the market store of `data_dir` for a collector.
pub fn collector(data_dir: &Path, config: &CapitalFeedConfig) -> Result<Collector> {
    let store = MarketStore::open(&data_dir.join("market"), StoreConfig::default())?;
    Ok(Collector::new(store, config.collector.clone()))
}

pub fn collect(args: CapitalArgs, duration: Option<f64>, no_quotes: bool, backup_every_secs: Option<u64>, data_dir: &Path) -> Result<()> {
    let mut config = args.feed_config()?;
    config.collector.store_quotes = !no_quotes;
    if backup_every_secs.is_some() {
        config.collector.backup_every_secs = backup_every_secs.filter(|s| *s > 0);
    }
    let credentials = load_capital(data_dir)?;
    let collector = collector(data_dir, &config)?;
    let mut feed = CapitalFeed::connect(&config, credentials, Some(collector))?;
    tracing::info!(epics = config.epics.len(), url = %config.rest.base_url, store = %data_dir.join("market").display(), "collecting");
    let stop = Arc::new(AtomicBool::new(false));
    crate::run::watch_ctrl_c(stop.clone());
    let deadline = duration.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut next_status = Instant::now() + Duration::from_secs(10);
    let (mut quotes, mut bars) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        match feed.poll_event(Duration::from_millis(100)) {
            FeedPoll::Event(MarketEvent::Quote(_)) => quotes += 1,
            FeedPoll::Event(MarketEvent::Bars(b)) => bars += b.len() as u64,
            FeedPoll::Idle => {}
            FeedPoll::Ended => break,
        }
        if Instant::now() >= next_status {
            next_status += Duration::from_secs(10);
            let c = feed.collector().expect("collector").stats.clone();
            tracing::info!(quotes, bars, stored_quotes = c.quotes_stored, stored_bars = c.bars_stored, rejected = c.rejected, "collecting");
        }
    }
    let collector = feed.collector_mut().expect("collector");
    collector.finish()?;
    let c = collector.stats.clone();
    let s = feed.stream_stats();
    println!(
        "collected {} epics: {} quotes and {} bar sides stored ({} backfilled after reconnects), {} rejected into the quarantine; \
         {} connections, {} duplicates dropped, {} malformed frames skipped",
        feed.instruments().len(),
        c.quotes_stored,
        c.bars_stored,
        c.backfilled_bars_stored,
        c.rejected,
        s.connections.load(Ordering::Relaxed),
        s.duplicate_bars.load(Ordering::Relaxed),
        s.malformed_frames.load(Ordering::Relaxed),
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum MockCmd {
    /// A local Capital.com (REST + WebSocket) with simulated prices and faults on demand.
    Capital(MockArgs),
}

#[derive(Args)]
pub struct MockArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Number of epics, or a comma-separated list.
    #[arg(long, default_value = "50")]
    epics: String,
    /// Market seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start the market clock this many minutes in the past.
    #[arg(long, default_value_t = 0)]
    start_minutes_ago: i64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replay the bars of this market store instead of simulating (e.g. <data-dir>/market after `data import`).
    #[arg(long)]
    replay_store: Option<PathBuf>,
    /// With --replay-store: the bar period (seconds) and price source to replay.
    #[arg(long, default_value_t = 60)]
    replay_period: u32,
    #[arg(long, default_value = "trade")]
    replay_source: String,
    /// With --replay-store: full spread around the replayed prices, basis points.
    #[arg(long, default_value_t = 2.0)]
    spread_bps: f64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Fault: drop every stream this many ms after it opened.
    #[arg(long)]
    drop_every_ms: Option<u64>,
    /// Fault: every N ms, answer the next --rate-limit-burst requests with 429.
    #[arg(long)]
    rate_limit_every_ms: Option<u64>,
    #[arg(long, default_value_t = 3)]
    rate_limit_burst: u32,
    /// Fault: sessions expire this many ms after login.
    #[arg(long)]
    token_expiry_ms: Option<u64>,
    /// Fault: delay every REST response.
    #[arg(long)]
    slow_ms: Option<u64>,
    /// Fault: a malformed frame before every Nth push.
    #[arg(long)]
    malformed_every: Option<u64>,
    /// Fault: before every Nth quote push, a copy stamped a day ahead.
    #[arg(long)]
    future_frame_every: Option<u64>,
    /// Fault: these epics' markets are closed.
    #[arg(long, value_delimiter = ',')]
    closed: Vec<String>,
    /// Fault: every Nth dealing request is carried out, then answered 502.
    #[arg(long)]
    executed_then_502_every: Option<u64>,
    /// Fault: every Nth dealing request is carried out, then its reply is held back --lost-reply-ms.
    #[arg(long)]
    lost_reply_every: Option<u64>,
    #[arg(long, default_value_t = 15_000)]
    lost_reply_ms: u64,
    /// Fault: the activity history shows what happened only this many ms later.
    #[arg(long)]
    activity_lag_ms: Option<u64>,
}

pub fn mock(cmd: MockCmd) -> Result<()> {
    let MockCmd::Capital(a) = cmd;
    let listed = || a.epics.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect::<Vec<_>>();
    let (epics, replay) = match &a.replay_store {
        Some(store) => {
            let source = match a.replay_source.as_str() {
                "trade" => PriceSource::Trade,
                "bid" => PriceSource::Bid,
                "ask" => PriceSource::Ask,
                "mid" => PriceSource::Mid,
                other => bail!("--replay-source `{other}`: expected trade, bid, ask or mid"),
            };
            // A number of epics means "every stored symbol" in a replay.
            let epics = if a.epics.parse::<usize>().is_ok() { Vec::new() } else { listed() };
            (epics, Some(MockReplay { store: store.clone(), period_secs: a.replay_period, source, spread_bps: a.spread_bps }))
        }
        None => (a.epics.parse::<usize>().map(default_epics).unwrap_or_else(|_| listed()), None),
    };
    let account = MockAccount::default();
    let mut config = MockConfig {
        epics,
        replay,
        speed: a.speed,
        start_ms: Some(chrono::Utc::now().timestamp_millis() - a.start_minutes_ago * 60_000),
        faults: Faults {
            drop_stream_every_ms: a.drop_every_ms,
            rate_limit_every_ms: a.rate_limit_every_ms,
            rate_limit_burst: a.rate_limit_burst,
            token_expiry_ms: a.token_expiry_ms,
            slow_ms: a.slow_ms,
            malformed_every: a.malformed_every,
            future_frame_every: a.future_frame_every,
            closed_epics: a.closed,
            executed_then_502_every: a.executed_then_502_every,
            lost_reply_every: a.lost_reply_every,
            lost_reply_ms: a.lost_reply_ms,
            activity_lag_ms: a.activity_lag_ms,
        },
        account: account.clone(),
        ..MockConfig::default()
    };
    config.simulator.seed = a.seed;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let server = MockServer::start(config, &format!("127.0.0.1:{}", a.port)).await?;
        // The mock's account is public test data, not a secret.
        println!(
            "mock Capital.com on {} (stream {}connect); account: API key `{}`, identifier `{}`, password `{}`",
            server.base_url(),
            server.streaming_host(),
            account.api_key,
            account.identifier,
            account.password
        );
        let stop = async {
            match a.duration {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
                None => drop(tokio::signal::ctrl_c().await),
            }
        };
        stop.await;
        let s = server.stats();
        println!(
            "mock stopped: {} requests, {} logins, {} streams ({} dropped), {} quotes and {} bars pushed, {} answered 429",
            s.requests.load(Ordering::Relaxed),
            s.logins.load(Ordering::Relaxed),
            s.streams_opened.load(Ordering::Relaxed),
            s.streams_dropped.load(Ordering::Relaxed),
            s.quotes_sent.load(Ordering::Relaxed),
            s.bars_sent.load(Ordering::Relaxed),
            s.rate_limited.load(Ordering::Relaxed),
        );
        anyhow::Ok(())
    })
}
