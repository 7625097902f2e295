//! The search space of a study: which of a plugin's declared parameters
//! vary, over what. By default every numeric parameter the plugin declares
//! with both bounds, over those bounds; a space file (TOML, one table per
//! parameter) narrows ranges, sets a log scale, a step or a list of choices,
//! and then only the parameters it names vary:
//!
//! ```toml
//! [fast]
//! min = 2
//! max = 50
//!
//! [slow]
//! min = 10
//! max = 250
//! log = true
//! ```
//!
//! Samplers work in an internal coordinate per parameter (the level of an
//! integer or stepped range, the log of a log-scaled one, the index of a
//! choice) and [`Space::decode`] turns it into the value the plugin gets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratbox_engine::config::ParamInput;

/// A parameter as the plugin declares it (`describe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamDecl {
    pub name: String,
    pub default: ParamInput,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// How one parameter varies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Dim {
    Int { min: i64, max: i64, step: i64, log: bool },
    Float { min: f64, max: f64, step: Option<f64>, log: bool },
    Choice { choices: Vec<ParamInput> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// In name order (a study's trials list their parameters in this order).
    pub dims: Vec<(String, Dim)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpaceError {
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
    #[error("{file}: `{name}` is not a parameter of the plugin (it declares: {known})")]
    UnknownParam { file: String, name: String, known: String },
    #[error("{file}: `{name}`: {what} {value} is outside the plugin's bounds [{min}, {max}]")]
    OutOfBounds { file: String, name: String, what: &'static str, value: f64, min: f64, max: f64 },
    #[error("{file}: `{name}`: {reason}")]
    Invalid { file: String, name: String, reason: String },
    #[error("nothing to search: {0}")]
    Empty(String),
    #[error("grid search needs a finite grid: `{0}` is a continuous range (give it a step or choices in the space file)")]
    Continuous(String),
    #[error("the grid has {0} points, more than {MAX_GRID}: narrow the space or give coarser steps")]
    GridTooLarge(u128),
}

/// The most points a grid may have.
pub const MAX_GRID: u128 = 10_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DimFile {
    min: Option<f64>,
    max: Option<f64>,
    step: Option<f64>,
    #[serde(default)]
    log: bool,
    choices: Option<Vec<ParamInput>>,
}

impl Space {
    /// Every numeric parameter declared with both bounds, over those bounds.
    pub fn from_descriptor(params: &[ParamDecl]) -> Result<Space, SpaceError> {
        let mut dims = Vec::new();
        for p in params {
            let (Some(min), Some(max)) = (p.min, p.max) else { continue };
            match p.default {
                ParamInput::Integer(_) if min < max => dims.push((p.name.clone(), Dim::Int { min: min.ceil() as i64, max: max.floor() as i64, step: 1, log: false })),
                ParamInput::Number(_) if min < max => dims.push((p.name.clone(), Dim::Float { min, max, step: None, log: false })),
                _ => {}
            }
        }
        if dims.is_empty() {
            return Err(SpaceError::Empty("the plugin declares no numeric parameter with bounds; give a space file".into()));
        }
        dims.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Space { dims })
    }

    /// The space a space file describes, checked against the plugin's declarations.
    pub fn from_file(params: &[ParamDecl], text: &str, file: &str) -> Result<Space, SpaceError> {
        let table: BTreeMap<String, DimFile> = toml::from_str(text).map_err(|e| SpaceError::Syntax { file: file.into(), reason: e.to_string().trim().replace('\n', " ") })?;
        let known = || params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        let mut dims = Vec::new();
        for (name, d) in table {
            let Some(decl) = params.iter().find(|p| p.name == name) else {
                return Err(SpaceError::UnknownParam { file: file.into(), name, known: known() });
            };
            let invalid = |reason: String| SpaceError::Invalid { file: file.into(), name: name.clone(), reason };
            let (lo, hi) = (decl.min.unwrap_or(f64::NEG_INFINITY), decl.max.unwrap_or(f64::INFINITY));
            let check = |what: &'static str, v: f64| {
                if v < lo || v > hi { Err(SpaceError::OutOfBounds { file: file.into(), name: name.clone(), what, value: v, min: lo, max: hi }) } else { Ok(()) }
            };
            if let Some(choices) = d.choices {
                if d.min.is_some() || d.max.is_some() || d.step.is_some() || d.log {
                    return Err(invalid("choices exclude min, max, step and log".into()));
                }
                if choices.is_empty() {
                    return Err(invalid("choices is empty".into()));
                }
                for c in &choices {
                    let fits = match (&decl.default, c) {
                        (ParamInput::Integer(_), ParamInput::Integer(v)) => check("choice", *v as f64).map(|_| true)?,
                        (ParamInput::Number(_), ParamInput::Integer(v)) => check("choice", *v as f64).map(|_| true)?,
                        (ParamInput::Number(_), ParamInput::Number(v)) => check("choice", *v).map(|_| true)?,
                        (ParamInput::Flag(_), ParamInput::Flag(_)) | (ParamInput::Text(_), ParamInput::Text(_)) => true,
                        _ => false,
                    };
                    if !fits {
                        return Err(invalid(format!("choice {} is not of the parameter's type (its default is {})", show(c), show(&decl.default))));
                    }
                }
                dims.push((name, Dim::Choice { choices }));
                continue;
            }
            let min = d.min.or(decl.min).ok_or_else(|| invalid("no min: the plugin declares no lower bound, so the space file must".into()))?;
            let max = d.max.or(decl.max).ok_or_else(|| invalid("no max: the plugin declares no upper bound, so the space file must".into()))?;
            check("min", min)?;
            check("max", max)?;
            if !(min < max) {
                return Err(invalid(format!("min {min} is not below max {max} (a fixed value is a --param, not a search)")));
            }
            if d.log && min <= 0.0 {
                return Err(invalid(format!("a log scale needs min > 0 (min is {min})")));
            }
            match decl.default {
                ParamInput::Integer(_) => {
                    if min.fract() != 0.0 || max.fract() != 0.0 {
                        return Err(invalid(format!("an integer parameter takes whole bounds (got {min}..{max})")));
                    }
                    let step = d.step.unwrap_or(1.0);
                    if step < 1.0 || step.fract() != 0.0 {
                        return Err(invalid(format!("an integer step is a whole number >= 1 (got {step})")));
                    }
                    if d.log && step != 1.0 {
                        return Err(invalid("log and step exclude each other".into()));
                    }
                    dims.push((name, Dim::Int { min: min as i64, max: max as i64, step: step as i64, log: d.log }));
                }
                ParamInput::Number(_) => {
                    if let Some(step) = d.step
                        && !(step > 0.0 && step <= max - min)
                    {
                        return Err(invalid(format!("step {step} must be positive and at most max - min")));
                    }
                    if d.log && d.step.is_some() {
                        return Err(invalid("log and step exclude each other".into()));
                    }
                    dims.push((name, Dim::Float { min, max, step: d.step, log: d.log }));
                }
                _ => return Err(invalid("only numeric parameters take ranges; give choices".into())),
            }
        }
        if dims.is_empty() {
            return Err(SpaceError::Empty(format!("{file} names no parameter")));
        }
        Ok(Space { dims })
    }

    /// The internal coordinate's range `[lo, hi)` of dimension `i`, and whether it is categorical.
    pub fn internal_range(&self, i: usize) -> (f64, f64, bool) {
        match &self.dims[i].1 {
            Dim::Int { min, max, log: true, .. } => ((*min as f64).ln(), (*max as f64 + 1.0).ln(), false),
            Dim::Int { min, max, step, .. } => (0.0, ((max - min) / step + 1) as f64, false),
            Dim::Float { min, max, log: true, .. } => (min.ln(), max.ln(), false),
            Dim::Float { min, max, step: Some(step), .. } => (0.0, ((max - min) / step + 1e-9).floor() + 1.0, false),
            Dim::Float { min, max, .. } => (*min, *max, false),
            Dim::Choice { choices } => (0.0, choices.len() as f64, true),
        }
    }

    /// The parameter value of internal coordinate `x` in dimension `i`.
    pub fn decode(&self, i: usize, x: f64) -> ParamInput {
        let (lo, hi, _) = self.internal_range(i);
        let x = x.clamp(lo, hi);
        match &self.dims[i].1 {
            Dim::Int { min, max, log: true, .. } => ParamInput::Integer((x.exp().floor() as i64).clamp(*min, *max)),
            Dim::Int { min, max, step, .. } => ParamInput::Integer((min + (x.floor() as i64) * step).min(*max)),
            Dim::Float { min, max, log: true, .. } => ParamInput::Number(x.exp().clamp(*min, *max)),
            Dim::Float { min, max, step: Some(step), .. } => ParamInput::Number((min + x.floor().min(hi - 1.0) * step).min(*max)),
            Dim::Float { .. } => ParamInput::Number(x),
            Dim::Choice { choices } => choices[(x.floor() as usize).min(choices.len() - 1)].clone(),
        }
    }

    /// The number of points of the grid (every level of every dimension).
    pub fn grid_size(&self) -> Result<u128, SpaceError> {
        let mut n: u128 = 1;
        for (i, (name, dim)) in self.dims.iter().enumerate() {
            let levels = match dim {
                Dim::Int { min, max, log: true, .. } => (max - min + 1) as u128,
                Dim::Float { step: None, .. } => return Err(SpaceError::Continuous(name.clone())),
                Dim::Float { log: true, .. } => return Err(SpaceError::Continuous(name.clone())),
                _ => self.internal_range(i).1 as u128,
            };
            n = n.saturating_mul(levels);
        }
        if n > MAX_GRID {
            return Err(SpaceError::GridTooLarge(n));
        }
        Ok(n)
    }

    /// Point `k` of the grid (the last dimension varying fastest), as internal coordinates.
    pub fn grid_point(&self, mut k: u128) -> Vec<f64> {
        let mut x = vec![0.0; self.dims.len()];
        for i in (0..self.dims.len()).rev() {
            let (lo, hi, _) = self.internal_range(i);
            match &self.dims[i].1 {
                Dim::Int { min, max, log: true, .. } => {
                    let levels = (max - min + 1) as u128;
                    // The middle of the integer's log interval, so it decodes back to the integer.
                    let v = (*min as f64) + (k % levels) as f64;
                    x[i] = ((v.ln() + (v + 1.0).ln()) / 2.0).clamp(lo, hi);
                    k /= levels;
                }
                _ => {
                    let levels = (hi - lo) as u128;
                    x[i] = lo + (k % levels) as f64 + 0.5;
                    k /= levels;
                }
            }
        }
        x
    }

    /// The parameters of a point given in internal coordinates.
    pub fn params(&self, x: &[f64]) -> BTreeMap<String, ParamInput> {
        self.dims.iter().enumerate().map(|(i, (name, _))| (name.clone(), self.decode(i, x[i]))).collect()
    }
}

