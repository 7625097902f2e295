//! The sandbox figures of the foundation issue, each measured in one run
//! beside its goal or baseline, reported as medians and ratios:
//!
//! 1. host-to-plugin call overhead, one bar in and intents out (goal <= 150 ns);
//! 2. instantiation from `InstancePre` with the pooling allocator (goal <= 20 us);
//! 3. the SMA strategy native vs as a component over 1,000,000 real daily bars
//!    (goal wasm/native <= 1.5x), batched by day and bar by bar;
//! 4. events held during a hot swap (goal <= 5 ms).
//!
//! `cargo bench -p stratbox-engine --bench figures` (needs ../shared/data for 3 and 4).

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::io::BufReader;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sma_cross::SmaCross;
use stratbox_engine::config::{ParamInput, PluginSpec};
use stratbox_contract::{Bar, BarBatch, Instrument, RunMode};
use stratbox_sandbox::{HostState, Metering, PluginLimits, Sandbox, SandboxSettings};
use stratbox_sandbox::{PluginFactory, Supervisor};
use stratbox_engine::PluginWorld;
use stratbox_sandbox::WorldView;
use stratbox_trading::SharedWorld;
use stratbox_sdk::testing::TestHost;
use stratbox_sdk::{Ctx, Init, Param, ParamValue, Params, Plugin, Strategy};

const DATA: &str = "shared/data/daily/us_stocks_1500_2013_2017.csv.gz";

/// Median of `samples` timings of `iters` calls each, per call.
fn median_per_call(samples: usize, iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters.min(1000) {
        f(); // warm up
    }
    let mut t: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed() / iters
        })
        .collect();
    t.sort();
    t[t.len() / 2]
}

fn median(mut t: Vec<Duration>) -> Duration {
    t.sort();
    t[t.len() / 2]
}

fn row(what: &str, value: Duration, goal: &str, ratio: String) {
    println!("| {what:<58} | {:>12} | {goal:<22} | {ratio:<30} |", format!("{value:.2?}"));
}

fn instruments(n: usize) -> Vec<Instrument> {
    (0..n).map(|i| Instrument { id: i as u32, symbol: format!("S{i}"), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() }).collect()
}

fn factory(sandbox: Arc<Sandbox>, n: usize) -> Arc<PluginFactory> {
    Arc::new(PluginFactory::new(sandbox, Arc::new(PluginWorld(Arc::new(SharedWorld::new(0)))), None, RunMode::Backtest, instruments(n)))
}

/// Real daily bars in time order, grouped by day, with symbols numbered.
fn load_days(limit: usize) -> Option<Vec<Vec<Bar>>> {
    let file = std::fs::File::open(support::repo().join("..").join(DATA)).ok()?;
    let mut reader = csv::Reader::from_reader(BufReader::new(flate2::read::GzDecoder::new(file)));
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut rows: Vec<(String, Bar)> = Vec::new();
    for rec in reader.records() {
        let rec = rec.expect("csv record");
        let n = ids.len() as u32;
        let id = *ids.entry(rec[0].to_owned()).or_insert(n);
        let num = |i: usize| rec[i].parse::<f64>().unwrap_or(f64::NAN);
        rows.push((rec[1].to_owned(), Bar { instrument: id, start: 0, period_secs: 86_400, open: num(2), high: num(3), low: num(4), close: num(5), volume: num(6) }));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.instrument.cmp(&b.1.instrument)));
    rows.truncate(limit);
    let mut days: Vec<Vec<Bar>> = Vec::new();
    let mut last = String::new();
    for (k, (date, mut bar)) in rows.into_iter().enumerate() {
        if date != last {
            days.push(Vec::new());
            last = date;
        }
        bar.start = days.len() as i64 * 86_400_000_000_000 + k as i64 % 1000;
        days.last_mut().expect("day").push(bar);
    }
    Some(days)
}

fn native_sma(params: &[(&str, i64)]) -> (SmaCross, TestHost) {
    let mut host = TestHost::default();
    let mut p: Vec<Param> = params.iter().map(|(n, v)| Param { name: (*n).into(), value: ParamValue::Integer(*v) }).collect();
    p.push(Param { name: "quantity".into(), value: ParamValue::Number(10.0) });
    p.push(Param { name: "allow_short".into(), value: ParamValue::Flag(false) });
    let init = Init { mode: stratbox_sdk::RunMode::Backtest, instruments: vec![], params: Params::new(p) };
    let plugin = SmaCross::init(&mut Ctx::new(&mut host), &init).expect("init");
    (plugin, host)
}

