//! What the operator asks for when loading a plugin (from the config file or
//! the control API): its file, name, parameters, limits, and what happens to
//! its orders and to it when it faults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::LimitOverrides;

/// What happens to a plugin's working orders when it is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OrderPolicy {
    #[default]
    Cancel,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartPolicy {
    /// Restarts after faults before the plugin stays quarantined.
    pub max_restarts: u32,
    /// Delay before the first restart; doubles after each, up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self { max_restarts: 3, backoff_ms: 1_000, max_backoff_ms: 60_000 }
    }
}

/// A parameter value as written in TOML or JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamInput {
    Flag(bool),
    Integer(i64),
    Number(f64),
    Text(String),
}

/// One plugin to load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Name in the host (unique); defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    pub path: PathBuf,
    #[serde(default)]
    pub params: BTreeMap<String, ParamInput>,
    #[serde(default)]
    pub limits: LimitOverrides,
    #[serde(default)]
    pub on_fault: OrderPolicy,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// For stop policies: the strategies whose positions it manages (empty: all).
    #[serde(default)]
    pub protects: Vec<String>,
}

impl PluginSpec {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            name: None,
            path: path.into(),
            params: BTreeMap::new(),
            limits: LimitOverrides::default(),
            on_fault: OrderPolicy::default(),
            restart: RestartPolicy::default(),
            protects: Vec::new(),
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    pub fn param(mut self, name: &str, value: ParamInput) -> Self {
        self.params.insert(name.to_owned(), value);
        self
    }

    /// The configured name, or the file stem.
    pub fn resolved_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path.file_stem().map(|s| s.to_string_lossy().replace('_', "-")).unwrap_or_else(|| "plugin".into())
        })
    }
}

