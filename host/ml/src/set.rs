//! The models an operator declared (`[[models]]` in the host's config): each
//! loaded and checked against its card once, shared by every plugin granted
//! it. A model that fails is refused with its reason and the rest still serve.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Model, ModelError};

/// One model to load: its name for plugins, its file (the card beside it),
/// and the plugins (by their name in the host) that may use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDecl {
    pub name: String,
    pub path: PathBuf,
    /// Plugin names; `"*"` grants every plugin.
    #[serde(default)]
    pub grant: Vec<String>,
    /// Values per row, when the operator states it: checked against the card.
    #[serde(default)]
    pub row_width: Option<usize>,
}

/// Why a plugin may not have a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no model named `{name}` is loaded (loaded: {loaded})")]
    NotFound { name: String, loaded: String },
    #[error("model `{name}` is not granted to plugin `{plugin}`")]
    NotGranted { name: String, plugin: String },
}

struct Served {
    name: String,
    model: Arc<Model>,
    grant: Vec<String>,
}

/// The loaded models; a handle is a model's index here.
#[derive(Default)]
pub struct ModelSet {
    served: Vec<Served>,
}

impl ModelSet {
    /// Loads and checks every declared model. Returns the set of those that
    /// passed and, for each that did not, its name and why.
    pub fn load(decls: &[ModelDecl]) -> (Self, Vec<(String, ModelError)>) {
        let mut set = ModelSet::default();
        let mut refused = Vec::new();
        for decl in decls {
            if set.served.iter().any(|s| s.name == decl.name) {
                let why = format!("a second model named `{}`", decl.name);
                refused.push((decl.name.clone(), ModelError::Card { path: decl.path.clone(), why }));
                continue;
            }
            match Self::load_one(decl) {
                Ok(model) => {
                    tracing::info!(model = %decl.name, path = %decl.path.display(), load_ms = model.load_ms, fuel_per_row = model.cost.fuel_per_row(), "model loaded");
                    set.served.push(Served { name: decl.name.clone(), model: Arc::new(model), grant: decl.grant.clone() });
                }
                Err(e) => {
                    tracing::error!(model = %decl.name, error = %e, "model refused");
                    refused.push((decl.name.clone(), e));
                }
            }
        }
        (set, refused)
    }

    fn load_one(decl: &ModelDecl) -> Result<Model, ModelError> {
        let model = Model::load(&decl.path)?;
        if let Some(width) = decl.row_width
            && width != model.row_width()
        {
            let why = format!("the config says rows of {width} values, the card {}", model.row_width());
            return Err(ModelError::Card { path: crate::card_path(&decl.path), why });
        }
        model.check()?;
        Ok(model)
    }

    /// The handle and model `name`, if `plugin` is granted it.
    pub fn resolve(&self, plugin: &str, name: &str) -> Result<(u32, &Arc<Model>), Refusal> {
        let Some(at) = self.served.iter().position(|s| s.name == name) else {
            let loaded = if self.served.is_empty() { "none".to_owned() } else { self.names().join(", ") };
            return Err(Refusal::NotFound { name: name.to_owned(), loaded });
        };
        let served = &self.served[at];
        if !served.grant.iter().any(|g| g == plugin || g == "*") {
            return Err(Refusal::NotGranted { name: name.to_owned(), plugin: plugin.to_owned() });
        }
        Ok((at as u32, &served.model))
    }

    /// The model behind a handle.
    pub fn get(&self, handle: u32) -> Option<&Arc<Model>> {
        self.served.get(handle as usize).map(|s| &s.model)
    }

    pub fn names(&self) -> Vec<&str> {
        self.served.iter().map(|s| s.name.as_str()).collect()
    }
}
