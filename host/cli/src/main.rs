//! `stratbox`: run the host, author plugins, operate a running host, manage
//! market data and credentials. One file per command group; the libraries
//! (`stratbox-engine` and the crates below it) do the work, this binary
//! parses arguments, prints results and turns errors into one-line causes
//! (anyhow lives here and nowhere else). It holds no trading logic of its own.

mod capital;
mod credentials;
mod data;
mod detect;
mod ml;
mod model;
mod montecarlo;
mod plugin;
mod report;
mod research;
mod run;
mod stress;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use stratbox_engine::ControlClient;

#[derive(Parser)]
#[command(name = "stratbox", version, about = "Run trading strategies as sandboxed WebAssembly plugins")]
struct Cli {
    /// Data directory of the host (plugin stores, compiled cache, control file).
    #[arg(long, global = true, env = "STRATBOX_DATA")]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info`, `debug`, `stratbox_engine=debug,plugin=warn`
    /// (default: info; warn for backtest and optimize, whose every trial loads its plugins anew).
    #[arg(long, global = true, env = "STRATBOX_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the host: with no config, the built-in simulator with the bundled plugins, paper trading.
    Run {
        /// Host configuration (TOML); see examples/configs/.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Stop after this many seconds (default: until the feed ends or Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// The feed, replacing the config's: `simulator`, or `capital` (with --epics).
        #[arg(long)]
        feed: Option<String>,
        /// Where orders go, replacing the config's: `paper` (simulated fills), or
        /// `capital` (the Capital.com account of the feed: demo unless --live).
        #[arg(long)]
        orders: Option<String>,
        #[command(flatten)]
        capital: capital::CapitalArgs,
    },
    /// Stream Capital.com prices into the market store (validated, de-duplicated, backfilled).
    Collect {
        #[command(flatten)]
        capital: capital::CapitalArgs,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
        /// Store bars only, not quotes.
        #[arg(long)]
        no_quotes: bool,
        /// Back up the store this often, in seconds (default: daily; 0: never).
        #[arg(long)]
        backup_every_secs: Option<u64>,
    },
    /// Local stand-ins for external services.
    #[command(subcommand)]
    Mock(capital::MockCmd),
    /// Author and operate plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// Market data: import files, export series, show what is stored.
    #[command(subcommand)]
    Data(data::DataCmd),
    /// Broker credentials, encrypted at rest (prompted for, never taken as arguments).
    #[command(subcommand)]
    Credentials(credentials::CredentialsCmd),
    /// Backtest plugins over stored bars through the host's own pipeline; writes a report folder.
    Backtest(research::BacktestArgs),
    /// Search a plugin's parameters with many backtests in parallel (TPE, random or grid); `optimize merge` combines shards.
    Optimize(research::OptimizeArgs),
    /// Walk-forward analysis: optimise on each training window, measure the choice on the test window after it.
    WalkForward(research::WalkForwardArgs),
    /// Resample a backtest's daily returns or trades into many paths: final equity, CAGR, drawdown, ruin and VaR.
    Montecarlo(montecarlo::MonteCarloArgs),
    /// Anomaly detectors on history: `detect eval` scores one against known events.
    #[command(subcommand)]
    Detect(detect::DetectCmd),
    /// ONNX models in the host: `model inspect` and `model check`.
    #[command(subcommand)]
    Model(model::ModelCmd),
    /// ML strategies: `ml dataset` writes the plugin's features and labels for training.
    #[command(subcommand)]
    Ml(ml::MlCmd),
    /// Run the configuration through crash scenarios and synthetic shocks; pass/fail against drawdown and loss limits.
    Stress(stress::StressArgs),
    /// Trades, P&L and transaction costs from the execution journal (of a stopped host).
    Report(report::ReportArgs),
    /// Counters of the running host.
    Status,
    /// The running host's portfolio VaR and CVaR at 95% and 99%, one day: historical, normal, Cornish-Fisher, Monte Carlo.
    Var {
        /// Days ahead (the estimates scale the one-day history; Monte Carlo draws block paths).
        #[arg(long, default_value_t = 1)]
        horizon: usize,
        /// Print the table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Emergency: cancel every working order, close every position, and halt trading.
    Flatten {
        /// Required: everything, every plugin.
        #[arg(long, required = true)]
        all: bool,
    },
    /// Set trading back to active after a halt (loss limit, circuit breaker, flatten).
    /// A failed reconciliation is not lifted by this: see `adopt`.
    Resume,
    /// After a failed reconciliation: take the positions the broker's account
    /// holds and the journal does not into a book of their own (journaled
    /// fills at the last price), cancel working orders nobody here owns, and
    /// lift the halt. Close them later with `flatten` or by hand.
    Adopt {
        /// The book that takes them (not a loaded plugin's).
        #[arg(long, default_value = stratbox_engine::ADOPTED)]
        into: String,
    },
    /// Reduce every position by a fraction, in steps; trading is reduce-only meanwhile.
    Deleverage {
        /// Share of each position to shed, in (0, 1].
        #[arg(long)]
        fraction: f64,
        #[arg(long, default_value_t = 1)]
        steps: u32,
        /// Market seconds between steps (at most a year).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=stratbox_contract::util::MAX_SPAN_SECS))]
        every_secs: u64,
    },
    /// Stop the running host.
    Shutdown,
}

fn main() {
    // `stratbox data stats | head` should end quietly when head does, like
    // any Unix tool, not panic on a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // tungstenite's trace level prints whole frames, and ours carry the
    // session tokens: its trace events are dropped whatever the filter says.
    use tracing_subscriber::prelude::*;
    let default_log = if matches!(cli.command, Cmd::Backtest(_) | Cmd::Optimize(_) | Cmd::WalkForward(_)) {
        "warn"
    } else if matches!(cli.command, Cmd::Detect(_) | Cmd::Stress(_)) {
        // Every alarm and breaker is a warning line, and the evaluation (the stress table) is their summary.
        "error"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_new(cli.log.as_deref().unwrap_or(default_log)).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The hint matters: without it `log`'s max level stays at trace and every
    // one of Cranelift's trace records (millions for a Python component)
    // would reach this closure, making a compile ten times slower.
    let hint = tracing_subscriber::layer::Filter::<tracing_subscriber::Registry>::max_level_hint(&filter).unwrap_or(tracing_subscriber::filter::LevelFilter::TRACE);
    // sled's debug and trace records are dropped too: sled logs from crossbeam's
    // epoch collector, which also runs in a thread's TLS destructors, where the
    // fmt layer's thread-local buffer may already be gone (the process aborted
    // at exit, "thread local panicked on drop", under `--log trace`).
    let no_frames = tracing_subscriber::filter::filter_fn(|m| {
        !(*m.level() == tracing::Level::TRACE && m.target().contains("tungstenite")) && !(*m.level() >= tracing::Level::DEBUG && m.target().starts_with("sled"))
    })
    .with_max_level_hint(hint);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter).with_filter(no_frames))
        .init();
    if let Err(e) = dispatch(cli) {
        // One line; causes that the message already quotes are not repeated.
        let mut line = e.to_string();
        for cause in e.chain().skip(1).map(|c| c.to_string()) {
            if !line.contains(&cause) {
                line = format!("{line}: {cause}");
            }
        }
        eprintln!("error: {line}");
        std::process::exit(1);
    }
}

