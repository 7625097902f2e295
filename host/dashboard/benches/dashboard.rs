//! The dashboard's cost to the host, and its trades query on a big journal.
//!
//! 1. The replay bench's run (500 instruments x 2,000 daily bars, sma-cross
//!    3/8 trading through risk and the paper broker, journaled to sled), with
//!    no dashboard, then with a dashboard and five connected pages (WebSocket
//!    clients with real tickets and the page's Origin, reading every frame),
//!    in turn, three rounds: medians and their ratio.
//! 2. The trades query over everything that run journaled (hundreds of
//!    thousands of fills, read by the dashboard from the journal as it ran):
//!    one page, filters, a deep page, measured by the server (Server-Timing)
//!    and by the client, medians of 21.
//!
//! `cargo bench -p stratbox-dashboard --bench dashboard`

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use stratbox_dashboard::{DashboardServer, HostHandle};
use stratbox_engine::config::{DashboardConfig, FeedConfig, PluginSpec};
use stratbox_engine::{Host, RunOptions};
use stratbox_market::{Feed, FeedPoll, Instrument, MarketEvent, ReplayFeed};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const INSTRUMENTS: u32 = 500;
const DAYS: i64 = 2_000;
const PAGES: usize = 5;
const ROUNDS: usize = 5;
const TOKEN: &str = "bench-token-0123456789abcdef0123456789abcdef0123456789abcdef0123";

/// The replay, then idle (so the host keeps serving the dashboard) until stopped;
/// `ended` says when the replay's last event was taken.
struct Tail {
    inner: ReplayFeed,
    ended: Arc<AtomicBool>,
}

impl Feed for Tail {
    fn instruments(&self) -> &[Instrument] {
        self.inner.instruments()
    }
    fn next_event(&mut self) -> Option<MarketEvent> {
        self.inner.next_event()
    }
    fn poll_event(&mut self, wait: Duration) -> FeedPoll {
        match self.inner.poll_event(wait) {
            FeedPoll::Ended => {
                self.ended.store(true, Ordering::SeqCst);
                std::thread::sleep(wait.min(Duration::from_millis(5)));
                FeedPoll::Idle
            }
            other => other,
        }
    }
}

