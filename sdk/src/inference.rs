//! Models the host runs for a plugin: resolved by name once, then called
//! with whole rows of `f32` features, a batch in one call.

use crate::{Ctx, InferenceError, ModelInfo};

/// A model the operator granted this plugin (from [`Ctx::model`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    info: ModelInfo,
}

impl Model {
    pub(crate) fn new(info: ModelInfo) -> Self {
        Self { info }
    }

    /// Values in one row.
    pub fn row_width(&self) -> usize {
        self.info.features as usize
    }

    /// What each probability of a row is, in order.
    pub fn classes(&self) -> &[String] {
        &self.info.classes
    }

    /// The index of class `name`, if the model has it.
    pub fn class(&self, name: &str) -> Option<usize> {
        self.info.classes.iter().position(|c| c == name)
    }

    /// Fuel one row costs (fixed by the host at load).
    pub fn fuel_per_row(&self) -> u64 {
        self.info.fuel_per_row
    }

    /// Class probabilities of `rows` (row-major, [`row_width`](Self::row_width)
    /// values each): `classes().len()` values a row, rows in order.
    pub fn predict(&self, ctx: &mut Ctx<'_>, rows: &[f32]) -> Result<Vec<f32>, InferenceError> {
        ctx.predict(self.info.handle, rows)
    }
}

/// A one-line description of an inference error, for logs and alarm reasons.
pub fn error_text(e: &InferenceError) -> String {
    match e {
        InferenceError::NotFound(why) | InferenceError::NotGranted(why) | InferenceError::Backend(why) => why.clone(),
        InferenceError::WrongShape(s) => format!("{} values are not whole rows of {}", s.values, s.features),
        InferenceError::NonFinite(at) => format!("value {at} of the rows is not finite"),
        InferenceError::BudgetExceeded(b) => format!("needs {} inference fuel, {} left in this callback", b.needed, b.left),
    }
}