pub fn show(v: &ParamInput) -> String {
    match v {
        ParamInput::Integer(i) => i.to_string(),
        ParamInput::Number(x) => x.to_string(),
        ParamInput::Flag(b) => b.to_string(),
        ParamInput::Text(s) => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sma() -> Vec<ParamDecl> {
        vec![
            ParamDecl { name: "fast".into(), default: ParamInput::Integer(10), min: Some(1.0), max: Some(1000.0) },
            ParamDecl { name: "slow".into(), default: ParamInput::Integer(30), min: Some(2.0), max: Some(5000.0) },
            ParamDecl { name: "quantity".into(), default: ParamInput::Number(10.0), min: Some(0.0), max: Some(1e9) },
        ]
    }

    #[test]
    fn the_descriptor_gives_every_bounded_numeric_parameter() {
        let s = Space::from_descriptor(&sma()).unwrap();
        let names: Vec<&str> = s.dims.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(names, ["fast", "quantity", "slow"]);
        assert_eq!(s.dims[0].1, Dim::Int { min: 1, max: 1000, step: 1, log: false });
    }

    #[test]
    fn a_space_file_narrows_and_every_level_is_reachable() {
        let s = Space::from_file(&sma(), "[fast]\nmin = 2\nmax = 50\n[slow]\nmin = 10\nmax = 250\nstep = 10\n", "s.toml").unwrap();
        assert_eq!(s.grid_size().unwrap(), 49 * 25);
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..s.grid_size().unwrap() {
            let p = s.params(&s.grid_point(k));
            seen.insert((show(&p["fast"]), show(&p["slow"])));
        }
        assert_eq!(seen.len(), 49 * 25);
        assert!(seen.contains(&("2".into(), "10".into())) && seen.contains(&("50".into(), "250".into())));
        // The top of the internal range decodes to the top of the range.
        let (_, hi, _) = s.internal_range(1);
        assert_eq!(s.decode(1, hi - 1e-9), ParamInput::Integer(250));
        // Log-scaled integers: the grid decodes back to each integer.
        let s = Space::from_file(&sma(), "[fast]\nmin = 2\nmax = 60\nlog = true\n", "s.toml").unwrap();
        let got: Vec<String> = (0..59).map(|k| show(&s.params(&s.grid_point(k))["fast"])).collect();
        assert_eq!(got, (2..=60).map(|v| v.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn bad_space_files_name_the_culprit() {
        let e = Space::from_file(&sma(), "[fats]\nmin = 2\nmax = 5\n", "s.toml").unwrap_err();
        assert_eq!(e.to_string(), "s.toml: `fats` is not a parameter of the plugin (it declares: fast, slow, quantity)");
        let e = Space::from_file(&sma(), "[fast]\nmin = 0\nmax = 5\n", "s.toml").unwrap_err();
        assert_eq!(e.to_string(), "s.toml: `fast`: min 0 is outside the plugin's bounds [1, 1000]");
        let e = Space::from_file(&sma(), "[slow]\nmin = 10\nmax = 9000\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("max 9000 is outside"), "{e}");
        let e = Space::from_file(&sma(), "[fast]\nmin = 5\nmax = 5\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("not below max"), "{e}");
        let e = Space::from_file(&sma(), "[fast]\nmin = 2\nmax = 5\nstpe = 1\n", "s.toml").unwrap_err();
        assert!(matches!(e, SpaceError::Syntax { .. }), "{e}");
        let e = Space::from_file(&sma(), "[quantity]\nmin = 1\nmax = 5\n", "s.toml").unwrap().grid_size().unwrap_err();
        assert_eq!(e, SpaceError::Continuous("quantity".into()));
    }
}