struct Run {
    replay: Duration,
    bars: u64,
    fills: u64,
    frames: u64,
    frame_bytes: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One replay; with `pages`, a dashboard and that many connected pages. With
/// `queries`, the trades queries are measured once the dashboard has read the
/// whole journal.
fn run(dir: &std::path::Path, pages: usize, sma: &PluginSpec, queries: bool) -> Run {
    let data = dir.join(format!("run-{pages}"));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(dir.join("market"), data.join("market")).unwrap();
    let config = support::replay_host_config(&data, vec![sma.clone()]);
    let FeedConfig::Replay(replay) = &config.feed else { unreachable!() };
    let ended = Arc::new(AtomicBool::new(false));
    let feed = Tail { inner: ReplayFeed::open(&data.join("market"), replay).unwrap(), ended: ended.clone() };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut host = Host::new(config.clone(), Box::new(feed), rx).unwrap();
    let dashboard = (pages > 0).then(|| {
        let handle = HostHandle { data_dir: data.clone(), risk: config.risk.clone(), control_token: Some(TOKEN.into()), factory: host.factory(), commands: tx.clone(), journal: host.order_path.journal_reader() };
        DashboardServer::start(&DashboardConfig { listen: "127.0.0.1:0".into(), ..DashboardConfig::default() }, handle).unwrap()
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    if let Some(d) = &dashboard {
        let url = d.endpoint.url.clone();
        for _ in 0..pages {
            let (url, http, frames, bytes) = (url.clone(), http.clone(), frames.clone(), bytes.clone());
            let connected = rt.block_on(async move {
                let t: serde_json::Value = http.post(format!("{url}api/ticket")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
                let ws = format!("{}api/stream?ticket={}", url.replace("http", "ws"), t["ticket"].as_str().unwrap());
                let mut req = ws.into_client_request().unwrap();
                req.headers_mut().insert("origin", url.trim_end_matches('/').parse().unwrap());
                let (socket, _) = tokio_tungstenite::connect_async(req).await.expect("the stream opens with a ticket and the page's Origin");
                socket
            });
            rt.spawn(async move {
                let mut socket = connected;
                while let Some(Ok(m)) = socket.next().await {
                    frames.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(m.len() as u64, Ordering::Relaxed);
                }
            });
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let options = RunOptions { duration: None, stop: stop.clone() };
    let started = Instant::now();
    let runner = std::thread::spawn(move || {
        let summary = host.run(&options);
        (host, summary)
    });
    while !ended.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let replay = started.elapsed();
    let mut out = Run { replay, bars: 0, fills: 0, frames: 0, frame_bytes: 0 };
    if queries && let Some(d) = &dashboard {
        rt.block_on(measure_queries(&http, &d.endpoint.url));
    }
    stop.store(true, Ordering::SeqCst);
    let (host, summary) = runner.join().unwrap();
    out.bars = summary.status.stats.bars;
    out.fills = summary.status.broker.fills;
    out.frames = frames.load(Ordering::Relaxed);
    out.frame_bytes = bytes.load(Ordering::Relaxed);
    drop(dashboard);
    drop(host);
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

async fn measure_queries(http: &reqwest::Client, url: &str) {
    let get = |q: String| async move {
        let t0 = Instant::now();
        let r = http.get(format!("{url}api/trades?{q}")).bearer_auth(TOKEN).send().await.unwrap();
        let server: f64 = r.headers()["server-timing"].to_str().unwrap().split("dur=").nth(1).unwrap().parse().unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        (server, t0.elapsed().as_secs_f64() * 1e3, body["total"].as_u64().unwrap(), body["rows"].as_array().unwrap().len())
    };
    // Wait until the dashboard has read the whole journal (its total stops growing).
    let mut last = 0;
    loop {
        let (_, _, total, _) = get("limit=1".into()).await;
        if total > 0 && total == last {
            break;
        }
        last = total;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("\ntrades query over {last} journaled trades (one page of 100; medians of 21):");
    println!("| {:<44} | {:>9} | {:>12} | {:>12} |", "query", "matching", "server ms", "client ms");
    for (name, q) in [
        ("newest page, no filter", "limit=100".to_owned()),
        ("one symbol", "symbol=S042&limit=100".to_owned()),
        ("buys in 2012", "side=buy&from=2012-01-01&to=2013-01-01&limit=100".to_owned()),
        ("one plugin, page at offset 50,000", "plugin=sma-cross&offset=50000&limit=100".to_owned()),
    ] {
        let (mut s, mut c) = (Vec::new(), Vec::new());
        let mut matching = 0;
        for _ in 0..21 {
            let (server, client, total, rows) = get(q.clone()).await;
            assert!(rows > 0, "{name}: a page of rows");
            s.push(server);
            c.push(client);
            matching = total;
        }
        println!("| {:<44} | {:>9} | {:>12.3} | {:>12.3} |", name, matching, median(s), median(c));
    }
}

fn main() {
    let (sma, dir) = support::replay_bench(INSTRUMENTS, DAYS);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut seen = None;
    for round in 0..ROUNDS {
        let a = run(dir.path(), 0, &sma, false);
        let b = run(dir.path(), PAGES, &sma, round == ROUNDS - 1);
        assert_eq!(a.bars, b.bars, "the same replay");
        assert_eq!(a.fills, b.fills, "the same trading");
        without.push(a.bars as f64 / a.replay.as_secs_f64());
        with.push(b.bars as f64 / b.replay.as_secs_f64());
        seen = Some(b);
    }
    let s = seen.unwrap();
    let (a, b) = (median(without), median(with));
    println!("\nreplay throughput (bars/s, median of {ROUNDS}, in turn):");
    println!("| {:<44} | {:>12} |", "run", "bars/s");
    println!("| {:<44} | {:>12.0} |", "replay + sma-cross, no dashboard", a);
    println!("| {:<44} | {:>12.0} |", format!("the same with a dashboard and {PAGES} pages"), b);
    println!(
        "ratio {:.3} ({} bars, {} fills; the pages got {} frames, {:.1} MB, in the last run)",
        b / a,
        s.bars,
        s.fills,
        s.frames,
        s.frame_bytes as f64 / 1e6
    );
}
