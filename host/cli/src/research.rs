//! `stratbox backtest`: one run of plugins over stored bars through the host's
//! own pipeline (stratbox-research), with its report folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use stratbox_engine::config::{FeedConfig, HostConfig, ParamInput, PluginSpec};
use stratbox_market::{ReplayConfig, ReplayData, Timestamp};
use stratbox_research::backtest::{benchmark_returns, daily_equity};
use stratbox_research::report::{Inputs, PluginInput, write_report};
use stratbox_research::{Window, html, metrics::Conventions, research_risk};

use crate::report::TimeRange;

/// Which stored bars a research command replays.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Symbols, comma-separated (default: every symbol stored with the period).
    #[arg(long, value_delimiter = ',')]
    symbols: Vec<String>,
    #[command(flatten)]
    range: TimeRange,
    /// Bar period: 1d, 1h, 15m, 1m or seconds.
    #[arg(long)]
    period: Option<String>,
    /// Price series: trade (default), or bid, ask, mid for quote data (FX).
    #[arg(long)]
    source: Option<String>,
}

impl DataArgs {
    /// Applies the flags to `replay` (a config's replay feed, or the default)
    /// and returns the window asked for, the flags before the feed's own
    /// bounds. The data is loaded whole (once): `replay` keeps no bounds.
    fn select(&self, replay: &mut ReplayConfig) -> Result<Window> {
        if !self.symbols.is_empty() {
            replay.symbols = self.symbols.clone();
        }
        if let Some(src) = &self.source {
            replay.source = stratbox_research::parse_source(src).map_err(|e| anyhow::anyhow!("--{e}"))?;
        }
        if let Some(p) = &self.period {
            replay.period_secs = parse_period(p)?;
        }
        let (from, to) = self.range.parse()?;
        let (from, to) = (from.or(replay.from.take()), to.or(replay.to.take()));
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            bail!("empty date range: --from {} is not before --to {}", stratbox_research::date(f), stratbox_research::date(t));
        }
        Ok(Window { from, to })
    }

    /// The stored bars these flags select (loaded whole) and the window asked for.
    pub fn load(&self, data_dir: &Path) -> Result<(ReplayData, Window)> {
        let mut replay = ReplayConfig::default();
        let window = self.select(&mut replay)?;
        Ok((ReplayData::load(&market_store(data_dir)?, &replay)?, window))
    }
}

/// `<data_dir>/market`, which must exist.
fn market_store(data_dir: &Path) -> Result<PathBuf> {
    let store = data_dir.join("market");
    if !store.exists() {
        bail!("no market store at {}: import data first (stratbox data import FILE)", store.display());
    }
    Ok(store)
}

/// What to run and on which data (shared by the research commands).
#[derive(Args, Clone)]
pub struct RunArgs {
    /// (A config's replay feed gives the symbols and period unless the data flags do.)
    #[command(flatten)]
    what: ConfigArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Benchmark: a stored symbol, or `equal-weight` (the universe's mean return).
    #[arg(long, default_value = "equal-weight")]
    benchmark: String,
}

#[derive(Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The report folder (report.html, metrics.json, equity.csv, trades.csv, fills.csv, positions.csv, inputs.json).
    #[arg(long)]
    out: PathBuf,
    /// No progress bar, no headline.
    #[arg(long)]
    quiet: bool,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
    /// Also resample the run into this many Monte Carlo paths (montecarlo.html and .json in --out).
    #[arg(long)]
    monte_carlo: Option<usize>,
    #[command(flatten)]
    mc: crate::montecarlo::McOptions,
}

fn parse_period(s: &str) -> Result<u32> {
    stratbox_research::parse_period(s).map_err(|e| anyhow::anyhow!("--{e}"))
}

