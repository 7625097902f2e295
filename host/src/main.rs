//! `stratbox`: run the host, author plugins, and operate a running host.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use stratbox_host::authoring;
use stratbox_host::config::{BUNDLED_PLUGIN_DIR, FeedConfig, HostConfig, OrderPolicy, ParamInput};
use stratbox_host::control::{ControlClient, ControlServer, LoadRequest};
use stratbox_host::credentials::{CapitalCredentials, CredentialStore};
use stratbox_host::market::{Feed, ReplayFeed, SimulatedMarket};
use stratbox_host::market::ValidatorConfig;
use stratbox_host::runner::{Host, RunOptions, RunSummary, format_time};
use stratbox_host::store::{MarketStore, PriceSource, Series, StoreConfig, import_file_with_progress, restore};

#[derive(Parser)]
#[command(name = "stratbox", version, about = "Run trading strategies as sandboxed WebAssembly plugins")]
struct Cli {
    /// Data directory of the host (plugin stores, compiled cache, control file).
    #[arg(long, global = true, env = "STRATBOX_DATA")]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info`, `debug`, `stratbox_host=debug,plugin=warn`.
    #[arg(long, global = true, env = "STRATBOX_LOG", default_value = "info")]
    log: String,
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
    },
    /// Author and operate plugins.
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Market data: import files, export series, show what is stored.
    #[command(subcommand)]
    Data(DataCmd),
    /// Broker credentials, encrypted at rest (prompted for, never taken as arguments).
    #[command(subcommand)]
    Credentials(CredentialsCmd),
    /// Counters of the running host.
    Status,
    /// Stop the running host.
    Shutdown,
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Create a plugin crate that builds and passes its test at once.
    New {
        name: String,
        /// Parent folder (default: the current one).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The stratbox-sdk crate's folder.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate into a component.
    Build {
        dir: PathBuf,
        /// Where to write the component.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show a component's contract version, roles, parameters, imports and exports.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the plugins of the running host.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Load a component into the running host.
    Load {
        file: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        /// Name in the host (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// What happens to its working orders if it is quarantined.
        #[arg(long, default_value = "cancel", value_parser = parse_policy)]
        on_fault: OrderPolicy,
    },
    /// Unload a plugin from the running host (its working orders are cancelled).
    Unload { name: String },
    /// Replace a running plugin with a new build, handing over its state.
    Swap {
        name: String,
        file: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
}

#[derive(Subcommand)]
enum DataCmd {
    /// Import CSV or CSV.gz files (the formats of ../shared/data): validated, aggregated, stored.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Time zone of the files' timestamps (default: America/New_York under equity_usa, else UTC).
        #[arg(long)]
        tz: Option<chrono_tz::Tz>,
        #[arg(long)]
        json: bool,
        /// After each commit is on disk, print `durable <records accepted>` to stderr.
        #[arg(long)]
        progress: bool,
    },
    /// Write one compressed, checksummed archive of the store.
    Backup {
        /// Archive path (default: <data-dir>/backups/market-<UTC time>.sbxbak).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Verify an archive's checksum, then restore it into an empty folder.
    Restore {
        archive: PathBuf,
        /// Where to restore (default: <data-dir>/market, which must not hold data).
        #[arg(long)]
        into: Option<PathBuf>,
    },
    /// What is stored, per instrument and series.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Write one series as CSV to standard output.
    Export {
        #[arg(long)]
        symbol: String,
        /// trades, quotes, or bars.
        #[arg(long, default_value = "bars")]
        series: String,
        /// Bar period in seconds.
        #[arg(long, default_value_t = 60)]
        period: u32,
        /// Bar price source: trade, bid, ask, mid.
        #[arg(long, default_value = "trade")]
        source: String,
        /// From this UTC date-time (YYYY-MM-DD[ HH:MM:SS[.fff]]), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// To this UTC date-time, exclusive.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Subcommand)]
enum CredentialsCmd {
    /// Store the credentials of a broker (`capital`): prompts for a passphrase and the secrets.
    Set { broker: String },
    /// Decrypt with the passphrase and show which credentials are stored (masked).
    Show,
}

#[derive(Args)]
struct LoadArgs {
    /// A parameter, `NAME=VALUE` (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, ParamInput)>,
}

fn parse_param(s: &str) -> Result<(String, ParamInput), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let value = if let Ok(b) = v.parse::<bool>() {
        ParamInput::Flag(b)
    } else if let Ok(i) = v.parse::<i64>() {
        ParamInput::Integer(i)
    } else if let Ok(x) = v.parse::<f64>() {
        ParamInput::Number(x)
    } else {
        ParamInput::Text(v.to_owned())
    };
    Ok((k.to_owned(), value))
}

fn parse_policy(s: &str) -> Result<OrderPolicy, String> {
    match s {
        "cancel" => Ok(OrderPolicy::Cancel),
        "keep" => Ok(OrderPolicy::Keep),
        _ => Err(format!("`{s}`: expected cancel or keep")),
    }
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")))
        .with_writer(std::io::stderr)
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
        Cmd::Run { config, duration, json } => run(config, cli.data_dir, duration, json),
        Cmd::Status => print_json(&ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.status()?),
        Cmd::Shutdown => Ok(ControlClient::from_data_dir(&data_dir(&cli.data_dir))?.shutdown()?),
        Cmd::Plugin(p) => plugin(p, &data_dir(&cli.data_dir)),
        Cmd::Data(d) => data(d, &data_dir(&cli.data_dir)),
        Cmd::Credentials(c) => credentials(c, &data_dir(&cli.data_dir)),
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn plugin(cmd: PluginCmd, data_dir: &Path) -> Result<()> {
    match cmd {
        PluginCmd::New { name, dir, sdk } => {
            let root = authoring::scaffold(&name, &dir, &sdk.unwrap_or_else(authoring::default_sdk_path))?;
            println!("created {}\n  test:  cd {} && cargo test\n  build: stratbox plugin build {}", root.display(), root.display(), root.display());
        }
        PluginCmd::Build { dir, output } => {
            let out = authoring::build_plugin(&dir, output.as_deref())?;
            println!("built {} ({} bytes) via {}", out.component.display(), out.component_bytes, out.route);
        }
        PluginCmd::Inspect { file, json } => {
            let r = authoring::inspect(&file).map_err(anyhow::Error::msg).with_context(|| format!("inspecting {}", file.display()))?;
            if json {
                return print_json(&r);
            }
            println!("{} {} ({})", r.name, r.version, r.description);
            println!("  contract  {}", r.contract);
            println!("  roles     {}", r.roles.join(", "));
            println!("  size      {} bytes, sha256 {}", r.size, r.sha256);
            println!("  requests  memory {} B, fuel {} per callback, {} intents per callback, timer {} s (0 = default/none)",
                r.requested_memory_bytes, r.requested_fuel_per_callback, r.requested_max_intents_per_callback, r.timer_secs);
            println!("  params");
            for p in &r.params {
                let range = match (p.min, p.max) {
                    (Some(a), Some(b)) => format!(" in [{a}, {b}]"),
                    _ => String::new(),
                };
                println!("    {:<14} = {:<10}{range}  {}", p.name, p.default, p.description);
            }
            println!("  imports   {}", r.imports.join(", "));
            println!("  exports   {}", r.exports.join(", "));
        }
        PluginCmd::List { json } => {
            let plugins = ControlClient::from_data_dir(data_dir)?.list()?;
            if json {
                return print_json(&plugins);
            }
            println!("{:<16} {:<12} {:<8} {:<26} {:>9} {:>14} {:>8} {:>7}  reason", "name", "health", "version", "roles", "calls", "fuel used", "intents", "faults");
            for p in &plugins {
                let roles: Vec<&str> = p["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
                println!(
                    "{:<16} {:<12} {:<8} {:<26} {:>9} {:>14} {:>8} {:>7}  {}",
                    p["name"].as_str().unwrap_or("?"),
                    p["health"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?"),
                    roles.join(","),
                    p["stats"]["calls"],
                    p["stats"]["fuel_used"],
                    p["stats"]["intents"],
                    p["faults"],
                    p["reason"].as_str().unwrap_or("")
                );
            }
        }
        PluginCmd::Load { file, load, name, on_fault } => {
            let req = LoadRequest { path: file, name, params: load.params.into_iter().collect(), on_fault, ..Default::default() };
            let v = ControlClient::from_data_dir(data_dir)?.load(req)?;
            println!("loaded {} {} ({})", v["name"].as_str().unwrap_or("?"), v["version"].as_str().unwrap_or("?"), v["health"].as_str().unwrap_or("?"));
        }
        PluginCmd::Unload { name } => {
            ControlClient::from_data_dir(data_dir)?.unload(&name)?;
            println!("unloaded {name}");
        }
        PluginCmd::Swap { name, file, load } => {
            let req = LoadRequest { path: file, params: load.params.into_iter().collect(), ..Default::default() };
            let r = ControlClient::from_data_dir(data_dir)?.swap(&name, req)?;
            println!(
                "swapped {name}: {} -> {}, events held {:.3} ms, {} bytes of state handed over",
                r["from_version"].as_str().unwrap_or("?"),
                r["to_version"].as_str().unwrap_or("?"),
                r["held"].as_f64().unwrap_or(f64::NAN),
                r["state_bytes"]
            );
        }
    }
    Ok(())
}

/// A secret: prompted for without echo on a terminal, else one line of standard input.
fn secret(prompt: &str) -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(prompt)?);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        bail!("no input for `{}` on standard input", prompt.trim_end_matches([':', ' ']));
    }
    Ok(line)
}

fn credentials(cmd: CredentialsCmd, data_dir: &Path) -> Result<()> {
    let store = CredentialStore::new(data_dir.join("credentials.json"));
    match cmd {
        CredentialsCmd::Set { broker } => {
            if broker != "capital" {
                bail!("unknown broker `{broker}`: the supported one is `capital`");
            }
            let passphrase = zeroize::Zeroizing::new(secret("Passphrase (12+ characters): ")?);
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) && *passphrase != secret("Passphrase again: ")? {
                bail!("the two passphrases differ; nothing was saved");
            }
            let creds = CapitalCredentials {
                api_key: secret("Capital.com API key: ")?,
                identifier: secret("Capital.com login (identifier): ")?,
                password: secret("Capital.com API key password: ")?,
            };
            store.save(&passphrase, &creds)?;
            println!("saved the capital credentials to {} (encrypted, mode 0600)", store.path().display());
        }
        CredentialsCmd::Show => {
            let passphrase = zeroize::Zeroizing::new(secret("Passphrase: ")?);
            let creds = store.load(&passphrase)?;
            println!("{}: capital {creds:?}", store.path().display());
        }
    }
    Ok(())
}

fn utc(s: &str) -> Result<i64> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).expect("midnight")))
        .with_context(|| format!("`{s}` is not a date-time (YYYY-MM-DD[ HH:MM:SS[.fff]])"))?;
    t.and_utc().timestamp_nanos_opt().with_context(|| format!("`{s}` is out of range"))
}

