//! `stratbox ml report`: the ML ensemble judged on data it never saw.
//!
//! - Classification on the final holdout (by default the holdout the
//!   models' cards name: the last 12 months, untouched by training and
//!   tuning): each member's P(up), run here by the host's own engine on rows
//!   built by `stratbox-features`, and the soft, weighted and hard votes;
//!   accuracy, balanced accuracy, log loss, Brier score and calibration,
//!   against the majority class of the development rows, always-long and
//!   the development base rate; the Transformer against the LSTM.
//! - Per walk-forward fold: the validation metrics the training pipeline
//!   wrote (`ensemble.json` beside the models; the fold models are not kept).
//! - The strategy: the configured ensemble backtested over the holdout net
//!   of the paper broker's costs, against buy-and-hold of the symbol, and
//!   the deflated Sharpe ratio given every configuration tried (the tuning
//!   trials in the cards plus the variants run here: each voting rule and
//!   each member alone), whose spread of Sharpe ratios sets the bar.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use stratbox_engine::config::{HostConfig, ParamInput};
use stratbox_features::COUNT;
use stratbox_market::{NANOS_PER_SEC, ReplayData, Timestamp};
use stratbox_ml::Model;

use crate::backtest::{ResearchError, Window, backtest, benchmark_returns, daily_equity};
use crate::dataset::Example;
use crate::metrics::{Conventions, Metrics, moments};
use crate::overfitting::{expected_max_sharpe, probabilistic_sharpe, sharpe};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MlReportError {
    #[error("{0}")]
    Setup(String),
    #[error("model {name}: {source}")]
    Model { name: String, source: stratbox_ml::ModelError },
    #[error(transparent)]
    Run(#[from] ResearchError),
}

/// Probabilities of `up` judged against what happened.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub rows: usize,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub log_loss: f64,
    pub brier: f64,
    /// Deciles of P(up): rows, mean P(up), share that went up.
    pub calibration: Vec<(f64, usize, f64, f64)>,
}

/// The metrics of P(up) = `p` for outcomes `y` (1 up), probabilities clipped
/// to [1e-7, 1 - 1e-7] for the log loss (as the training pipeline does).
pub fn classify(y: &[u8], p: &[f64]) -> Classification {
    let n = y.len().max(1) as f64;
    let clip = |x: f64| x.clamp(1e-7, 1.0 - 1e-7);
    let hit = |c: u8| {
        let of: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        if of.is_empty() { 0.0 } else { of.iter().filter(|&&i| u8::from(p[i] > 0.5) == c).count() as f64 / of.len() as f64 }
    };
    let mut calibration = Vec::new();
    for d in 0..10 {
        let (lo, hi) = (d as f64 / 10.0, (d + 1) as f64 / 10.0);
        let at: Vec<usize> = (0..y.len()).filter(|&i| p[i] >= lo && (p[i] < hi || (d == 9 && p[i] <= 1.0))).collect();
        if !at.is_empty() {
            let m = at.len() as f64;
            calibration.push((lo, at.len(), at.iter().map(|&i| p[i]).sum::<f64>() / m, at.iter().map(|&i| f64::from(y[i])).sum::<f64>() / m));
        }
    }
    Classification {
        rows: y.len(),
        accuracy: (0..y.len()).filter(|&i| u8::from(p[i] > 0.5) == y[i]).count() as f64 / n,
        balanced_accuracy: (hit(0) + hit(1)) / 2.0,
        log_loss: -(0..y.len()).map(|i| if y[i] == 1 { clip(p[i]).ln() } else { (1.0 - clip(p[i])).ln() }).sum::<f64>() / n,
        brier: (0..y.len()).map(|i| (p[i] - f64::from(y[i])).powi(2)).sum::<f64>() / n,
        calibration,
    }
}

/// One member on the holdout.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub name: String,
    pub holdout: Classification,
    /// The training pipeline's per-fold validation metrics (from `ensemble.json`).
    pub folds: serde_json::Value,
    pub params: serde_json::Value,
    pub trials: u64,
}

