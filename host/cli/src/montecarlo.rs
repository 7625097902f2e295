//! `stratbox montecarlo` (and `backtest --monte-carlo N`): a run's daily
//! returns or trades resampled into many paths, with the VaR table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use stratbox_research::montecarlo::{Bootstrap, McConfig, McReport, Resample, simulate};
use stratbox_research::report::SavedRun;
use stratbox_research::var::{McVar, VarEstimate, var_table};

/// How paths are drawn (shared with `backtest --monte-carlo`).
#[derive(Args, Clone)]
pub struct McOptions {
    /// What to resample: `returns` (daily) or `trades` (closed round trips' P&L).
    #[arg(long, default_value = "returns")]
    resample: String,
    /// `block` (the stationary bootstrap) or `iid`.
    #[arg(long, default_value = "block")]
    method: String,
    /// Mean block length of --method block, in draws (days or trades).
    #[arg(long, default_value_t = 20.0)]
    block: f64,
    /// Draws per path (default: as many as the run had).
    #[arg(long)]
    horizon: Option<usize>,
    /// Ruin: equity at or below this fraction of the start.
    #[arg(long, default_value_t = 0.5)]
    ruin: f64,
    /// Goal: equity at or above this multiple of the start.
    #[arg(long, default_value_t = 2.0)]
    goal: f64,
    /// Seeds the paths (the same seed, the same paths, whatever the cores).
    #[arg(long = "mc-seed", default_value_t = 0)]
    seed: u64,
    /// Horizon of the VaR table, in days.
    #[arg(long, default_value_t = 1)]
    var_horizon: usize,
}

#[derive(Args)]
pub struct MonteCarloArgs {
    /// A backtest's report folder (its equity.csv, trades.csv and inputs.json).
    #[arg(long)]
    run: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    paths: usize,
    #[command(flatten)]
    options: McOptions,
    /// Where montecarlo.json and montecarlo.html go (default: the run's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct McFile<'a> {
    source: String,
    #[serde(flatten)]
    mc: &'a McReport,
    var: &'a [VarEstimate],
}

pub fn montecarlo_cmd(a: MonteCarloArgs) -> Result<()> {
    let saved = SavedRun::read(&a.run)?;
    let out = a.out.clone().unwrap_or_else(|| a.run.clone());
    run(&saved, a.paths, &a.options, &out, &a.run.display().to_string(), a.quiet, a.json)
}

