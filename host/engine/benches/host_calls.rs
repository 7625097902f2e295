//! What host calls cost, and what charging fuel for them buys (issue 10, item 1).
//!
//! 1. The hostile `history-hog` (a loop over `market.history(id, period, 10000)`
//!    that only fuel can stop) in a backtest's sandbox, under the default
//!    50,000,000-fuel budget: the wall time of its one callback with the
//!    default import costs, beside the same with nothing charged (fuel counting
//!    guest instructions alone, as before the charges).
//! 2. sma-cross's callback over the same bars, with and without charges: the
//!    well-behaved plugin's cost is unchanged.
//! 3. The calibration: fuel the guest burns per nanosecond, and the time of a
//!    `market.history` call and of each bar it returns as the guest sees it
//!    (lowering included), converted at that rate, beside what is charged.
//!
//! `cargo bench -p stratbox-engine --bench host_calls`

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use stratbox_contract::{Bar, Instrument, RunMode};
use stratbox_engine::PluginWorld;
use stratbox_engine::config::{Mode, ParamInput, PluginSpec};
use stratbox_sandbox::{Fault, ImportCosts, PluginFactory, Sandbox, SandboxSettings};
use stratbox_trading::SharedWorld;

const BARS: usize = 1_000;

fn median(mut t: Vec<Duration>) -> Duration {
    t.sort();
    t[t.len() / 2]
}

/// A backtest's factory over a world holding `BARS` daily bars of one instrument.
fn factory(costs: ImportCosts) -> (Arc<PluginFactory>, Arc<SharedWorld>) {
    let settings = SandboxSettings { metering: Mode::Backtest.default_metering(), import_costs: costs, ..SandboxSettings::default() };
    let sandbox = Arc::new(Sandbox::new(settings).expect("sandbox"));
    let world = Arc::new(SharedWorld::new(10_000));
    for k in 0..BARS {
        world.history_mut().record(&bar(k));
    }
    let instruments = vec![Instrument { id: 0, symbol: "S0".into(), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() }];
    let f = PluginFactory::new(sandbox, Arc::new(PluginWorld(world.clone())), None, RunMode::Backtest, instruments);
    (Arc::new(f), world)
}

fn bar(k: usize) -> Bar {
    let close = 100.0 + (k as f64 * 0.3).sin() * 5.0;
    Bar { instrument: 0, start: k as i64 * 86_400_000_000_000, period_secs: 86_400, open: close, high: close + 1.0, low: close - 1.0, close, volume: 1e5 }
}

/// One run of the hog's first callback on `instrument` (0 has `BARS` bars of
/// history, 1 none): its wall time, how it ended, and the fuel charged for
/// host calls. `backstop`: whether the backtest's backstop applies.
fn hog(costs: ImportCosts, instrument: u32, backstop: bool) -> (Duration, String, u64) {
    let (f, _) = factory(costs);
    let mut spec = PluginSpec::new(support::component("tests/plugins/hostile")).param("mode", ParamInput::Text("history-hog".into()));
    if !backstop {
        spec.limits.backstop_ms = Some(0);
    }
    let mut p = f.load(spec).expect("load").instance;
    let start = Instant::now();
    let r = p.on_bar(Bar { instrument, ..bar(BARS) });
    let took = start.elapsed();
    let how = match r {
        Err(Fault::OutOfFuel { host_calls, .. }) => format!("out of fuel, {:.0}% charged for host calls", host_calls as f64 / p.stats.fuel_used as f64 * 100.0),
        Err(f) => f.to_string(),
        Ok(_) => "returned".into(),
    };
    (took, how, p.stats.import_fuel)
}

/// Median wall time of sma-cross's callback, over `BARS` bars.
fn sma(costs: ImportCosts) -> Duration {
    let (f, _) = factory(costs);
    let spec = PluginSpec::new(support::component("examples/sma-cross")).param("fast", ParamInput::Integer(3)).param("slow", ParamInput::Integer(8));
    let mut p = f.load(spec).expect("load").instance;
    let t = (0..BARS)
        .map(|k| {
            let start = Instant::now();
            p.on_bar(bar(k)).expect("sma-cross runs");
            start.elapsed()
        })
        .collect();
    median(t)
}

fn main() {
    println!("\n| figure | charged (now) | nothing charged, no backstop (before) | ratio |\n|---|---|---|---|");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let mut ends = (String::new(), String::new());
    for k in 0..5 {
        let (t, how, _) = hog(ImportCosts::default(), 0, true);
        with.push(t);
        ends.0 = how;
        // The uncharged, unstopped run takes seconds: three samples are enough.
        if k < 3 {
            let (t, how, _) = hog(ImportCosts::NONE, 0, false);
            without.push(t);
            ends.1 = how;
        }
    }
    let (a, b) = (median(with), median(without));
    println!("| history-hog: one callback, 50M fuel | {a:.2?} | {b:.2?} | {:.3}x |", a.as_secs_f64() / b.as_secs_f64());
    println!("| history-hog: how it ended | {} | {} | |", ends.0, ends.1);
    let (_, how, _) = hog(ImportCosts::NONE, 0, true);
    println!("| history-hog, nothing charged, backstop on | | {how} | |");
    let (a, b) = (sma(ImportCosts::default()), sma(ImportCosts::NONE));
    println!("| sma-cross: one callback (median of {BARS}) | {a:.2?} | {b:.2?} | {:.3}x |", a.as_secs_f64() / b.as_secs_f64());

    // Calibration. The guest's rate: a busy loop, nothing charged.
    let (f, _) = factory(ImportCosts::NONE);
    let spec = PluginSpec::new(support::component("tests/plugins/hostile")).param("mode", ParamInput::Text("busy-wait".into())).param("spin", ParamInput::Integer(2_000_000));
    let mut p = f.load(spec).expect("load").instance;
    let fuel0 = p.stats.fuel_used;
    let start = Instant::now();
    p.on_bar(bar(0)).expect("busy-wait ends");
    let rate = (p.stats.fuel_used - fuel0) as f64 / start.elapsed().as_nanos() as f64;
    // A call's and a bar's time as the guest sees them: the charged hog over
    // no history (calls alone) and over `BARS` bars, calls counted from the charges.
    let c = ImportCosts::default();
    let per_call_ns = |instrument: u32, bars: u64| {
        median(
            (0..5)
                .map(|_| {
                    let (t, _, fuel) = hog(c, instrument, true);
                    t / (fuel / (c.call + c.per_bar * bars)).max(1) as u32
                })
                .collect(),
        )
        .as_nanos() as f64
    };
    let (empty, full) = (per_call_ns(1, 0), per_call_ns(0, BARS as u64));
    let per_bar = (full - empty) / BARS as f64;
    println!("\n| calibration | measured | at the guest's rate | charged |\n|---|---|---|---|");
    println!("| guest code (busy loop) | {rate:.1} fuel/ns | | |");
    println!("| a `market.history` call returning nothing | {empty:.0} ns | {:.0} fuel | {} fuel |", empty * rate, c.call);
    println!("| each bar it returns (read, copy, lowering) | {per_bar:.1} ns | {:.0} fuel | {} fuel |", per_bar * rate, c.per_bar);
}