/// One strategy run over the holdout.
#[derive(Debug, Clone, Serialize)]
pub struct Strategy {
    pub name: String,
    pub metrics: Metrics,
    /// Per-day Sharpe (for the deflation).
    pub daily_sharpe: f64,
    pub fills: usize,
    pub fees: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deflated {
    /// Configurations tried: tuning trials (from the cards) plus the variants run here.
    pub configurations: usize,
    /// The best Sharpe (per day) that many would reach by luck, from the variants' spread.
    pub benchmark_daily_sharpe: f64,
    pub daily_sharpe: f64,
    /// P(the configured ensemble's true Sharpe beats that benchmark).
    pub dsr: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MlReport {
    pub symbol: String,
    pub holdout_from: String,
    pub holdout_to: String,
    pub members: Vec<Member>,
    pub votes: BTreeMap<String, Classification>,
    pub weights: Vec<f64>,
    pub baselines: BTreeMap<String, Classification>,
    /// Transformer minus LSTM on the holdout (negative log loss and Brier: the Transformer is better).
    pub transformer_vs_lstm: BTreeMap<String, f64>,
    pub strategy: Strategy,
    pub variants: Vec<Strategy>,
    pub buy_and_hold: Metrics,
    pub deflated: Deflated,
}

fn day(t: Timestamp) -> i64 {
    (t - 1).div_euclid(86_400 * NANOS_PER_SEC)
}

/// The report for the ml-ensemble plugin of `config` over `data`'s `symbol`
/// (`rows`: its dataset). `holdout_from` overrides the cards' holdout start;
/// `ensemble.json` is read from beside the first model.
pub fn report(config: &HostConfig, data: &Arc<ReplayData>, symbol: &str, holdout_from: Option<Timestamp>, rows: &[Example]) -> Result<MlReport, MlReportError> {
    let setup = |m: String| MlReportError::Setup(m);
    let plugin = config
        .plugins
        .iter()
        .position(|p| p.resolved_name().replace('_', "-") == "ml-ensemble")
        .ok_or_else(|| setup("the config runs no ml-ensemble plugin".into()))?;
    if config.models.is_empty() {
        return Err(setup("the config declares no [[model]]".into()));
    }
    let models: Vec<(String, Model)> = config
        .models
        .iter()
        .map(|d| Model::load(&d.path).map(|m| (d.name.clone(), m)).map_err(|source| MlReportError::Model { name: d.name.clone(), source }))
        .collect::<Result<_, _>>()?;
    let training = models[0].1.card.training.clone();
    let holdout_from = match holdout_from {
        Some(t) => t,
        None => {
            let from = training["holdout_range"][0].as_str();
            let from = from.ok_or_else(|| setup(format!("the card of {} names no holdout (training.holdout_range); give --from", models[0].0)))?;
            crate::parse_date(from).map_err(setup)?
        }
    };
    let dir = config.models[0].path.parent().unwrap_or(Path::new("."));
    let training_report: serde_json::Value = std::fs::read(dir.join("ensemble.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();

    // Holdout rows with the longest member's history; development rows for the base rate.
    let steps: Vec<usize> = models.iter().map(|(_, m)| m.row_width() / COUNT).collect();
    let longest = steps.iter().copied().max().unwrap_or(1);
    let mut recent: VecDeque<&[f32]> = VecDeque::new();
    let (mut inputs, mut y, mut dev_up, mut dev_n) = (vec![Vec::new(); models.len()], Vec::new(), 0usize, 0usize);
    let mut last = None;
    for r in rows.iter().filter(|r| r.symbol == symbol) {
        recent.push_back(&r.features);
        if recent.len() > longest {
            recent.pop_front();
        }
        let Some((up, _)) = r.label else { continue };
        if r.time < holdout_from {
            dev_up += usize::from(up);
            dev_n += 1;
            continue;
        }
        if recent.len() < longest {
            continue;
        }
        for (k, &s) in steps.iter().enumerate() {
            inputs[k].push(recent.iter().skip(longest - s).flat_map(|f| f.iter().copied()).collect::<Vec<f32>>());
        }
        y.push(up);
        last = Some(r.time);
    }
    let last = last.ok_or_else(|| setup(format!("no labelled rows of {symbol} after {}", crate::date(holdout_from))))?;
    let mut probs: Vec<Vec<f64>> = Vec::new();
    let mut members = Vec::new();
    for ((name, m), rows) in models.iter().zip(&inputs) {
        let up = m.card.classes.iter().position(|c| c == "up").ok_or_else(|| setup(format!("model {name} has no class `up`")))?;
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let p = m.predict(&flat).map_err(|e| setup(format!("model {name}: {e}")))?;
        let p: Vec<f64> = p.chunks(m.card.classes.len()).map(|c| f64::from(c[up])).collect();
        let t = &training_report["members"][name];
        members.push(Member {
            name: name.clone(),
            holdout: classify(&y, &p),
            folds: t["folds"].clone(),
            params: m.card.training["params"].clone(),
            trials: m.card.training["trials"].as_u64().unwrap_or(0),
        });
        probs.push(p);
    }
    let weights: Vec<f64> = models.iter().map(|(n, _)| training_report["weights"][n].as_f64().unwrap_or(1.0)).collect();
    let total: f64 = weights.iter().sum();
    let vote = |f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> { (0..y.len()).map(|i| f(&probs.iter().map(|p| p[i]).collect::<Vec<_>>())).collect() };
    let mut votes = BTreeMap::new();
    votes.insert("soft".to_owned(), classify(&y, &vote(&|p| p.iter().sum::<f64>() / p.len() as f64)));
    votes.insert("weighted".to_owned(), classify(&y, &vote(&|p| p.iter().zip(&weights).map(|(x, w)| x * w).sum::<f64>() / total)));
    votes.insert("hard".to_owned(), classify(&y, &vote(&|p| p.iter().filter(|&&x| x > 0.5).count() as f64 / p.len() as f64)));
    let base_rate = dev_up as f64 / dev_n.max(1) as f64;
    let mut baselines = BTreeMap::new();
    baselines.insert("majority class".to_owned(), classify(&y, &vec![if base_rate >= 0.5 { 1.0 } else { 0.0 }; y.len()]));
    baselines.insert("always long".to_owned(), classify(&y, &vec![1.0; y.len()]));
    baselines.insert("base rate".to_owned(), classify(&y, &vec![base_rate; y.len()]));
    let find = |kind: &str| members.iter().find(|m| m.name.starts_with(kind));
    let mut transformer_vs_lstm = BTreeMap::new();
    if let (Some(t), Some(l)) = (find("transformer"), find("lstm")) {
        for (k, a, b) in [
            ("accuracy", t.holdout.accuracy, l.holdout.accuracy),
            ("balanced_accuracy", t.holdout.balanced_accuracy, l.holdout.balanced_accuracy),
            ("log_loss", t.holdout.log_loss, l.holdout.log_loss),
            ("brier", t.holdout.brier, l.holdout.brier),
        ] {
            transformer_vs_lstm.insert(k.to_owned(), a - b);
        }
    }

    // The strategy over the holdout, warmed up on the days before it (the
    // ensemble needs its feature window); returns count from the holdout on.
    let warm = (stratbox_features::WINDOW + longest + 10) as i64 * 86_400 * NANOS_PER_SEC * 7 / 5;
    let window = Window { from: Some(holdout_from - warm), to: Some(last + 1) };
    let run_one = |name: &str, edit: &dyn Fn(&mut HostConfig)| -> Result<(Strategy, Vec<f64>, Vec<Timestamp>), MlReportError> {
        let mut c = config.clone();
        c.plugins = vec![c.plugins[plugin].clone()];
        edit(&mut c);
        let run = backtest(data, &c, window)?;
        let days = daily_equity(&run.equity);
        let keep: Vec<usize> = (1..days.len()).filter(|&k| day(days[k].time) > day(holdout_from)).collect();
        let r: Vec<f64> = keep.iter().map(|&k| days[k].equity / days[k - 1].equity - 1.0).collect();
        let times: Vec<Timestamp> = keep.iter().map(|&k| days[k].time).collect();
        let s = Strategy { name: name.to_owned(), metrics: Metrics::of(&r, Conventions::default()), daily_sharpe: sharpe(&r), fills: run.fills.len(), fees: run.fills.iter().map(|f| f.fee).sum() };
        Ok((s, r, times))
    };
    let (strategy, returns, times) = run_one("as configured", &|_| {})?;
    let names: Vec<String> = models.iter().map(|(n, _)| n.clone()).collect();
    let weight_text = weights.iter().map(|w| format!("{w}")).collect::<Vec<_>>().join(",");
    let mut variants = Vec::new();
    for voting in ["soft", "weighted", "hard"] {
        let wt = weight_text.clone();
        variants.push(run_one(&format!("{voting} vote"), &|c| {
            let p = &mut c.plugins[0].params;
            p.insert("voting".into(), ParamInput::Text(voting.into()));
            p.insert("weights".into(), ParamInput::Text(wt.clone()));
        })?.0);
    }
    for n in &names {
        variants.push(run_one(&format!("{n} alone"), &|c| {
            let p = &mut c.plugins[0].params;
            p.insert("models".into(), ParamInput::Text(n.clone()));
            p.insert("voting".into(), ParamInput::Text("soft".into()));
            p.remove("weights");
        })?.0);
    }
    let bench = benchmark_returns(data, Window { from: Some(holdout_from - 7 * 86_400 * NANOS_PER_SEC), to: window.to }, Some(symbol), &times)
        .ok_or_else(|| setup(format!("{symbol} is not among the loaded symbols")))?;
    let tried: usize = members.iter().map(|m| m.trials as usize).sum::<usize>() + variants.len();
    let spread: Vec<f64> = variants.iter().map(|v| v.daily_sharpe).filter(|s| s.is_finite()).collect();
    let variance = if spread.len() >= 2 { crate::metrics::std(&spread).powi(2) } else { 0.0 };
    let benchmark = expected_max_sharpe(tried, variance);
    let (skew, excess) = moments(&returns);
    let deflated = Deflated { configurations: tried, benchmark_daily_sharpe: benchmark, daily_sharpe: strategy.daily_sharpe, dsr: probabilistic_sharpe(strategy.daily_sharpe, benchmark, returns.len(), skew, excess + 3.0) };
    Ok(MlReport {
        symbol: symbol.to_owned(),
        holdout_from: crate::date(holdout_from),
        holdout_to: crate::date(last),
        members,
        votes,
        weights,
        baselines,
        transformer_vs_lstm,
        strategy,
        variants,
        buy_and_hold: Metrics::of(&bench, Conventions::default()),
        deflated,
    })
}

fn pct(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

fn row(name: &str, c: &Classification) -> Vec<String> {
    vec![name.to_owned(), c.rows.to_string(), format!("{:.4}", c.accuracy), format!("{:.4}", c.balanced_accuracy), format!("{:.4}", c.log_loss), format!("{:.4}", c.brier)]
}

/// The report as one self-contained page.
pub fn page(r: &MlReport) -> String {
    let mut page = crate::html::Page::new(&format!("ML ensemble on {}: holdout {} to {}", r.symbol, r.holdout_from, r.holdout_to));
    page.note("Every number below is out of sample: the holdout was never used to train, tune or choose. Member probabilities are the host's (tract) on rows built by stratbox-features; the per-fold rows are the training pipeline's validation folds.");
    let header = ["", "rows", "accuracy", "balanced accuracy", "log loss", "Brier"];
    let mut rows: Vec<Vec<String>> = r.members.iter().map(|m| row(&m.name, &m.holdout)).collect();
    rows.extend(r.votes.iter().map(|(k, c)| row(&format!("{k} vote"), c)));
    rows.extend(r.baselines.iter().map(|(k, c)| row(k, c)));
    page.grid("Holdout classification", &header, &rows);
    let mut folds = Vec::new();
    for m in &r.members {
        for (k, f) in m.folds.as_array().into_iter().flatten().enumerate() {
            let g = |key: &str| f[key].as_f64().map_or("-".into(), |v| format!("{v:.4}"));
            folds.push(vec![m.name.clone(), (k + 1).to_string(), f["rows"].to_string(), g("accuracy"), g("balanced_accuracy"), g("log_loss"), g("brier")]);
        }
    }
    page.grid("Walk-forward validation folds (training pipeline)", &["model", "fold", "rows", "accuracy", "balanced accuracy", "log loss", "Brier"], &folds);
    let cal: Vec<Vec<String>> = r.votes.get("weighted").into_iter().flat_map(|c| c.calibration.iter()).map(|(lo, n, mp, up)| vec![format!("{lo:.1}-{:.1}", lo + 0.1), n.to_string(), format!("{mp:.3}"), format!("{up:.3}")]).collect();
    page.grid("Calibration of the weighted vote", &["P(up)", "rows", "mean P(up)", "share up"], &cal);
    page.table("Transformer minus LSTM (holdout)", &r.transformer_vs_lstm.iter().map(|(k, v)| (k.clone(), format!("{v:+.4}"))).collect::<Vec<_>>());
    let strat = |s: &Strategy| vec![s.name.clone(), pct(s.metrics.total_return), format!("{:.2}", s.metrics.sharpe), pct(s.metrics.max_drawdown), s.fills.to_string(), format!("{:.2}", s.fees)];
    let mut lines = vec![strat(&r.strategy)];
    lines.extend(r.variants.iter().map(strat));
    lines.push(vec!["buy and hold".into(), pct(r.buy_and_hold.total_return), format!("{:.2}", r.buy_and_hold.sharpe), pct(r.buy_and_hold.max_drawdown), "-".into(), "-".into()]);
    page.grid("The strategy over the holdout, net of costs", &["run", "total return", "Sharpe", "max drawdown", "fills", "fees"], &lines);
    let d = &r.deflated;
    page.table("Deflated Sharpe ratio", &[
        ("configurations tried".into(), d.configurations.to_string()),
        ("daily Sharpe".into(), format!("{:.4}", d.daily_sharpe)),
        ("luck's best daily Sharpe".into(), format!("{:.4}", d.benchmark_daily_sharpe)),
        ("DSR".into(), format!("{:.3}", d.dsr)),
    ]);
    page.render()
}