fn data_dir(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone().unwrap_or_else(|| PathBuf::from("stratbox-data"))
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Run { config, duration, json, feed, orders, capital } => run::run(config, cli.data_dir, duration, json, feed, orders, capital),
        Cmd::Collect { capital, duration, no_quotes, backup_every_secs } => {
            capital::collect(capital, duration, no_quotes, backup_every_secs, &data_dir(&cli.data_dir))
        }
        Cmd::Mock(m) => capital::mock(m),
        Cmd::Report(r) => report::report(r, &data_dir(&cli.data_dir)),
        Cmd::Backtest(b) => research::backtest_cmd(b, &data_dir(&cli.data_dir)),
        Cmd::Optimize(o) => research::optimize_cmd(o, &data_dir(&cli.data_dir)),
        Cmd::WalkForward(w) => research::walk_forward_cmd(w, &data_dir(&cli.data_dir)),
        Cmd::Montecarlo(m) => montecarlo::montecarlo_cmd(m),
        Cmd::Detect(d) => detect::detect(d, &data_dir(&cli.data_dir)),
        Cmd::Stress(s) => stress::stress(s, &data_dir(&cli.data_dir)),
        Cmd::Model(m) => model::model(m),
        Cmd::Ml(m) => ml::ml(m, &data_dir(&cli.data_dir)),
        Cmd::Status => print_json(&ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.status()?),
        Cmd::Var { horizon, json } => montecarlo::live_var(&ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.status()?, horizon, json),
        Cmd::Shutdown => Ok(ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.shutdown()?),
        Cmd::Flatten { all: _ } => print_json(&ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.flatten()?),
        Cmd::Resume => print_json(&ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.resume()?),
        Cmd::Adopt { into } => {
            print_json(&ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.adopt(&stratbox_engine::AdoptRequest { into: Some(into) })?)
        }
        Cmd::Deleverage { fraction, steps, every_secs } => {
            let request = stratbox_engine::DeleverageRequest { fraction, steps, every_secs };
            print_json(&ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.deleverage(&request)?)
        }
        Cmd::Plugin(p) => plugin::plugin(p, &data_dir(&cli.data_dir)),
        Cmd::Data(d) => data::data(d, &data_dir(&cli.data_dir)),
        Cmd::Credentials(c) => credentials::credentials(c, &data_dir(&cli.data_dir)),
    }
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