/// What to run, without data: a config or a plugin, capital, risk profile.
/// Shared by the research commands and `stress` (whose scenarios bring their data).
#[derive(Args, Clone)]
pub struct ConfigArgs {
    /// Host configuration (TOML): plugins, risk, broker.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A plugin component to run (instead of the config's plugins); a bare
    /// name (`sma-cross`) is the bundled plugin of that name.
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// A parameter of --plugin, `NAME=VALUE` (repeatable).
    #[arg(long = "param", value_parser = crate::plugin::parse_param)]
    pub params: Vec<(String, ParamInput)>,
    /// A stop policy protecting --plugin's positions (a .wasm file or a bundled name: stops).
    #[arg(long, requires = "plugin")]
    pub stop_policy: Option<PathBuf>,
    /// A parameter of --stop-policy, `NAME=VALUE` (repeatable).
    #[arg(long = "stop-param", value_parser = crate::plugin::parse_param, requires = "stop_policy")]
    pub stop_params: Vec<(String, ParamInput)>,
    /// An anomaly detector beside --plugin, whose alarms the risk engine's breakers act on (zscore-guard).
    #[arg(long = "with-detector", requires = "plugin")]
    pub detector: Option<PathBuf>,
    /// A parameter of --with-detector, `NAME=VALUE` (repeatable).
    #[arg(long = "detector-param", value_parser = crate::plugin::parse_param, requires = "detector")]
    pub detector_params: Vec<(String, ParamInput)>,
    /// Starting capital (default: the config's risk capital).
    #[arg(long)]
    pub capital: Option<f64>,
    /// Risk limits: `research` (the configured ones, throttles and the open-order
    /// count lifted) or `configured` (exactly as live).
    #[arg(long, default_value = "research")]
    pub risk: String,
}

impl ConfigArgs {
    /// The host configuration to run: plugins, capital and risk profile applied.
    pub fn host_config(&self, data_dir: &Path) -> Result<HostConfig> {
        let mut config = match &self.config {
            Some(path) => HostConfig::load(path)?,
            None => HostConfig { data_dir: data_dir.to_owned(), ..HostConfig::default() },
        };
        if self.config.is_none() || std::env::var_os("STRATBOX_DATA").is_some() {
            config.data_dir = data_dir.to_owned();
        }
        crate::run::resolve_bundled(&mut config)?;
        if let Some(plugin) = &self.plugin {
            let mut spec = PluginSpec::new(resolve_plugin(plugin, data_dir)?);
            spec.params = self.params.iter().cloned().collect();
            config.plugins = vec![spec];
            if let Some(stops) = &self.stop_policy {
                let mut stop = PluginSpec::new(resolve_plugin(stops, data_dir)?);
                stop.params = self.stop_params.iter().cloned().collect();
                config.plugins.push(stop);
            }
            if let Some(detector) = &self.detector {
                let mut d = PluginSpec::new(resolve_plugin(detector, data_dir)?);
                d.params = self.detector_params.iter().cloned().collect();
                config.plugins.push(d);
            }
        } else if !self.params.is_empty() {
            bail!("--param needs --plugin (a config's plugins take their params from the config)");
        }
        if config.plugins.is_empty() {
            bail!("nothing to run: name a plugin (--plugin sma-cross, or a .wasm file) or a config with [[plugin]] entries (--config)");
        }
        if let Some(c) = self.capital {
            if !(c.is_finite() && c > 0.0) {
                bail!("--capital {c}: must be a positive amount");
            }
            config.risk.capital = c;
        }
        match self.risk.as_str() {
            "research" => config.risk = research_risk(config.risk.clone()),
            "configured" => {}
            other => bail!("--risk `{other}`: expected research or configured"),
        }
        Ok(config)
    }
}

impl RunArgs {
    /// One plugin (a detector, say) over the given data, nothing else.
    pub fn of_plugin(plugin: PathBuf, params: Vec<(String, ParamInput)>, data: DataArgs) -> Self {
        let what = ConfigArgs { config: None, plugin: Some(plugin), params, stop_policy: None, stop_params: Vec::new(), detector: None, detector_params: Vec::new(), capital: None, risk: "research".into() };
        Self { what, data, benchmark: "equal-weight".into() }
    }
}

