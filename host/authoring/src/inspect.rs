//! `stratbox plugin inspect`: what a component is, what it asks for and
//! what it may touch, without loading it into a host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use stratbox_contract::{ParamValue, ResourceRequest};
use stratbox_sandbox::{HostState, PluginLimits, Sandbox, SandboxSettings};
use stratbox_sandbox::role_names;
use stratbox_sandbox::EmptyWorld;

#[derive(Debug, Serialize)]
pub struct ParamReport {
    pub name: String,
    pub description: String,
    /// integer, number, flag or text.
    pub kind: &'static str,
    pub default: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub path: PathBuf,
    pub size: usize,
    pub sha256: String,
    pub contract: String,
    /// python, rust or unknown: read from what the component bundles.
    pub language: &'static str,
    /// The interpreter it bundles (Python: "CPython 3.14.0").
    pub runtime: Option<String>,
    pub name: String,
    pub version: String,
    pub description: String,
    pub roles: Vec<&'static str>,
    pub params: Vec<ParamReport>,
    pub requested_memory_bytes: u64,
    pub requested_fuel_per_callback: u64,
    pub requested_max_intents_per_callback: u32,
    pub timer_secs: u32,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

fn show(v: &ParamValue) -> String {
    match v {
        ParamValue::Integer(i) => i.to_string(),
        ParamValue::Number(x) => x.to_string(),
        ParamValue::Flag(b) => b.to_string(),
        ParamValue::Text(s) => format!("{s:?}"),
    }
}

/// Checks the component as a load would, then calls its `describe` in a sandbox.
pub fn inspect(path: &Path) -> Result<InspectReport, String> {
    let sandbox = Sandbox::new(SandboxSettings { pool: stratbox_sandbox::PoolSize { component_instances: 2 }, ..Default::default() })
        .map_err(|e| e.to_string())?;
    // Read once: a Python component is about 18 MB.
    let bytes = std::fs::read(path).map_err(|source| stratbox_sandbox::LoadError::Read { path: path.to_owned(), source }.to_string())?;
    let prepared = sandbox.prepare(&bytes).map_err(|e| e.to_string())?;
    let language = crate::detect_language(&bytes);
    let state = HostState::new(Arc::from("inspect"), PluginLimits::default(), Arc::new(EmptyWorld), None);
    let mut instance = sandbox.instantiate(&prepared, state).map_err(|e| format!("plugin {e}"))?;
    let d = instance.describe().map_err(|e| format!("plugin {e}"))?;
    let ResourceRequest { memory_bytes, fuel_per_callback, max_intents_per_callback } = d.requested;
    Ok(InspectReport {
        path: path.to_owned(),
        size: prepared.info.size,
        sha256: prepared.info.hash.clone(),
        contract: format!("{}@{}", stratbox_sandbox::CONTRACT_PACKAGE, prepared.info.contract_version),
        language: language.name,
        runtime: language.runtime,
        name: d.name,
        version: d.version,
        description: d.description,
        roles: role_names(d.roles),
        params: d
            .params
            .iter()
            .map(|p| ParamReport {
                name: p.name.clone(),
                description: p.description.clone(),
                kind: match p.default {
                    ParamValue::Integer(_) => "integer",
                    ParamValue::Number(_) => "number",
                    ParamValue::Flag(_) => "flag",
                    ParamValue::Text(_) => "text",
                },
                default: show(&p.default),
                min: p.min,
                max: p.max,
            })
            .collect(),
        requested_memory_bytes: memory_bytes,
        requested_fuel_per_callback: fuel_per_callback,
        requested_max_intents_per_callback: max_intents_per_callback,
        timer_secs: d.timer_secs,
        imports: prepared.info.imports.clone(),
        exports: prepared.info.exports.clone(),
    })
}
