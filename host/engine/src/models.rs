//! The operator's models (`[[model]]` in the config) served to plugins: the
//! sandbox's `ModelProvider` over `stratbox_ml::ModelSet`. A set is loaded and
//! checked once per process for the same declarations and files, so the
//! thousands of research runs of a study share one copy of each model.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use stratbox_ml::{ModelDecl, ModelSet, Refusal};
use stratbox_sandbox::{InferenceError, ModelInfo, ModelProvider};

/// The models a host serves, with those refused at load and why.
pub struct HostModels {
    pub set: ModelSet,
    pub refused: Vec<String>,
}

impl ModelProvider for HostModels {
    fn resolve(&self, plugin: &str, name: &str) -> Result<ModelInfo, InferenceError> {
        let (handle, model) = self.set.resolve(plugin, name).map_err(|r| match r {
            Refusal::NotFound { .. } => InferenceError::NotFound(r.to_string()),
            Refusal::NotGranted { .. } => InferenceError::NotGranted(r.to_string()),
        })?;
        Ok(ModelInfo {
            handle,
            features: model.row_width() as u32,
            classes: model.card.classes.clone(),
            fuel_per_row: model.cost.fuel_per_row(),
        })
    }

    fn predict(&self, handle: u32, rows: &[f32]) -> Result<Vec<f32>, String> {
        let model = self.set.get(handle).ok_or_else(|| format!("no model has handle {handle}"))?;
        model.predict(rows).map_err(|e| e.to_string())
    }
}

type Key = Vec<(ModelDecl, Option<SystemTime>, Option<SystemTime>)>;

/// The models of `decls`, from this process's cache when the declarations
/// and the files' modification times are the same.
pub fn load(decls: &[ModelDecl]) -> Arc<HostModels> {
    static CACHE: Mutex<Vec<(Key, Arc<HostModels>)>> = Mutex::new(Vec::new());
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let key: Key = decls.iter().map(|d| (d.clone(), modified(&d.path), modified(&stratbox_ml::card_path(&d.path)))).collect();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, models)) = cache.iter().find(|(k, _)| *k == key) {
        return models.clone();
    }
    let (set, refused) = ModelSet::load(decls);
    let refused = refused.into_iter().map(|(name, e)| format!("model `{name}` refused: {e}")).collect();
    let models = Arc::new(HostModels { set, refused });
    if cache.len() >= 8 {
        cache.remove(0);
    }
    cache.push((key, models.clone()));
    models
}