/// A research run's configuration and data, resolved from the flags.
pub struct Prepared {
    pub config: HostConfig,
    pub config_text: String,
    pub data: Arc<ReplayData>,
    pub window: Window,
    pub replay: ReplayConfig,
}

impl RunArgs {
    pub fn prepare(&self, data_dir: &Path, quiet: bool) -> Result<Prepared> {
        let mut config = self.what.host_config(data_dir)?;
        let mut replay = match &config.feed {
            FeedConfig::Replay(r) => r.clone(),
            _ => ReplayConfig::default(),
        };
        // The data is loaded whole (once), the window applied by the runs.
        let window = self.data.select(&mut replay)?;
        let (from, to) = (window.from, window.to);
        let store = market_store(&config.data_dir)?;
        let spinner = (!quiet).then(|| ProgressBar::new_spinner().with_message(format!("loading bars from {}", store.display())));
        let data = ReplayData::load(&store, &replay)?;
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        config.feed = FeedConfig::Replay(ReplayConfig { from, to, ..replay.clone() });
        let config_text = toml_of(&config);
        Ok(Prepared { config, config_text, data: Arc::new(data), window, replay })
    }
}

fn toml_of(config: &HostConfig) -> String {
    // The config as run; what cannot be written as TOML is said so in its place.
    match serde_json::to_value(config) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(e) => format!("(the configuration could not be serialised: {e})"),
    }
}

/// A path, or the bundled plugin of that name (`sma-cross` -> `sma_cross.wasm`).
fn resolve_plugin(p: &Path, data_dir: &Path) -> Result<PathBuf> {
    if p.exists() {
        return Ok(p.to_owned());
    }
    let name = p.to_string_lossy();
    if !name.contains('/') && !name.ends_with(".wasm") {
        let dir = crate::run::bundled_plugin_dir(data_dir)?;
        let file = dir.join(format!("{}.wasm", name.replace('-', "_")));
        if file.exists() {
            return Ok(file);
        }
        let names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| Some(e.ok()?.path().file_stem()?.to_string_lossy().replace('_', "-"))).collect())
            .unwrap_or_default();
        bail!("--plugin {name}: no such file, and no bundled plugin of that name (bundled: {})", names.join(", "));
    }
    bail!("--plugin {}: no such file", p.display())
}

