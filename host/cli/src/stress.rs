//! `stratbox stress`: the configuration through named crash scenarios and
//! synthetic shocks (stratbox-research's `stress`), judged against limits.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use rayon::prelude::*;

use stratbox_research::stress::{Limits, Outcome, Verdict, read_scenarios, run_scenario, select};

use crate::research::ConfigArgs;

#[derive(Args)]
pub struct StressArgs {
    #[command(flatten)]
    what: ConfigArgs,
    /// The scenario file (`[[scenario]]` tables); examples/stress/scenarios.toml ships the real crashes and the synthetic shocks.
    #[arg(long)]
    scenarios: PathBuf,
    /// Run only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The largest max drawdown a scenario may show, a fraction (the plan's 10%).
    #[arg(long, default_value_t = 0.10)]
    max_drawdown: f64,
    /// The largest loss over a scenario's window, a fraction (default: not judged).
    #[arg(long)]
    max_loss: Option<f64>,
    /// Scenarios run at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Write stress.html and stress.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the outcomes as JSON.
    #[arg(long)]
    json: bool,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

pub fn stress(a: StressArgs, data_dir: &Path) -> Result<()> {
    for (flag, v) in [("--max-drawdown", Some(a.max_drawdown)), ("--max-loss", a.max_loss)] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0 && v <= 1.0)
        {
            bail!("{flag} {v}: a fraction in (0, 1]");
        }
    }
    // The file first: a bad scenario is named before anything runs.
    let scenarios = select(read_scenarios(&a.scenarios)?, &a.only, &a.scenarios.display().to_string())?;
    let config = a.what.host_config(data_dir)?;
    let store = config.data_dir.join("market");
    if !store.exists() {
        bail!("no market store at {}: import data first (stratbox data import FILE)", store.display());
    }
    let limits = Limits { max_drawdown: a.max_drawdown, max_loss: a.max_loss };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.jobs.unwrap_or(0)).build()?;
    let outcomes: Vec<Outcome> = pool.install(|| scenarios.par_iter().map(|s| run_scenario(&store, &config, s, &limits)).collect());
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("stress.json"), serde_json::to_vec_pretty(&serde_json::json!({ "limits": limits, "scenarios": outcomes }))?)?;
        std::fs::write(out.join("stress.html"), stratbox_research::html::stress_page("Stress tests", &limits, &outcomes))?;
    }
    if a.json {
        crate::print_json(&serde_json::json!({ "limits": limits, "scenarios": outcomes }))?;
    } else {
        println!("{:<22} {:>7} {:>9} {:>9} {:>12} {:>20} {:>7} {:>11}  why", "scenario", "verdict", "return", "max dd", "recovery", "worst day", "halted", "stops hit/x");
        for o in &outcomes {
            let verdict = o.verdict.name();
            match &o.result {
                Some(r) => {
                    let recovery = r.recovery_days.map_or(if r.max_drawdown > 0.0 { "no".into() } else { "-".into() }, |d| format!("{d:.1}d"));
                    let worst = r.worst_day.as_ref().map_or("-".into(), |(d, v)| format!("{} {d}", pct(*v)));
                    let halted = if r.halted { "yes" } else if r.reduce_only { "reduce" } else { "no" };
                    let stops = format!("{}/{}", r.protective_exits.len(), r.stop_exits);
                    println!("{:<22} {verdict:>7} {:>9} {:>9} {recovery:>12} {worst:>20} {halted:>7} {stops:>11}  {}", o.scenario.name, pct(r.total_return), pct(r.max_drawdown), o.reasons.join("; "));
                }
                None => println!("{:<22} {verdict:>7}  {}", o.scenario.name, o.reasons.join("; ")),
            }
        }
        if let Some(out) = &a.out {
            println!("report: {}", out.join("stress.html").display());
        }
    }
    let failed = outcomes.iter().filter(|o| o.verdict != Verdict::Passed).count();
    if failed > 0 {
        bail!("{failed} of {} scenarios did not pass", outcomes.len());
    }
    Ok(())
}
