//! `stratbox ml`: the ML strategies' data (`ml dataset`: the features the
//! plugin computes, from `stratbox-features`, with labels).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use stratbox_research::dataset;

use crate::research::DataArgs;

#[derive(Subcommand)]
pub enum MlCmd {
    /// Write features and labels of stored bars to CSV, for training (the same code as the plugin's features).
    Dataset(DatasetArgs),
    /// The ensemble on its holdout: every model's and vote's classification metrics against baselines, per-fold validation, the strategy against buy-and-hold with the deflated Sharpe ratio (report.html, report.json).
    Report(ReportArgs),
}

#[derive(Args)]
pub struct ReportArgs {
    /// The host configuration with the [[model]]s and the ml-ensemble plugin (examples/configs/ml.toml).
    #[arg(long)]
    config: PathBuf,
    /// One stored symbol (`--symbols SPY`); `--from` moves the holdout's start (default: the cards').
    #[command(flatten)]
    data: DataArgs,
    /// The report folder.
    #[arg(long)]
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DatasetArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Label: whether the close this many bars later is higher.
    #[arg(long, default_value_t = 1)]
    horizon: usize,
    /// The CSV file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn ml(cmd: MlCmd, data_dir: &Path) -> Result<()> {
    match cmd {
        MlCmd::Report(a) => report(a, data_dir),
        MlCmd::Dataset(a) => {
            if a.horizon == 0 {
                bail!("--horizon 0: the label must look at least one bar ahead");
            }
            let (data, window) = a.data.load(data_dir)?;
            let rows = dataset::build(&data, window, a.horizon);
            if rows.is_empty() {
                bail!("no rows: each instrument needs {} bars before its first row, and the selection holds {} bars", stratbox_features::WINDOW, data.bars());
            }
            dataset::write_csv(&a.out, &rows).with_context(|| format!("writing {}", a.out.display()))?;
            let labelled = rows.iter().filter(|r| r.label.is_some()).count();
            let up = rows.iter().filter(|r| r.label.is_some_and(|l| l.0 == 1)).count();
            let symbols: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
            println!(
                "{}: {} rows of {} features ({} symbols, {} to {}), {labelled} labelled {} bars ahead ({:.1}% up)",
                a.out.display(),
                rows.len(),
                stratbox_features::COUNT,
                symbols.len(),
                stratbox_research::date(rows[0].time),
                stratbox_research::date(rows[rows.len() - 1].time),
                a.horizon,
                100.0 * up as f64 / labelled.max(1) as f64
            );
            Ok(())
        }
    }
}

fn report(a: ReportArgs, data_dir: &Path) -> Result<()> {
    let mut config = stratbox_engine::config::HostConfig::load(&a.config)?;
    config.data_dir = data_dir.to_owned();
    crate::run::resolve_bundled(&mut config)?;
    config.risk = stratbox_research::research_risk(config.risk.clone());
    let (data, window) = a.data.load(data_dir)?;
    let symbols: Vec<&str> = data.instruments().iter().map(|i| i.symbol.as_str()).collect();
    let [symbol] = symbols[..] else { bail!("--symbols: name one stored symbol to report on (loaded: {})", symbols.join(", ")) };
    let symbol = symbol.to_owned();
    let rows = dataset::build(&data, stratbox_research::Window::default(), 1);
    let report = stratbox_research::mlreport::report(&config, &std::sync::Arc::new(data), &symbol, window.from, &rows)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json = serde_json::to_vec_pretty(&report)?;
    std::fs::write(a.out.join("report.json"), &json).with_context(|| format!("writing {}", a.out.join("report.json").display()))?;
    std::fs::write(a.out.join("report.html"), stratbox_research::mlreport::page(&report)).with_context(|| format!("writing {}", a.out.join("report.html").display()))?;
    if a.json {
        println!("{}", String::from_utf8_lossy(&json));
        return Ok(());
    }
    println!("holdout {} to {} ({} days of {symbol})", report.holdout_from, report.holdout_to, report.members.first().map_or(0, |m| m.holdout.rows));
    let line = |name: &str, c: &stratbox_research::mlreport::Classification| {
        println!("  {name:<18} accuracy {:.4}  balanced {:.4}  log loss {:.4}  Brier {:.4}", c.accuracy, c.balanced_accuracy, c.log_loss, c.brier)
    };
    report.members.iter().for_each(|m| line(&m.name, &m.holdout));
    report.votes.iter().for_each(|(k, c)| line(&format!("{k} vote"), c));
    report.baselines.iter().for_each(|(k, c)| line(k, c));
    let s = &report.strategy;
    println!(
        "strategy: total return {:+.3}%, Sharpe {:.2}, max drawdown {:.3}%, {} fills; buy and hold {:+.2}%, Sharpe {:.2}; deflated Sharpe {:.3} over {} configurations",
        s.metrics.total_return * 100.0, s.metrics.sharpe, s.metrics.max_drawdown * 100.0, s.fills,
        report.buy_and_hold.total_return * 100.0, report.buy_and_hold.sharpe, report.deflated.dsr, report.deflated.configurations
    );
    println!("{}", a.out.join("report.html").display());
    Ok(())
}