pub fn progress_bar(total: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {what} ({{per_sec}}, ETA {{eta}})"))
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

fn show(t: Option<Timestamp>) -> Option<String> {
    t.map(stratbox_research::date)
}

pub fn backtest_cmd(a: BacktestArgs, data_dir: &Path) -> Result<()> {
    let p = a.run.prepare(data_dir, a.quiet || a.json)?;
    let bar = progress_bar(0, "bars", a.quiet || a.json);
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let run = stratbox_research::backtest::backtest_with_progress(&p.data, &p.config, p.window, &mut progress)?;
    bar.finish_and_clear();
    let days: Vec<Timestamp> = daily_equity(&run.equity).iter().map(|e| e.time).collect();
    let symbol = (a.run.benchmark != "equal-weight").then_some(a.run.benchmark.as_str());
    let bench = benchmark_returns(&p.data, p.window, symbol, &days)
        .with_context(|| format!("--benchmark {}: not among the loaded symbols (name a stored symbol, or equal-weight)", a.run.benchmark))?;
    let metrics = run.metrics(Conventions::default(), Some(&bench));
    let plugins = run
        .summary
        .plugins
        .iter()
        .zip(&p.config.plugins)
        .map(|(v, spec)| PluginInput {
            name: v.name.clone(),
            path: spec.path.display().to_string(),
            // The full SHA-256 of the file run (the summary's is a short prefix).
            sha256: std::fs::read(&spec.path).map(|b| stratbox_sandbox::content_hash(&b)).unwrap_or_else(|_| v.hash.clone()),
            version: v.version.clone(),
            params: serde_json::to_value(&spec.params).unwrap_or_default(),
        })
        .collect();
    let span = p.data.span();
    let inputs = Inputs {
        config: p.config_text.clone(),
        plugins,
        symbols: p.data.instruments().len(),
        period_secs: p.replay.period_secs,
        from: show(p.window.from),
        to: show(p.window.to),
        first_bar: span.map(|s| stratbox_research::date(s.0)),
        last_close: span.map(|s| stratbox_research::date(s.1)),
        bars: run.bars,
        seed: None,
        benchmark: a.run.benchmark.clone(),
        stratbox_version: env!("CARGO_PKG_VERSION"),
    };
    let title = format!("Backtest: {}", p.config.plugins.iter().map(|s| s.path.file_stem().map_or(String::new(), |f| f.to_string_lossy().into_owned())).collect::<Vec<_>>().join(", "));
    let page = html::backtest_page(&title, &run, &metrics, Some((&a.run.benchmark, &bench)));
    write_report(&a.out, &run, &metrics, &inputs, Some(&bench), &page)?;
    if let Some(paths) = a.monte_carlo {
        let saved = stratbox_research::report::SavedRun::read(&a.out)?;
        crate::montecarlo::run(&saved, paths, &a.mc, &a.out, &a.out.display().to_string(), true, false)?;
    }
    if a.json {
        return crate::print_json(&metrics);
    }
    if !a.quiet {
        let m = &metrics.returns;
        println!(
            "{} bars in {:.2} s ({:.2}M bars/s); {} fills, {} closed trades, {} orders refused by risk",
            run.bars,
            run.wall.as_secs_f64(),
            run.bars as f64 / run.wall.as_secs_f64() / 1e6,
            metrics.fills,
            metrics.trades.trades,
            metrics.refused_orders
        );
        println!(
            "total return {:.2}%  CAGR {:.2}%  Sharpe {:.2}  Sortino {:.2}  max drawdown {:.2}%  win rate {:.1}%  profit factor {:.2}",
            m.total_return * 100.0,
            m.annual_return * 100.0,
            m.sharpe,
            m.sortino,
            m.max_drawdown * 100.0,
            metrics.trades.win_rate * 100.0,
            metrics.trades.profit_factor
        );
        for (plugin, reason) in &run.faults {
            println!("plugin {plugin} was quarantined: {reason}");
        }
        println!("report: {}", a.out.join("report.html").display());
        if a.monte_carlo.is_some() {
            println!("Monte Carlo: {}", a.out.join("montecarlo.html").display());
        }
    }
    Ok(())
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct OptimizeArgs {
    #[command(subcommand)]
    merge: Option<OptimizeCmd>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    study: StudyArgs,
    /// The study file (JSON lines: a header, then one line per trial as it finishes).
    #[arg(long, default_value = "study.jsonl")]
    study_file: PathBuf,
    /// Continue the study in --study-file: its trials are not run again.
    #[arg(long)]
    resume: bool,
    /// Run part K of N of the study (trials i with i % N == K - 1); `optimize merge` combines the parts.
    #[arg(long)]
    shard: Option<String>,
    /// Write study.html and leaderboard.csv here.
    #[arg(long)]
    report: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
    /// Print the outcome (best trial, leaderboard, guards) as JSON.
    #[arg(long)]
    json: bool,
}

/// How to search (shared by optimize and walk-forward).
#[derive(Args, Clone)]
pub struct StudyArgs {
    /// Space file (TOML, a table per parameter: min, max, step, log, choices); default: the plugin's declared ranges.
    #[arg(long)]
    space: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    trials: u64,
    /// tpe, random or grid.
    #[arg(long, default_value = "tpe")]
    sampler: String,
    /// The metric to optimise (metrics.json's names; trades is the number of closed trades).
    #[arg(long, default_value = "sharpe")]
    objective: String,
    /// max or min (default: the metric's better direction).
    #[arg(long)]
    direction: Option<String>,
    /// A bound every counted trial keeps, e.g. `trades>=30` or `max_drawdown<=0.25` (repeatable).
    #[arg(long = "constraint")]
    constraints: Vec<String>,
    /// Trials run at once (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials TPE asks from the same state (fixed, so a study does not depend on --jobs).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Random trials before TPE starts modelling.
    #[arg(long, default_value_t = 10)]
    startup: usize,
    /// Blocks for the probability of backtest overfitting (CSCV; even, 2..16).
    #[arg(long, default_value_t = 10)]
    partitions: usize,
}

#[derive(clap::Subcommand)]
pub enum OptimizeCmd {
    /// Combine the shard files of one study into one study file.
    Merge {
        files: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

use stratbox_research::space::{ParamDecl, Space};
use stratbox_research::study::{self, Bench, Constraint, Direction, Sampler, Shard, StudyFile, StudySpec, TrialRecord};

/// The declared parameters of a plugin component (its `describe`).
pub fn declared_params(path: &Path) -> Result<(stratbox_authoring::InspectReport, Vec<ParamDecl>)> {
    let report = stratbox_authoring::inspect(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let params = report
        .params
        .iter()
        .map(|p| {
            let default = match p.kind {
                "integer" => ParamInput::Integer(p.default.parse().unwrap_or_default()),
                "number" => ParamInput::Number(p.default.parse().unwrap_or_default()),
                "flag" => ParamInput::Flag(p.default == "true"),
                _ => ParamInput::Text(p.default.trim_matches('"').to_owned()),
            };
            ParamDecl { name: p.name.clone(), default, min: p.min, max: p.max }
        })
        .collect();
    Ok((report, params))
}

impl StudyArgs {
    /// The study's definition, every input checked before a trial runs.
    pub fn spec(&self, p: &Prepared, shard: Shard) -> Result<StudySpec> {
        let plugin = p.config.plugins.first().context("no plugin to tune")?;
        let (report, decls) = declared_params(&plugin.path)?;
        let space = match &self.space {
            Some(f) => {
                let text = std::fs::read_to_string(f).with_context(|| format!("cannot read the space file {}", f.display()))?;
                Space::from_file(&decls, &text, &f.display().to_string())?
            }
            None => Space::from_descriptor(&decls)?,
        };
        if let Some((name, _)) = space.dims.iter().find(|(n, _)| plugin.params.contains_key(n)) {
            bail!("--param {name} is fixed, but the space searches it: drop one of the two");
        }
        let sampler: Sampler = self.sampler.parse().map_err(|e| anyhow::anyhow!("--sampler {e}"))?;
        if sampler == Sampler::Grid {
            space.grid_size()?;
        }
        let names = study::metric_names();
        if !names.contains(&self.objective) {
            return Err(study::StudyError::UnknownObjective { name: self.objective.clone(), known: names.join(", ") }.into());
        }
        let direction = match self.direction.as_deref() {
            None => study::default_direction(&self.objective),
            Some("max") | Some("maximize") => Direction::Maximize,
            Some("min") | Some("minimize") => Direction::Minimize,
            Some(other) => bail!("--direction `{other}`: expected max or min"),
        };
        let constraints = self.constraints.iter().map(|c| Constraint::parse(c)).collect::<Result<Vec<_>, _>>()?;
        if self.trials == 0 {
            bail!("--trials 0: a study needs at least one trial");
        }
        if !(2..=16).contains(&self.partitions) || self.partitions % 2 == 1 {
            bail!("--partitions {}: PBO needs an even number from 2 to 16", self.partitions);
        }
        let span = p.data.span();
        let data = format!(
            "{} instruments, {} bars of {} s, {} to {}",
            p.data.instruments().len(),
            p.data.bars(),
            p.replay.period_secs,
            span.map_or("-".into(), |s| stratbox_research::date(s.0)),
            span.map_or("-".into(), |s| stratbox_research::date(s.1))
        );
        Ok(StudySpec {
            plugin: report.name,
            plugin_version: report.version,
            plugin_sha256: report.sha256,
            space,
            fixed: plugin.params.clone(),
            sampler,
            objective: self.objective.clone(),
            direction,
            constraints,
            seed: self.seed,
            shard,
            batch: self.batch.max(1),
            startup: self.startup,
            window: p.window,
            data,
        })
    }

    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

fn show_params(spec: &StudySpec, t: &TrialRecord) -> String {
    spec.space.dims.iter().map(|(n, _)| format!("{n}={}", t.params.get(n).map_or("-".into(), stratbox_research::space::show))).collect::<Vec<_>>().join(" ")
}

/// The outcome of a study, printed or as JSON.
#[derive(serde::Serialize)]
struct StudyOutcome<'a> {
    study_file: String,
    trials: usize,
    complete: usize,
    infeasible: usize,
    failed: usize,
    ran_now: usize,
    wall_secs: f64,
    best: Option<&'a TrialRecord>,
    leaderboard: Vec<(u64, &'a std::collections::BTreeMap<String, ParamInput>, Option<f64>)>,
    guards: &'a study::Guards,
    note: Option<String>,
}

fn summarise(file: &StudyFile, path: &Path, ran: usize, wall: std::time::Duration, partitions: usize, note: Option<String>, report: Option<&Path>, json: bool, quiet: bool) -> Result<()> {
    let guards = study::guards(file, partitions);
    let board = study::leaderboard(&file.spec, file.trials.values());
    let count = |s: study::TrialState| file.trials.values().filter(|t| t.state == s).count();
    if let Some(dir) = report {
        create_report_dir(dir)?;
        let title = format!("Study: {} ({} trials, {:?})", file.spec.plugin, file.trials.len(), file.spec.sampler);
        let html = stratbox_research::html::study_page(&title, file, &guards, note.as_deref());
        std::fs::write(dir.join("study.html"), html).with_context(|| format!("cannot write {}", dir.join("study.html").display()))?;
        let mut w = csv::Writer::from_path(dir.join("leaderboard.csv"))?;
        let names: Vec<&String> = file.spec.space.dims.iter().map(|d| &d.0).collect();
        let metrics: Vec<String> = board.first().map(|t| t.metrics.keys().cloned().collect()).unwrap_or_default();
        let mut header = vec!["rank".to_owned(), "trial".into()];
        header.extend(names.iter().map(|n| n.to_string()));
        header.push("objective".into());
        header.extend(metrics.iter().cloned());
        w.write_record(&header)?;
        for (k, t) in board.iter().enumerate() {
            let mut r = vec![(k + 1).to_string(), t.trial.to_string()];
            r.extend(names.iter().map(|n| t.params.get(*n).map_or(String::new(), stratbox_research::space::show)));
            r.push(t.value.map_or(String::new(), |v| v.to_string()));
            r.extend(metrics.iter().map(|m| t.metrics.get(m).map_or(String::new(), |v| v.to_string())));
            w.write_record(&r)?;
        }
        w.flush()?;
    }
    let outcome = StudyOutcome {
        study_file: path.display().to_string(),
        trials: file.trials.len(),
        complete: count(study::TrialState::Complete),
        infeasible: count(study::TrialState::Infeasible),
        failed: count(study::TrialState::Failed),
        ran_now: ran,
        wall_secs: wall.as_secs_f64(),
        best: board.first().copied(),
        leaderboard: board.iter().take(10).map(|t| (t.trial, &t.params, t.value)).collect(),
        guards: &guards,
        note: note.clone(),
    };
    if json {
        return crate::print_json(&outcome);
    }
    if quiet {
        return Ok(());
    }
    let repeats = file.trials.values().filter(|t| t.same_as.is_some()).count();
    println!(
        "{} trials ({} complete, {} infeasible, {} failed; {repeats} asked again for parameters already run, not run again); {} recorded now in {:.1} s; study file {}",
        outcome.trials, outcome.complete, outcome.infeasible, outcome.failed, ran, outcome.wall_secs, outcome.study_file
    );
    if let Some(n) = &note {
        println!("{n}");
    }
    for (k, t) in board.iter().take(10).enumerate() {
        let m = |name: &str| t.metrics.get(name).copied().unwrap_or(f64::NAN);
        println!(
            "{:>3}. trial {:>5}  {:<28} {} {:>9.4}  sharpe {:>6.2}  CAGR {:>6.2}%  max dd {:>6.2}%  trades {}",
            k + 1,
            t.trial,
            show_params(&file.spec, t),
            file.spec.objective,
            t.value.unwrap_or(f64::NAN),
            m("sharpe"),
            m("annual_return") * 100.0,
            m("max_drawdown") * 100.0,
            m("trades")
        );
    }
    if let Some(d) = &guards.deflated {
        println!(
            "deflated Sharpe of the best: {:.4} (its per-period Sharpe {:.4} against {:.4}, what the best of {} trials reaches by luck)",
            d.dsr, d.sharpe, d.benchmark, d.trials
        );
    }
    if let Some(p) = &guards.pbo {
        println!("probability of backtest overfitting (CSCV, {} blocks, {} splits): {:.3}", p.partitions, p.logits.len(), p.pbo);
    }
    for n in &guards.notes {
        println!("{n}");
    }
    let failed: Vec<&TrialRecord> = file.trials.values().filter(|t| t.state == study::TrialState::Failed).collect();
    if let Some(t) = failed.first() {
        println!("{} trials failed; the first, trial {}: {}", failed.len(), t.trial, t.reason.as_deref().unwrap_or("?"));
    }
    if let Some(dir) = report {
        println!("report: {}", dir.join("study.html").display());
    }
    Ok(())
}

fn create_report_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

pub fn optimize_cmd(a: OptimizeArgs, data_dir: &Path) -> Result<()> {
    if let Some(OptimizeCmd::Merge { files, out, report, json }) = a.merge {
        if files.is_empty() {
            bail!("optimize merge: name the shard files to merge");
        }
        let (file, note) = study::merge(&files, &out)?;
        return summarise(&file, &out, 0, std::time::Duration::ZERO, 10, Some(note), report.as_deref(), json, false);
    }
    let quiet = a.quiet || a.json;
    let p = a.run.prepare(data_dir, quiet)?;
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?.unwrap_or(Shard::WHOLE);
    let spec = a.study.spec(&p, shard)?;
    let bar = progress_bar(0, "trials", quiet);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let bench = Bench { data: &p.data, config: &p.config };
    let outcome = study::optimize(&bench, &spec, a.study.trials, &a.study_file, a.resume, a.study.jobs(), &progress)?;
    bar.finish_and_clear();
    let note = (shard != Shard::WHOLE).then(|| format!("shard {}/{} of the study: merge the shards with `stratbox optimize merge`", shard.k, shard.n));
    summarise(&outcome.file, &a.study_file, outcome.ran, outcome.wall, a.study.partitions, note, a.report.as_deref(), a.json, a.quiet)
}

#[derive(Args)]
pub struct WalkForwardArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    study: StudyArgs,
    /// Training part of each window: 3y, 18m, 26w, 90d.
    #[arg(long)]
    train: String,
    /// Test part that follows it.
    #[arg(long)]
    test: String,
    /// How far each window moves (default: the test part's length).
    #[arg(long)]
    step: Option<String>,
    /// Every training part starts at the data's start (an expanding window).
    #[arg(long)]
    anchored: bool,
    /// Drop this much from the end of each training part.
    #[arg(long, default_value = "0d")]
    purge: String,
    /// Leave this gap between a training part and its test part.
    #[arg(long, default_value = "0d")]
    embargo: String,
    /// The folder for each window's study file, walkforward.json, oos_equity.csv and walkforward.html.
    #[arg(long)]
    out: PathBuf,
    /// Continue the windows' study files in --out.
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    quiet: bool,
    #[arg(long)]
    json: bool,
}

pub fn walk_forward_cmd(a: WalkForwardArgs, data_dir: &Path) -> Result<()> {
    use stratbox_research::walkforward::{Plan, Span, walk_forward};
    let span = |flag: &str, s: &str| Span::parse(s).map_err(|e| anyhow::anyhow!("--{flag} {e}"));
    let (train, test) = (span("train", &a.train)?, span("test", &a.test)?);
    if train.is_zero() || test.is_zero() {
        bail!("--train and --test must be longer than zero");
    }
    let plan = Plan {
        train,
        test,
        step: a.step.as_deref().map(|s| span("step", s)).transpose()?.unwrap_or(test),
        anchored: a.anchored,
        purge: span("purge", &a.purge)?,
        embargo: span("embargo", &a.embargo)?,
    };
    if plan.step.is_zero() {
        bail!("--step must be longer than zero");
    }
    let quiet = a.quiet || a.json;
    let p = a.run.prepare(data_dir, quiet)?;
    let spec = a.study.spec(&p, Shard::WHOLE)?;
    let bar = progress_bar(0, "trials", quiet);
    let progress = |k: usize, n: usize, done: u64, total: u64| {
        bar.set_message(format!("window {}/{n}", k + 1));
        bar.set_length(total);
        bar.set_position(done);
    };
    if !quiet {
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} {msg} [{bar:40}] {human_pos}/{human_len} trials ({per_sec}, ETA {eta})").expect("a valid template").progress_chars("=> "),
        );
    }
    let bench = Bench { data: &p.data, config: &p.config };
    let wf = walk_forward(&bench, &spec, &plan, a.study.trials, &a.out, a.resume, a.study.jobs(), &progress)?;
    bar.finish_and_clear();
    std::fs::write(a.out.join("walkforward.json"), serde_json::to_string_pretty(&wf)?).with_context(|| format!("cannot write {}", a.out.join("walkforward.json").display()))?;
    let mut w = csv::Writer::from_path(a.out.join("oos_equity.csv"))?;
    w.write_record(["date", "window", "return", "equity"])?;
    let mut equity = 1.0;
    for win in &wf.windows {
        for (t, r) in &win.returns {
            equity *= 1.0 + r;
            w.write_record([stratbox_research::date(t - 1), win.index.to_string(), r.to_string(), equity.to_string()])?;
        }
    }
    w.flush()?;
    let title = format!("Walk-forward: {} ({} windows, {} trials each)", spec.plugin, wf.windows.len(), a.study.trials);
    std::fs::write(a.out.join("walkforward.html"), stratbox_research::html::walk_forward_page(&title, &wf))?;
    if a.json {
        return crate::print_json(&wf);
    }
    if a.quiet {
        return Ok(());
    }
    for win in &wf.windows {
        let params = win.params.as_ref().map_or("(no feasible trial: flat)".into(), |p| {
            spec.space.dims.iter().map(|(n, _)| format!("{n}={}", p.get(n).map_or("-".into(), stratbox_research::space::show))).collect::<Vec<_>>().join(" ")
        });
        println!(
            "window {:>2}: train {} to {}, test {} to {}: {:<24} IS CAGR {:>7.2}%  OOS return {:>7.2}%  OOS Sharpe {:>6.2}",
            win.index,
            win.train_dates.0,
            win.train_dates.1,
            win.test_dates.0,
            win.test_dates.1,
            params,
            win.in_sample.as_ref().map_or(f64::NAN, |m| m.annual_return) * 100.0,
            win.out_of_sample.total_return * 100.0,
            win.out_of_sample.sharpe
        );
    }
    let m = &wf.out_of_sample;
    println!(
        "out of sample: total return {:.2}%  CAGR {:.2}%  Sharpe {:.2}  max drawdown {:.2}%; walk-forward efficiency {:.3} (OOS CAGR over mean IS CAGR {:.2}%)",
        m.total_return * 100.0,
        m.annual_return * 100.0,
        m.sharpe,
        m.max_drawdown * 100.0,
        wf.efficiency,
        wf.in_sample_annual_return * 100.0
    );
    for s in &wf.stability {
        println!("{}: mean {:.2}, std {:.2} (std/mean {:.2}), mean change between windows {:.1}% of its range", s.param, s.mean, s.std, s.variation, s.mean_step_of_range * 100.0);
    }
    println!("{} s; report: {}", wf.wall_secs.round(), a.out.join("walkforward.html").display());
    Ok(())
}
