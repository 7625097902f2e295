//! `stratbox detect eval`: replays history through an anomaly detector and
//! scores its alarms against known events (stratbox-research's `detect`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use stratbox_engine::config::ParamInput;
use stratbox_research::detect::{Evaluation, LEVELS, evaluate, load_events};

use crate::research::{DataArgs, RunArgs, progress_bar};

#[derive(Subcommand)]
pub enum DetectCmd {
    /// Score a detector on history: delay to each alarm level per event, false alarms per year and instrument-year.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// The detector component (a .wasm file or a bundled plugin's name, e.g. zscore-guard).
    #[arg(long)]
    detector: PathBuf,
    /// A parameter of the detector, `NAME=VALUE` (repeatable).
    #[arg(long = "param", value_parser = crate::plugin::parse_param)]
    params: Vec<(String, ParamInput)>,
    /// The events file (`[[event]]` tables: name, first, last, kind); examples/events/us-market.toml ships one.
    #[arg(long)]
    events: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Write detect.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
}

pub fn detect(cmd: DetectCmd, data_dir: &std::path::Path) -> Result<()> {
    match cmd {
        DetectCmd::Eval(a) => eval(a, data_dir),
    }
}

fn delay(d: Option<usize>) -> String {
    d.map_or("-".into(), |d| d.to_string())
}

fn eval(a: EvalArgs, data_dir: &std::path::Path) -> Result<()> {
    // The events first: a bad file is named before any replay.
    let events = load_events(&a.events)?;
    let run_args = RunArgs::of_plugin(a.detector.clone(), a.params.clone(), a.data.clone());
    let quiet = a.quiet || a.json;
    let p = run_args.prepare(data_dir, quiet)?;
    let bar = progress_bar(0, "bars", quiet);
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let run = stratbox_research::backtest::backtest_with_progress(&p.data, &p.config, p.window, &mut progress)?;
    bar.finish_and_clear();
    if let Some((plugin, reason)) = run.faults.first() {
        anyhow::bail!("the detector {plugin} faulted during the replay (quarantined): {reason}");
    }
    // Rates are over the window replayed, not the whole store.
    let period = i64::from(p.data.period_secs()) * stratbox_market::NANOS_PER_SEC;
    let (from, to) = (p.window.from.unwrap_or(i64::MIN), p.window.to.unwrap_or(i64::MAX));
    let times: Vec<i64> = p.data.times().iter().copied().filter(|t| *t - period >= from && *t - period < to).collect();
    let spans: Vec<Option<(i64, i64)>> = p.data.instrument_spans().into_iter().map(|s| s.map(|(a, b)| (a.max(from), b.min(to))).filter(|(a, b)| a < b)).collect();
    let e = evaluate(&run.alarms, &events, &times, p.data.period_secs(), &spans);
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("detect.json"), serde_json::to_vec_pretty(&e)?)?;
    }
    if a.json {
        return crate::print_json(&e);
    }
    if !a.quiet {
        print_table(&e, run.bars, p.data.instruments().len());
    }
    Ok(())
}

fn print_table(e: &Evaluation, bars: u64, instruments: usize) {
    println!("{bars} bars of {instruments} instruments over {:.1} years ({:.0} instrument-years)", e.years, e.instrument_years);
    println!("{:<44} {:<17} {:>8} {:>8} {:>8}", "event", "first bar", "elevated", "severe", "critical");
    for s in &e.events {
        let first = stratbox_market::format_time(s.event.first);
        if !s.in_data {
            println!("{:<44} {:<17} {:>8} {:>8} {:>8}", s.event.name, &first[..16], "not in the data", "", "");
            continue;
        }
        println!("{:<44} {:<17} {:>8} {:>8} {:>8}", s.event.name, &first[..16], delay(s.delay[0]), delay(s.delay[1]), delay(s.delay[2]));
    }
    println!("(delays in bars from the event's first bar; - : no alarm of that level or above within the event)");
    println!("alarms: {}", LEVELS.iter().zip(e.alarms).map(|(l, n)| format!("{n} {l}")).collect::<Vec<_>>().join(", "));
    for (k, l) in LEVELS.iter().enumerate() {
        println!(
            "false {l:<8}: {:>6}  {:>8.3} a year  {:>8.4} per instrument-year",
            e.false_alarms[k], e.false_per_year[k], e.false_per_instrument_year[k]
        );
    }
    for f in e.false_critical.iter().take(20) {
        println!("  false critical {} {}: {}", &f.time[..16], f.symbol.as_deref().unwrap_or("market"), f.reason);
    }
}
