//! `stratbox plugin ...`: author plugins, and operate those of a running host.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use stratbox_authoring as authoring;
use stratbox_engine::config::{OrderPolicy, ParamInput};
use stratbox_engine::{ControlClient, LoadRequest};

use crate::print_json;
use crate::run::{PluginRow, print_plugin_table};

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Create a plugin project (a Rust crate, or Python) that builds and passes its test at once.
    New {
        name: String,
        /// Parent folder (default: the current one).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// rust or python.
        #[arg(long, default_value = "rust", value_parser = parse_lang)]
        lang: authoring::Lang,
        /// The SDK's folder: the stratbox-sdk crate (Rust) or sdk/python (Python).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin into a component: a crate (Cargo.toml) with cargo, a
    /// Python project (pyproject.toml with [tool.stratbox]) with componentize-py.
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

#[derive(Args)]
pub struct LoadArgs {
    /// A parameter, `NAME=VALUE` (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, ParamInput)>,
}

pub(crate) fn parse_param(s: &str) -> Result<(String, ParamInput), String> {
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

fn parse_lang(s: &str) -> Result<authoring::Lang, String> {
    match s {
        "rust" => Ok(authoring::Lang::Rust),
        "python" | "py" => Ok(authoring::Lang::Python),
        _ => Err(format!("`{s}`: expected rust or python")),
    }
}

fn parse_policy(s: &str) -> Result<OrderPolicy, String> {
    match s {
        "cancel" => Ok(OrderPolicy::Cancel),
        "keep" => Ok(OrderPolicy::Keep),
        _ => Err(format!("`{s}`: expected cancel or keep")),
    }
}

pub fn plugin(cmd: PluginCmd, data_dir: &Path) -> Result<()> {
    match cmd {
        PluginCmd::New { name, dir, lang: authoring::Lang::Rust, sdk } => {
            let root = authoring::scaffold(&name, &dir, &sdk.unwrap_or_else(authoring::default_sdk_path))?;
            println!("created {}\n  test:  cd {} && cargo test\n  build: stratbox plugin build {}", root.display(), root.display(), root.display());
        }
        PluginCmd::New { name, dir, lang: authoring::Lang::Python, sdk } => {
            let sdk = sdk.unwrap_or_else(authoring::default_python_sdk_path);
            let root = authoring::scaffold_python(&name, &dir, &sdk)?;
            let sdk = std::fs::canonicalize(&sdk).unwrap_or(sdk);
            println!(
                "created {root}\n  tools: cd {root} && python3 -m venv .venv && .venv/bin/pip install -r {req}\n  \
                 test:  .venv/bin/pytest\n  build: stratbox plugin build {root}   (componentize-py {v}, set up in .venv if missing)",
                root = root.display(),
                req = sdk.join("requirements.txt").display(),
                v = authoring::COMPONENTIZE_PY_VERSION,
            );
        }
        PluginCmd::Build { dir, output } => {
            let out = authoring::build(&dir, output.as_deref())?;
            println!("built {} ({} bytes) via {}", out.component().display(), out.component_bytes(), out.route());
        }
        PluginCmd::Inspect { file, json } => {
            let r = authoring::inspect(&file).map_err(anyhow::Error::msg).with_context(|| format!("inspecting {}", file.display()))?;
            if json {
                return print_json(&r);
            }
            println!("{} {} ({})", r.name, r.version, r.description);
            println!("  contract  {}", r.contract);
            match &r.runtime {
                Some(runtime) => println!("  language  {} ({runtime} bundled)", r.language),
                None => println!("  language  {}", r.language),
            }
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
            let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
            let count = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
            let rows: Vec<PluginRow> = plugins
                .iter()
                .map(|p| PluginRow {
                    name: text(&p["name"]),
                    health: text(&p["health"]),
                    version: text(&p["version"]),
                    roles: p["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect::<Vec<_>>().join(","),
                    calls: count(&p["stats"]["calls"]),
                    fuel_used: count(&p["stats"]["fuel_used"]),
                    intents: count(&p["stats"]["intents"]),
                    faults: count(&p["faults"]),
                    restarts: count(&p["restarts"]),
                    pnl: p["book"]["realised_pnl"].as_f64().unwrap_or(0.0) + p["book"]["unrealised_pnl"].as_f64().unwrap_or(0.0),
                    reason: p["reason"].as_str().map(str::to_owned),
                    last_alarm: p["last_alarm"].as_str().map(|a| (count(&p["alarms"]), a.to_owned())),
                })
                .collect();
            print_plugin_table(&rows);
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
