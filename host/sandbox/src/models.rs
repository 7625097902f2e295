//! What the sandbox needs of the host's models to serve the `inference`
//! import. The engine implements it over the operator's loaded models; the
//! sandbox only checks a plugin's calls (its grants, the shape, finite
//! values, the budget) and charges them.

use stratbox_contract::stratbox::plugin::inference::{InferenceError, ModelInfo};

/// The models a host serves to plugins.
pub trait ModelProvider: Send + Sync {
    /// The model `name` as `plugin` (its name in the host) may use it, or
    /// `not-found` / `not-granted`.
    fn resolve(&self, plugin: &str, name: &str) -> Result<ModelInfo, InferenceError>;
    /// Probabilities of `rows` through the model of `handle`: whole rows of
    /// finite values (checked by the caller), `classes` values a row.
    fn predict(&self, handle: u32, rows: &[f32]) -> Result<Vec<f32>, String>;
}

/// A host with no models: every name is `not-found`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoModels;

impl ModelProvider for NoModels {
    fn resolve(&self, _plugin: &str, name: &str) -> Result<ModelInfo, InferenceError> {
        Err(InferenceError::NotFound(format!("no model named `{name}`: this host has no models loaded")))
    }
    fn predict(&self, handle: u32, _rows: &[f32]) -> Result<Vec<f32>, String> {
        Err(format!("no model has handle {handle}"))
    }
}
