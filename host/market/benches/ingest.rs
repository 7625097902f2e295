//! The ingest figure of the market-data issue: 500 instruments through
//! validation, 1-minute aggregation and the market store, committing every
//! millisecond. Goal: >= 200,000 ticks/s sustained, p99 tick-to-stored <= 5 ms
//! ("stored": the commit holding the tick has been applied to sled; sled
//! flushes to disk on its own interval). Also bytes per million ticks and
//! per million 1-minute bars.
//!
//! `cargo bench -p stratbox-market --bench ingest`

use std::time::{Duration, Instant};

use stratbox_market::{BarAggregator, Record, Trade, Validator, ValidatorConfig};
use stratbox_market::store::{MarketStore, PriceSource, Series, StoreConfig};

const INSTRUMENTS: u32 = 500;
const TICKS: usize = 3_000_000;
const COMMIT_EVERY: Duration = Duration::from_millis(1);
/// Market time per tick: 3M ticks span a minute and a half, so buckets seal.
const TICK_NS: i64 = 30_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MarketStore::open(dir.path(), StoreConfig::default()).unwrap();
    let ids: Vec<u32> = (0..INSTRUMENTS).map(|i| store.instrument_id(&format!("S{i:03}")).unwrap()).collect();
    let mut validator = Validator::new(ValidatorConfig::default());
    let mut minute = BarAggregator::new(60, 2_000);
    let mut prices: Vec<f64> = (0..INSTRUMENTS).map(|i| 20.0 + f64::from(i)).collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let t0 = 1_700_000_000_000_000_000i64;

    let mut waiting: Vec<Instant> = Vec::with_capacity(1 << 16);
    let mut latencies: Vec<Duration> = Vec::with_capacity(TICKS);
    let (mut bars, mut rejected) = (0u64, 0u64);
    let started = Instant::now();
    let mut last_commit = started;
    for k in 0..TICKS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = (k as u32) % INSTRUMENTS;
        let step = ((seed % 7) as f64 - 3.0) * 0.01;
        prices[i as usize] = (prices[i as usize] + step).max(1.0);
        let trade = Trade { instrument: ids[i as usize], time: t0 + k as i64 * TICK_NS, price: (prices[i as usize] * 100.0).round() / 100.0, size: (1 + seed % 500) as f64 };
        waiting.push(Instant::now());
        if validator.check(Record::Trade(trade), trade.time).is_err() {
            rejected += 1;
            continue;
        }
        store.append_trade(&trade).unwrap();
        for bar in minute.push(&trade) {
            store.append_bar(&bar, PriceSource::Trade).unwrap();
            bars += 1;
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            store.commit().unwrap();
            let done = Instant::now();
            latencies.extend(waiting.drain(..).map(|a| done - a));
            last_commit = done;
        }
    }
    store.commit().unwrap();
    let done = Instant::now();
    latencies.extend(waiting.drain(..).map(|a| done - a));
    let elapsed = started.elapsed();
    latencies.sort();

    for bar in minute.flush() {
        store.append_bar(&bar, PriceSource::Trade).unwrap();
        bars += 1;
    }
    store.seal_all().unwrap();
    store.flush().unwrap();
    let stats = store.stats().unwrap();
    let (mut tick_rows, mut tick_bytes, mut bar_rows, mut bar_bytes) = (0u64, 0u64, 0u64, 0u64);
    for s in &stats {
        match s.series {
            Series::Trades => (tick_rows, tick_bytes) = (tick_rows + s.rows, tick_bytes + s.encoded_bytes),
            Series::Bars { period_secs: 60, .. } => (bar_rows, bar_bytes) = (bar_rows + s.rows, bar_bytes + s.encoded_bytes),
            _ => {}
        }
    }
    let rate = TICKS as f64 / elapsed.as_secs_f64();
    println!("\n| figure | measured | goal | ratio |\n|---|---|---|---|");
    println!("| ingest, {INSTRUMENTS} instruments, validate + aggregate + store, {TICKS} ticks | {rate:.0} ticks/s | >= 200,000 ticks/s | {:.2}x the goal |", rate / 200_000.0);
    println!("| tick-to-stored latency, median / p99 / max (commit every {COMMIT_EVERY:?}) | {:.2?} / {:.2?} / {:.2?} | p99 <= 5 ms | {:.2}x the goal |",
        percentile(&latencies, 0.5), percentile(&latencies, 0.99), latencies[latencies.len() - 1], percentile(&latencies, 0.99).as_secs_f64() / 0.005);
    println!("| encoded bytes per million ticks ({tick_rows} ticks) | {:.1} MB | | {:.2} B/tick |", tick_bytes as f64 / tick_rows as f64, tick_bytes as f64 / tick_rows as f64);
    println!("| encoded bytes per million 1-minute bars ({bar_rows} bars) | {:.1} MB | | {:.2} B/bar |", bar_bytes as f64 / bar_rows as f64, bar_bytes as f64 / bar_rows as f64);
    println!("| sled on disk after the run (includes log space not yet reclaimed) | {:.1} MB | | {:.1} B/tick |", store.size_on_disk().unwrap() as f64 / 1e6, store.size_on_disk().unwrap() as f64 / tick_rows as f64);
    println!("({rejected} ticks rejected by validation, {bars} bars built)");
}