fn data(cmd: DataCmd, data_dir: &Path) -> Result<()> {
    let path = data_dir.join("market");
    if let DataCmd::Restore { archive, into } = &cmd {
        // Restore never opens the store it replaces.
        let r = restore(archive, into.as_deref().unwrap_or(&path))?;
        println!("restored {} trees, {} entries into {} (sha256 {} verified)", r.trees, r.entries, r.path.display(), r.sha256);
        return Ok(());
    }
    let mut store = MarketStore::open(&path, StoreConfig::default())?;
    match cmd {
        DataCmd::Restore { .. } => unreachable!("handled above"),
        DataCmd::Backup { output } => {
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            let out = output.unwrap_or_else(|| data_dir.join("backups").join(format!("market-{stamp}.sbxbak")));
            let r = store.backup(&out)?;
            println!("backup {}: {} trees, {} entries, {} bytes, sha256 {}", r.path.display(), r.trees, r.entries, r.bytes, r.sha256);
        }
        DataCmd::Import { files, tz, json, progress } => {
            let mut reports = Vec::new();
            for file in &files {
                let started = std::time::Instant::now();
                let mut durable = |n: u64| {
                    if progress {
                        eprintln!("durable {n}");
                    }
                };
                let r = import_file_with_progress(&mut store, file, tz, &ValidatorConfig::default(), &mut durable)?;
                if !json {
                    let rejected: u64 = r.rejected.values().sum();
                    println!(
                        "{}: {} rows, {} accepted, {rejected} rejected {:?}, {} bars built, {} symbols, {:.1} s",
                        file.display(), r.rows, r.accepted, r.rejected, r.bars_built, r.symbols, started.elapsed().as_secs_f64()
                    );
                }
                reports.push(r);
            }
            if json {
                print_json(&reports)?;
            } else {
                println!("store {}: {} bytes on disk, {} records quarantined", path.display(), store.size_on_disk()?, store.quarantined());
            }
        }
        DataCmd::Stats { json } => {
            let stats = store.stats()?;
            if json {
                return print_json(&stats);
            }
            println!("{:<10} {:<22} {:>12} {:>8} {:>9} {:>10}  {:<19}  {:<19}", "symbol", "series", "rows", "blocks", "B/row", "open rows", "first (UTC)", "last (UTC)");
            for s in &stats {
                let series = match s.series {
                    Series::Bars { period_secs, source } => format!("bars {period_secs}s {source:?}").to_lowercase(),
                    other => format!("{other:?}").to_lowercase(),
                };
                let t = |x: Option<i64>| x.map(format_time).unwrap_or_default();
                let per_row = if s.rows > 0 { format!("{:.2}", s.encoded_bytes as f64 / s.rows as f64) } else { "-".into() };
                println!("{:<10} {:<22} {:>12} {:>8} {:>9} {:>10}  {:<19}  {:<19}", s.symbol, series, s.rows, s.blocks, per_row, s.open_rows, t(s.first), t(s.last));
            }
            println!("{} bytes on disk, {} records quarantined", store.size_on_disk()?, store.quarantined());
        }
        DataCmd::Export { symbol, series, period, source, from, to } => {
            let id = store.instrument_id_of(&symbol).with_context(|| format!("no instrument `{symbol}` in {}", path.display()))?;
            let source = match source.as_str() {
                "trade" => PriceSource::Trade,
                "bid" => PriceSource::Bid,
                "ask" => PriceSource::Ask,
                "mid" => PriceSource::Mid,
                other => bail!("--source {other}: expected trade, bid, ask or mid"),
            };
            let (series, header) = match series.as_str() {
                "trades" => (Series::Trades, "time,price,size"),
                "quotes" => (Series::Quotes, "time,bid,bid_size,ask,ask_size"),
                "bars" => (Series::Bars { period_secs: period, source }, "start,open,high,low,close,volume"),
                other => bail!("--series {other}: expected trades, quotes or bars"),
            };
            let from = from.as_deref().map(utc).transpose()?.unwrap_or(i64::MIN);
            let to = to.as_deref().map(utc).transpose()?.unwrap_or(i64::MAX);
            let width = header.split(',').count() - 1;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            use std::io::Write;
            writeln!(out, "{header}")?;
            for r in store.range(id, series, from, to)? {
                let fields: Vec<String> = r.fields[..width].iter().map(f64::to_string).collect();
                writeln!(out, "{},{}", format_time_ns(r.time), fields.join(","))?;
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS[.fffffffff]`, UTC.
fn format_time_ns(t: i64) -> String {
    let frac = t.rem_euclid(1_000_000_000);
    if frac == 0 { format_time(t) } else { format!("{}.{:09}", format_time(t), frac).trim_end_matches('0').to_owned() }
}

fn run(config: Option<PathBuf>, data_dir: Option<PathBuf>, duration: Option<f64>, json: bool) -> Result<()> {
    let mut config = match &config {
        Some(path) => HostConfig::load(path)?,
        None => {
            let dir = std::env::var_os("STRATBOX_PLUGIN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(BUNDLED_PLUGIN_DIR));
            let config = HostConfig::bundled(&dir);
            if let Some(missing) = config.plugins.iter().find(|p| !p.path.exists()) {
                bail!(
                    "bundled plugin {} not found: build the bundled plugins first with `scripts/build-plugins.sh` \
                     (or set STRATBOX_PLUGIN_DIR)",
                    missing.path.display()
                );
            }
            config
        }
    };
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    let duration = duration.map(|s| if s.is_finite() && s >= 0.0 { Ok(Duration::from_secs_f64(s)) } else { Err(anyhow::anyhow!("--duration {s}: expected a number of seconds >= 0")) }).transpose()?;
    let feed: Box<dyn Feed> = match &config.feed {
        FeedConfig::Simulator(sim) => {
            tracing::info!(
                mode = ?config.mode, instruments = sim.instruments, bar_secs = sim.bar_secs, seed = sim.seed, pace_ms = config.pace_ms,
                plugins = config.plugins.len(), "starting the host on the built-in simulated market"
            );
            Box::new(SimulatedMarket::new(*sim))
        }
        FeedConfig::Replay(replay) => {
            let feed = ReplayFeed::open(&config.data_dir.join("market"), replay)?;
            tracing::info!(
                mode = ?config.mode, instruments = feed.instruments().len(), period_secs = replay.period_secs, pace_ms = config.pace_ms,
                plugins = config.plugins.len(), "starting the host on a replay of stored bars"
            );
            Box::new(feed)
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut host = Host::new(config.clone(), feed, rx)?;
    let _control = if config.control.enabled {
        Some(ControlServer::start(&config.control.listen, &config.data_dir, host.factory(), tx.clone())?)
    } else {
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());
    let summary = host.run(&RunOptions { duration, stop });
    if json { print_json(&summary) } else { print_summary(&summary); Ok(()) }
}

fn watch_ctrl_c(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            eprintln!("\nstopping (Ctrl-C)...");
            stop.store(true, Ordering::Relaxed);
        }
    });
}

fn print_summary(s: &RunSummary) {
    let st = &s.status;
    println!("\n== run summary ==");
    println!(
        "{} events ({} bars) up to {} in {:.1} s; {} intents ({} invalid), {} stop decisions, {} alarms; {} orders, {} fills ({} protective), {} swaps",
        st.stats.events, st.stats.bars, format_time(st.market_time), st.uptime.as_secs_f64(), st.stats.intents, st.stats.invalid_intents,
        st.stats.stop_decisions, st.stats.alarms, st.broker.orders, st.broker.fills, st.broker.protective_exits, st.stats.swaps
    );
    for r in &st.stats.refused {
        println!("refused: {r}");
    }
    println!("{:<14} {:<12} {:<18} {:>8} {:>14} {:>8} {:>6} {:>8} {:>12}", "plugin", "health", "roles", "calls", "fuel used", "intents", "faults", "restarts", "P&L");
    for p in &s.plugins {
        println!(
            "{:<14} {:<12} {:<18} {:>8} {:>14} {:>8} {:>6} {:>8} {:>12.2}",
            p.name, format!("{:?}", p.health).to_lowercase(), p.roles.join(","), p.stats.calls, p.stats.fuel_used, p.stats.intents,
            p.faults, p.restarts, p.book.realised_pnl + p.book.unrealised_pnl
        );
        if let Some(reason) = &p.reason {
            println!("    quarantined: {reason}");
        }
        if let Some(alarm) = &p.last_alarm {
            println!("    last alarm ({} in all): {alarm}", p.alarms);
        }
    }
}
