//! Calls `inference` as its `mode` says on every cross-section and reports
//! the outcome as the target quantity of instrument 0, so a test reads it
//! from the intents: 1000 + P(up) x 1000 for a prediction (the first row's),
//! else the error's code: 2 not-found, 3 not-granted, 4 wrong-shape,
//! 5 non-finite, 6 budget-exceeded, 7 backend, 9 a wrong number of outputs.
//! Modes: ok, missing, ungranted, forged (a handle never resolved),
//! wrong-shape, nan, flood (2,000 rows in one call).

use stratbox_sdk::prelude::*;

pub struct Probe {
    mode: String,
    model: Option<Model>,
}

fn code(e: &InferenceError) -> f64 {
    match e {
        InferenceError::NotFound(_) => 2.0,
        InferenceError::NotGranted(_) => 3.0,
        InferenceError::WrongShape(_) => 4.0,
        InferenceError::NonFinite(_) => 5.0,
        InferenceError::BudgetExceeded(_) => 6.0,
        InferenceError::Backend(_) => 7.0,
    }
}

impl Probe {
    fn outcome(&mut self, ctx: &mut Ctx<'_>, n: usize) -> f64 {
        let model = match self.mode.as_str() {
            "missing" => return ctx.model("no-such-model").map_or_else(|e| code(&e), |_| 0.0),
            "ungranted" => return ctx.model("secret").map_or_else(|e| code(&e), |_| 0.0),
            "forged" => return forged(),
            _ => self.model.as_ref().expect("resolved at init"),
        };
        let width = model.row_width();
        let rows = match self.mode.as_str() {
            "wrong-shape" => vec![0.1; width + 1],
            "nan" => {
                let mut r = vec![0.1; width];
                r[3] = f32::NAN;
                r
            }
            "flood" => vec![0.1; width * 2_000],
            _ => vec![0.1; width * n],
        };
        match model.predict(ctx, &rows) {
            Ok(p) if p.len() == rows.len() / width * model.classes().len() => 1000.0 + (f64::from(p[model.class("up").unwrap_or(1)]) * 1000.0).round(),
            Ok(_) => 9.0,
            Err(e) => code(&e),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn forged() -> f64 {
    // Straight to the import, with a handle this instance never resolved.
    match stratbox_sdk::bindings::stratbox::plugin::inference::predict(0, &[0.0; 9]) {
        Ok(_) => 1.0,
        Err(e) => code(&e),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn forged() -> f64 {
    0.0
}

impl Plugin for Probe {
    fn describe() -> PluginInfo {
        PluginInfo::new("model-probe", "0.1.0")
            .param_text("mode", "how to call the inference import", "ok")
            .param_text("model", "the model to resolve at init", "gbdt-spy")
            .fuel_per_callback(500_000_000)
    }

    fn init(ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let mode = init.params.text("mode")?.to_owned();
        let needs = !matches!(mode.as_str(), "missing" | "ungranted" | "forged");
        let model = if needs { Some(ctx.model(init.params.text("model")?).map_err(|e| stratbox_sdk::error_text(&e))?) } else { None };
        Ok(Self { mode, model })
    }
}

impl Strategy for Probe {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, _bar: &Bar, out: &mut Vec<Intent>) {
        out.push(Intent::target(0, self.outcome(ctx, 1)));
    }

    fn on_bars(&mut self, ctx: &mut Ctx<'_>, bars: &[Bar], out: &mut Vec<Intent>) {
        out.push(Intent::target(0, self.outcome(ctx, bars.len())));
    }
}

stratbox_sdk::export_plugin!(Probe, roles: [strategy]);