/// The same bars, in the SDK's types (field for field the same WIT record).
fn to_sdk(b: &Bar) -> stratbox_sdk::Bar {
    stratbox_sdk::Bar { instrument: b.instrument, start: b.start, period_secs: b.period_secs, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume }
}

fn sandbox_for(metering: Metering) -> Arc<Sandbox> {
    sandbox(metering)
}

fn sandbox(metering: Metering) -> Arc<Sandbox> {
    Arc::new(Sandbox::new(SandboxSettings { metering, ..SandboxSettings::default() }).expect("sandbox"))
}

const PROFILES: [(Metering, &str); 2] = [(Metering::FuelAndEpoch, "fuel + backstop: backtest"), (Metering::Epoch, "epoch: live")];

fn main() {
    let sma_path = support::component("examples/sma-cross");
    let guard_path = support::component("plugins/zscore-guard");
    println!("\n| figure | median | goal | ratio |\n|---|---|---|---|");

    for (metering, label) in PROFILES {
        // 1. Call overhead: an empty handler. zscore-guard has no strategy role, so
        // the SDK answers its `strategy.on-bar` at once.
        let f = factory(sandbox(metering), 1);
        let mut empty = f.load(PluginSpec::new(&guard_path)).expect("load").instance;
        let bar = Bar { instrument: 0, start: 0, period_secs: 60, open: 1.0, high: 1.0, low: 1.0, close: 1.0, volume: 1.0 };
        let call = median_per_call(31, 20_000, || {
            black_box(empty.on_bar(black_box(bar)).expect("call"));
        });
        row(&format!("call overhead: one bar in, no intent ({label})"), call, "<= 150 ns", format!("{:.2}x the goal", call.as_nanos() as f64 / 150.0));

        // ... and with one intent out (sma-cross 1/2 crosses on every alternating bar).
        let mut sma = f.load(PluginSpec::new(&sma_path).param("fast", ParamInput::Integer(1)).param("slow", ParamInput::Integer(2))).expect("load").instance;
        let mut k = 0u64;
        let call_intent = median_per_call(31, 20_000, || {
            k += 1;
            let close = if k.is_multiple_of(2) { 1.0 } else { 3.0 };
            black_box(sma.on_bar(black_box(Bar { close, ..bar })).expect("call"));
        });
        row(&format!("call: one bar in, one intent out ({label})"), call_intent, "<= 150 ns", format!("{:.2}x the goal", call_intent.as_nanos() as f64 / 150.0));
    }
    let sandbox = sandbox(Metering::FuelAndEpoch);

    // 2. Instantiation from InstancePre (pooling allocator), including the Store.
    let prepared = sandbox.prepare_file(&sma_path).expect("prepare");
    let world: Arc<dyn WorldView> = Arc::new(PluginWorld(Arc::new(SharedWorld::new(0))));
    let name: Arc<str> = Arc::from("bench");
    let inst = median_per_call(31, 200, || {
        let state = HostState::new(name.clone(), PluginLimits::default(), world.clone(), None);
        black_box(sandbox.instantiate(&prepared, state).expect("instantiate"));
    });
    row("instantiate from InstancePre (pooling, with Store)", inst, "<= 20 us", format!("{:.2}x the goal", inst.as_nanos() as f64 / 20_000.0));

    if std::env::var("STRATBOX_FIGURES").is_ok_and(|v| v == "calls") {
        return;
    }

    // 3. SMA strategy natively vs as a component, over real daily bars.
    let Some(days) = load_days(1_000_000) else {
        println!("\nskipped figures 3 and 4: ../{DATA} not found beside the repository");
        return;
    };
    let n_bars: usize = days.iter().map(Vec::len).sum();
    let n_inst = days.iter().flatten().map(|b| b.instrument).max().unwrap_or(0) as usize + 1;
    let sdk_days: Vec<Vec<stratbox_sdk::Bar>> = days.iter().map(|d| d.iter().map(to_sdk).collect()).collect();
    let params = [("fast", 10), ("slow", 30)];
    // A cross-section of ~1,500 symbols can cross on more than the default 1,024 intents.
    let limits = stratbox_sandbox::LimitOverrides { max_intents_per_callback: Some(100_000), ..Default::default() };
    let spec = || PluginSpec { limits, ..PluginSpec::new(&sma_path).param("fast", ParamInput::Integer(10)).param("slow", ParamInput::Integer(30)) };
    let per = |d: Duration| d.as_nanos() as f64 / n_bars as f64;
    let native_run = |by_day: bool| {
        let mut t = Vec::new();
        let mut intents = 0;
        for _ in 0..5 {
            let (mut plugin, mut host) = native_sma(&params);
            let mut out = Vec::new();
            let start = Instant::now();
            if by_day {
                for day in &sdk_days {
                    plugin.on_bars(&mut Ctx::new(&mut host), day, &mut out);
                }
            } else {
                for bar in sdk_days.iter().flatten() {
                    plugin.on_bar(&mut Ctx::new(&mut host), bar, &mut out);
                }
            }
            t.push(start.elapsed());
            intents = out.len();
        }
        (median(t), intents)
    };
    let (nat, native_intents) = native_run(true);
    let (natb, _) = native_run(false);
    println!("| {:<58} | {:>12} | {:<22} | {:<30} |", format!("SMA 10/30 native, {n_bars} real bars in {} days", days.len()), format!("{nat:.2?}"), "baseline", format!("{:.1} ns/bar", per(nat)));
    for (metering, label) in PROFILES {
        let fw = factory(sandbox_for(metering), n_inst);
        let (mut by_day, mut by_bar) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let mut wasm = fw.load(spec()).expect("load").instance;
            let start = Instant::now();
            let mut n = 0;
            for day in &days {
                n += wasm.on_bars(&BarBatch::from_bars(day)).expect("on-bars").len();
            }
            by_day.push(start.elapsed());
            assert_eq!(n, native_intents, "native and wasm runs must ask for the same intents");
            let mut wasm = fw.load(spec()).expect("load").instance;
            let start = Instant::now();
            for bar in days.iter().flatten() {
                black_box(wasm.on_bar(*bar).expect("on-bar"));
            }
            by_bar.push(start.elapsed());
        }
        // Transport alone: the same batches to a plugin without the strategy role.
        let mut noop = fw.load(PluginSpec::new(&guard_path)).expect("load").instance;
        let mut transport = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            for day in &days {
                black_box(noop.on_bars(&BarBatch::from_bars(day)).expect("on-bars"));
            }
            transport.push(start.elapsed());
        }
        let t = median(transport);
        row(&format!("  of which delivery: columns + copy + call, no-op handler ({label})"), t, "(informative)", format!("{:.1} ns/bar", per(t)));
        let (was, wasb) = (median(by_day), median(by_bar));
        row(&format!("SMA 10/30 component, one on-bars per day ({label})"), was, "<= 1.5x native", format!("{:.2}x native, {:.1} ns/bar", was.as_secs_f64() / nat.as_secs_f64(), per(was)));
        row(&format!("SMA 10/30 component, one on-bar per bar ({label})"), wasb, "(call-bound)", format!("{:.2}x native bar by bar", wasb.as_secs_f64() / natb.as_secs_f64()));
    }
    println!("({native_intents} intents in each run, identical native and wasm)");
    let fw = factory(sandbox.clone(), n_inst);

    // 4. Hot swap of sma-cross holding every instrument's window.
    let mut sup = Supervisor::new(fw.clone());
    let mut first = fw.load(spec().named("sma-cross")).expect("load");
    for day in &days {
        first.instance.on_bars(&BarBatch::from_bars(day)).expect("on-bars");
    }
    sup.install(first).expect("install");
    let mut held = Vec::new();
    let mut bytes = 0;
    for _ in 0..21 {
        let next = fw.load(spec().named("sma-cross")).expect("load");
        let r = sup.swap("sma-cross", next).expect("swap");
        held.push(r.held);
        bytes = r.state_bytes;
    }
    let h = median(held);
    row(&format!("hot swap: events held ({n_inst} instruments, {bytes} B of state)"), h, "<= 5 ms", format!("{:.2}x the goal", h.as_secs_f64() / 0.005));
}
