//! The live-path figure of the market-data issue: 50 instruments streaming
//! from the mock Capital.com WebSocket on 127.0.0.1 at 4 quotes per second
//! each (200 frames/s, staggered), measured from the frame read off the
//! socket to the event fully dispatched (every plugin callback returned).
//! Goal: p99 <= 1 ms (the original requirement was 100 ms).
//!
//! Three runs side by side, each `SECS` seconds:
//! 1. the feed alone (frame -> parsed, de-duplicated event), the baseline;
//! 2. the host with sma-cross and zscore-guard, paper mode, nothing stored;
//! 3. the same with the collector storing every quote and bar in sled.
//!
//! `cargo bench -p stratbox-engine --bench live`

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use stratbox_capital_mock::{MockAccount, MockConfig, MockServer};
use stratbox_capital::{CapitalFeed, CapitalFeedConfig, Collector, CollectorConfig, RestConfig};
use stratbox_engine::config::{HostConfig, Mode, PluginSpec};
use stratbox_capital::CapitalCredentials;
use stratbox_market::{Feed, FeedPoll};
use stratbox_engine::{Host, LatencySummary, RunOptions};
use stratbox_market::store::{MarketStore, StoreConfig};

const SECS: u64 = 20;
const EPICS: usize = 50;

fn credentials() -> CapitalCredentials {
    let a = MockAccount::default();
    CapitalCredentials { api_key: a.api_key.clone(), identifier: a.identifier.clone(), password: a.password.clone() }
}

fn summary(mut v: Vec<Duration>) -> LatencySummary {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    LatencySummary { samples: v.len(), p50_us: at(0.5), p99_us: at(0.99), max_us: at(1.0) }
}

fn row(what: &str, l: &LatencySummary, baseline: Option<&LatencySummary>) {
    let vs = baseline.map_or("baseline".to_owned(), |b| format!("{:.1}x the feed alone", l.p99_us / b.p99_us));
    println!(
        "| {what:<44} | {:>7} | {:>8.0} | {:>8.0} | {:>8.0} | {:>5.2} | {:>7.4} | {vs:<22} |",
        l.samples,
        l.p50_us,
        l.p99_us,
        l.max_us,
        l.p99_us / 1_000.0,
        l.p99_us / 100_000.0
    );
}

fn main() {
    let sma = support::component("examples/sma-cross");
    let guard = support::component("plugins/zscore-guard");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let config = MockConfig {
        epics: stratbox_capital_mock::default_epics(EPICS),
        speed: 4.0,
        start_ms: Some(chrono::Utc::now().timestamp_millis() - 3_600_000),
        ..MockConfig::default()
    };
    let mock = rt.block_on(MockServer::start(config.clone(), "127.0.0.1:0")).unwrap();
    let feed_config = CapitalFeedConfig {
        epics: config.epics.clone(),
        rest: RestConfig { base_url: mock.base_url(), ..RestConfig::default() },
        ..CapitalFeedConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    println!("{EPICS} instruments, 4 quotes/s each, {SECS} s per run; latency from frame read to event dispatched");
    println!("| {:<44} | {:>7} | {:>8} | {:>8} | {:>8} | {:>5} | {:>7} | {:<22} |", "run", "events", "p50 us", "p99 us", "max us", "/1ms", "/100ms", "p99 vs");

    // 1. The feed alone.
    let mut feed = CapitalFeed::connect(&feed_config, credentials(), None).unwrap();
    let until = Instant::now() + Duration::from_secs(SECS);
    let mut alone = Vec::new();
    while Instant::now() < until {
        if let FeedPoll::Event(_) = feed.poll_event(Duration::from_millis(50)) {
            alone.push(feed.last_received().expect("live feed").elapsed());
        }
    }
    drop(feed);
    let alone = summary(alone);
    row("feed alone (parse, de-duplicate)", &alone, None);

    for (label, collect) in [("host + 2 plugins, paper, nothing stored", false), ("host + 2 plugins, paper, collector to sled", true)] {
        // Wait out the mock's one-login-per-second limit.
        std::thread::sleep(Duration::from_millis(1100));
        let data_dir = dir.path().join(if collect { "with-store" } else { "no-store" });
        let collector = collect.then(|| {
            let store = MarketStore::open(&data_dir.join("market"), StoreConfig::default()).unwrap();
            Collector::new(store, CollectorConfig { backup_every_secs: None, ..CollectorConfig::default() })
        });
        let feed = CapitalFeed::connect(&feed_config, credentials(), collector).unwrap();
        let host_config = HostConfig {
            mode: Mode::Paper,
            data_dir,
            pace_ms: 0,
            status_secs: 0,
            control: stratbox_engine::config::ControlConfig { enabled: false, ..Default::default() },
            plugins: vec![PluginSpec::new(&sma), PluginSpec::new(&guard)],
            ..HostConfig::default()
        };
        let (_tx, rx) = std::sync::mpsc::channel();
        let mut host = Host::new(host_config, Box::new(feed), rx).unwrap();
        let summary = host.run(&RunOptions { duration: Some(Duration::from_secs(SECS)), ..Default::default() });
        assert_eq!(summary.status.plugins_running, 2, "both plugins ran throughout");
        let l = summary.status.feed_latency.expect("latencies recorded");
        row(label, &l, Some(&alone));
    }
    println!("goal: p99 <= 1 ms (/1ms <= 1); the original requirement was 100 ms (/100ms)");
}