/// Runs the study on `saved`, writes `montecarlo.json` and `montecarlo.html` into `out`.
pub fn run(saved: &SavedRun, paths: usize, o: &McOptions, out: &Path, source: &str, quiet: bool, json: bool) -> Result<()> {
    let resample = match o.resample.as_str() {
        "returns" => Resample::Returns,
        "trades" => Resample::Trades,
        other => anyhow::bail!("--resample `{other}`: expected returns or trades"),
    };
    let bootstrap = Bootstrap::parse(&o.method, o.block).map_err(|e| anyhow::anyhow!("--method/--block: {e}"))?;
    let years = saved.returns.len() as f64 / 252.0;
    let (sample, draws_per_year): (Vec<f64>, f64) = match resample {
        Resample::Returns => (saved.returns.clone(), 252.0),
        Resample::Trades => {
            anyhow::ensure!(years > 0.0, "{source}: the run has no days, so trades a year is unknown");
            (saved.trade_pnl.iter().map(|p| p / saved.capital).collect(), saved.trade_pnl.len() as f64 / years)
        }
    };
    let horizon = o.horizon.unwrap_or(sample.len());
    let config = McConfig { paths, horizon, bootstrap, seed: o.seed, ruin: o.ruin, goal: o.goal, draws_per_year };
    let mc = simulate(&sample, resample, &config).with_context(|| format!("Monte Carlo of {source}"))?;
    let var = var_table(&saved.returns, o.var_horizon, McVar { seed: o.seed, ..McVar::default() });
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let file = McFile { source: source.to_owned(), mc: &mc, var: &var };
    let json_path = out.join("montecarlo.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&file)?).with_context(|| format!("cannot write {}", json_path.display()))?;
    let page = stratbox_research::html::montecarlo_page(&format!("Monte Carlo: {source}"), source, &mc, &var);
    let html_path = out.join("montecarlo.html");
    std::fs::write(&html_path, page).with_context(|| format!("cannot write {}", html_path.display()))?;
    if json {
        return crate::print_json(&file);
    }
    if !quiet {
        let unit = if resample == Resample::Returns { "days" } else { "trades" };
        println!("{} paths of {} {unit} resampled from {} in {:.3} s", paths, horizon, mc.sample, mc.wall_secs);
        let f = &mc.final_multiple;
        println!(
            "final equity (x start): p5 {:.3}  median {:.3}  p95 {:.3};  CAGR median {:.2}%;  max drawdown median {:.2}%, p5 {:.2}%",
            f.at(5.0),
            f.at(50.0),
            f.at(95.0),
            mc.cagr.at(50.0) * 100.0,
            mc.max_drawdown.at(50.0) * 100.0,
            mc.max_drawdown.at(5.0) * 100.0
        );
        println!("P(ruin: equity <= {:.0}% of start) {:.2}%   P(final >= {}x) {:.2}%", o.ruin * 100.0, mc.p_ruin * 100.0, o.goal, mc.p_goal * 100.0);
        for c in stratbox_research::var::CONFIDENCES {
            let row: Vec<String> = var.iter().filter(|v| v.confidence == c).map(|v| format!("{} {:.2}%/{:.2}%", v.method, v.var * 100.0, v.cvar * 100.0)).collect();
            println!("VaR/CVaR {:.0}% {}d: {}", c * 100.0, o.var_horizon, row.join("  "));
        }
        println!("report: {}", html_path.display());
    }
    Ok(())
}

/// `stratbox var`: the four estimates of the live portfolio's VaR, from the
/// day-by-day P&L of its positions the host's `[risk.var_limit]` keeps.
pub fn live_var(status: &serde_json::Value, horizon: usize, json: bool) -> Result<()> {
    let v = &status["risk"]["var"];
    if v.is_null() {
        anyhow::bail!("the host has no VaR estimate: it needs [risk.var_limit] in its config, min_days of bar history and an open position");
    }
    let returns: Vec<f64> = v["returns"].as_array().map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect()).unwrap_or_default();
    if returns.len() < 2 {
        anyhow::bail!("the host's VaR estimate carries {} days of returns: too few for the table", returns.len());
    }
    let table = var_table(&returns, horizon.max(1), McVar::default());
    let equity = status["risk"]["equity"].as_f64().unwrap_or(f64::NAN);
    if json {
        return crate::print_json(&serde_json::json!({ "days": returns.len(), "horizon": horizon, "equity": equity, "limit": v, "estimates": table }));
    }
    println!("positions revalued on {} days; equity {equity:.2}; the limit uses historical {:.0}%: {:.2}% of equity", returns.len(), v["confidence"].as_f64().unwrap_or(0.0) * 100.0, v["fraction"].as_f64().unwrap_or(f64::NAN) * 100.0);
    println!("{:<16} {:>6} {:>10} {:>10} {:>14} {:>14}", "method", "conf", "VaR", "CVaR", "VaR", "CVaR");
    for e in &table {
        println!("{:<16} {:>5.0}% {:>9.3}% {:>9.3}% {:>14.2} {:>14.2}", e.method, e.confidence * 100.0, e.var * 100.0, e.cvar * 100.0, e.var * equity, e.cvar * equity);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table from a status as the host serves it: the historical row is
    /// the quantile of the day-by-day returns the limit used.
    #[test]
    fn the_live_table_estimates_from_the_hosts_day_by_day_returns() {
        let returns: Vec<f64> = (0..100).map(|k| if k % 10 == 0 { -0.02 } else { 0.001 }).collect();
        let status = serde_json::json!({ "risk": { "equity": 1e6, "var": { "confidence": 0.99, "fraction": 0.02, "returns": returns } } });
        let table = var_table(&returns, 1, McVar::default());
        let hist95 = table.iter().find(|e| e.method == "historical" && e.confidence == 0.95).unwrap();
        assert!((hist95.var - 0.02).abs() < 1e-12, "10% of days lose 2%: {hist95:?}");
        assert!(live_var(&status, 1, true).is_ok());
        let none = serde_json::json!({ "risk": { "var": null } });
        assert!(live_var(&none, 1, false).unwrap_err().to_string().contains("needs [risk.var_limit]"));
    }
}
