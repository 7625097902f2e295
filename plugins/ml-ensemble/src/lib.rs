//! The ML ensemble: on each cross-section of daily bars, every instrument's
//! features (`stratbox-features`, the code the training data was made with)
//! go to each member model in one `inference.predict` call per model; the
//! members' probabilities of `up` are combined by soft voting (the mean),
//! weighted soft voting (weights given, e.g. from out-of-sample log loss) or
//! hard voting (the share of members above one half). When the members'
//! probabilities are further apart than `max_spread` the ensemble abstains
//! (flat). Otherwise it targets a long (or, with `allow_short`, short)
//! position sized by confidence: `max_quantity` times `|p - 0.5| / full_at`,
//! capped at `max_quantity`, nothing below `entry`.
//!
//! A member whose rows are `k` feature rows long (a sequence model) gets the
//! last `k` rows, oldest first. A hot swap hands over each instrument's
//! recent bars, from which the successor rebuilds the same rows.

use std::collections::VecDeque;

use stratbox_features::{COUNT, Features, Row, WINDOW};
use stratbox_sdk::prelude::*;
use stratbox_sdk::{StateReader, error_text};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Voting {
    Soft,
    Weighted,
    Hard,
}

struct Member {
    name: String,
    model: Model,
    /// Feature rows per model row (1, or a sequence model's window).
    steps: usize,
    up: usize,
    weight: f64,
}

/// One instrument's recent bars (high, low, close) and feature rows.
#[derive(Default)]
struct Leg {
    features: Features,
    bars: VecDeque<[f64; 3]>,
    rows: VecDeque<Row>,
    target: f64,
}

pub struct MlEnsemble {
    members: Vec<Member>,
    voting: Voting,
    max_spread: f64,
    entry: f64,
    full_at: f64,
    max_quantity: f64,
    allow_short: bool,
    lots: Vec<f64>,
    /// Rows a leg keeps (the longest member's steps).
    steps: usize,
    legs: Vec<Leg>,
    /// Members' failed calls (budget, backend), logged the first time.
    failures: u64,
    pub abstained: u64,
    pub votes: u64,
}

fn parse_list(text: &str) -> Vec<&str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

impl MlEnsemble {
    fn leg(&mut self, id: InstrumentId) -> &mut Leg {
        let i = id as usize;
        if self.legs.len() <= i {
            self.legs.resize_with(i + 1, Leg::default);
        }
        &mut self.legs[i]
    }

    /// Takes a bar into its instrument's leg; whether the leg has rows enough.
    fn push(&mut self, id: InstrumentId, high: f64, low: f64, close: f64) -> bool {
        let steps = self.steps;
        let leg = self.leg(id);
        let row = leg.features.push(high, low, close);
        if row.is_some() || !leg.features.ready() {
            leg.bars.push_back([high, low, close]);
            if leg.bars.len() > WINDOW + steps - 1 {
                leg.bars.pop_front();
            }
        }
        let Some(row) = row else { return false };
        leg.rows.push_back(row);
        if leg.rows.len() > steps {
            leg.rows.pop_front();
        }
        leg.rows.len() == steps
    }

    /// The combined probability of `up` from the members' and whether they agree enough.
    fn vote(&self, p: &[f64]) -> Option<f64> {
        let (lo, hi) = p.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        if hi - lo > self.max_spread {
            return None;
        }
        Some(match self.voting {
            Voting::Soft => p.iter().sum::<f64>() / p.len() as f64,
            Voting::Weighted => {
                let total: f64 = self.members.iter().map(|m| m.weight).sum();
                p.iter().zip(&self.members).map(|(x, m)| x * m.weight).sum::<f64>() / total
            }
            // The share of members voting up: 1/2 when they split evenly.
            Voting::Hard => p.iter().filter(|&&x| x > 0.5).count() as f64 / p.len() as f64,
        })
    }

    /// The position a combined probability asks for, in whole lots.
    fn size(&self, p: f64, lot: f64) -> f64 {
        let edge = p - 0.5;
        if edge.abs() < self.entry || (edge < 0.0 && !self.allow_short) {
            return 0.0;
        }
        let q = self.max_quantity * (edge.abs() / self.full_at).min(1.0);
        let lots = (q / lot).floor() * lot;
        lots.copysign(edge)
    }

    fn decide(&mut self, ctx: &mut Ctx<'_>, ready: &[InstrumentId], out: &mut Vec<Intent>) {
        if ready.is_empty() {
            return;
        }
        // Each member's P(up) for every ready instrument, one call per member.
        let mut probs: Vec<Vec<f64>> = Vec::with_capacity(self.members.len());
        for m in &self.members {
            let mut rows = Vec::with_capacity(ready.len() * m.steps * COUNT);
            for &id in ready {
                let leg = &self.legs[id as usize];
                leg.rows.iter().skip(self.steps - m.steps).for_each(|r| rows.extend_from_slice(r));
            }
            match m.model.predict(ctx, &rows) {
                Ok(p) => probs.push(p.chunks(m.model.classes().len()).map(|c| f64::from(c[m.up])).collect()),
                Err(e) => {
                    self.failures += 1;
                    if self.failures == 1 || self.failures.is_power_of_two() {
                        ctx.warn(&format!("model `{}`: {} (failure {}): positions held", m.name, error_text(&e), self.failures));
                    }
                    return;
                }
            }
        }
        let mut p = vec![0.0; self.members.len()];
        for (k, &id) in ready.iter().enumerate() {
            p.iter_mut().zip(&probs).for_each(|(x, member)| *x = member[k]);
            self.votes += 1;
            let target = match self.vote(&p) {
                Some(up) => self.size(up, self.lots.get(id as usize).copied().unwrap_or(1.0)),
                None => {
                    self.abstained += 1;
                    0.0
                }
            };
            let leg = &mut self.legs[id as usize];
            if target != leg.target {
                leg.target = target;
                out.push(Intent::target(id, target));
            }
        }
    }
}

impl Plugin for MlEnsemble {
    fn describe() -> PluginInfo {
        PluginInfo::new("ml-ensemble", env!("CARGO_PKG_VERSION"))
            .description("Votes the host's models (GBDT, LSTM, Transformer) on each bar's features; abstains on disagreement; sized by confidence")
            .param_text("models", "member models, comma-separated names the operator loaded and granted", "gbdt-spy,lstm-spy,transformer-spy")
            .param_text("voting", "soft (mean), weighted (weights below) or hard (majority)", "soft")
            .param_text("weights", "weights of the members for weighted voting, comma-separated (e.g. from out-of-sample log loss)", "")
            .param_number("max_spread", "abstain when the members' P(up) differ by more than this", 0.25, 0.0, 1.0)
            .param_number("entry", "hold nothing while |P(up) - 0.5| is below this", 0.01, 0.0, 0.5)
            .param_number("full_at", "|P(up) - 0.5| at which the position is max_quantity", 0.1, 0.001, 0.5)
            .param_number("max_quantity", "largest position, in units", 100.0, 0.0, 1e9)
            .param_flag("allow_short", "go short when the vote is down (else flat)", false)
            .memory_bytes(16 << 20)
            .fuel_per_callback(200_000_000)
            .max_intents_per_callback(4_096)
    }

    fn init(ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let voting = match init.params.text("voting")? {
            "soft" => Voting::Soft,
            "weighted" => Voting::Weighted,
            "hard" => Voting::Hard,
            other => return Err(format!("`voting` is `{other}`: soft, weighted or hard")),
        };
        let names = parse_list(init.params.text("models")?);
        if names.is_empty() {
            return Err("`models` names no model".into());
        }
        let weights: Vec<f64> = parse_list(init.params.text("weights")?)
            .iter()
            .map(|w| w.parse::<f64>().ok().filter(|w| w.is_finite() && *w >= 0.0).ok_or(format!("`weights`: `{w}` is not a weight (a number >= 0)")))
            .collect::<Result<_, _>>()?;
        if voting == Voting::Weighted && weights.len() != names.len() {
            return Err(format!("weighted voting needs one weight per model: {} models, {} weights", names.len(), weights.len()));
        }
        if voting == Voting::Weighted && weights.iter().sum::<f64>() <= 0.0 {
            return Err("`weights` sum to zero".into());
        }
        let mut members = Vec::with_capacity(names.len());
        for (k, name) in names.iter().enumerate() {
            let model = ctx.model(name).map_err(|e| format!("model `{name}`: {}", error_text(&e)))?;
            let width = model.row_width();
            if width == 0 || !width.is_multiple_of(COUNT) {
                return Err(format!("model `{name}` takes rows of {width} values; the features are {COUNT} a step"));
            }
            let up = model.class("up").ok_or(format!("model `{name}` has no class `up` (its classes: {:?})", model.classes()))?;
            members.push(Member { name: name.to_string(), steps: width / COUNT, up, weight: weights.get(k).copied().unwrap_or(1.0), model });
        }
        let steps = members.iter().map(|m| m.steps).max().unwrap_or(1);
        let described: Vec<String> = members.iter().map(|m| format!("{} ({} step{})", m.name, m.steps, if m.steps == 1 { "" } else { "s" })).collect();
        ctx.info(&format!("ml-ensemble: {} voting over {} on {} instruments", init.params.text("voting")?, described.join(", "), init.instruments.len()));
        let mut lots = vec![1.0; init.instruments.len()];
        for i in &init.instruments {
            if let Some(l) = lots.get_mut(i.id as usize) {
                *l = if i.lot_size > 0.0 { i.lot_size } else { 1.0 };
            }
        }
        Ok(Self {
            members,
            voting,
            max_spread: init.params.number("max_spread")?,
            entry: init.params.number("entry")?,
            full_at: init.params.number("full_at")?,
            max_quantity: init.params.number("max_quantity")?,
            allow_short: init.params.flag("allow_short")?,
            lots,
            steps,
            legs: Vec::new(),
            failures: 0,
            abstained: 0,
            votes: 0,
        })
    }

    /// Layout: u64 votes, u64 abstained, then per leg: u32 id, f64 target,
    /// u32 n, n x (high, low, close) as f64 (little-endian).
    fn export_state(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.votes.to_le_bytes());
        out.extend_from_slice(&self.abstained.to_le_bytes());
        for (id, leg) in self.legs.iter().enumerate().filter(|(_, l)| !l.bars.is_empty()) {
            out.extend_from_slice(&(id as u32).to_le_bytes());
            out.extend_from_slice(&leg.target.to_le_bytes());
            out.extend_from_slice(&(leg.bars.len() as u32).to_le_bytes());
            leg.bars.iter().flatten().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        out
    }

    fn import_state(&mut self, ctx: &mut Ctx<'_>, state: &[u8]) -> Result<(), String> {
        let mut r = StateReader::new(state);
        self.votes = r.u64()?;
        self.abstained = r.u64()?;
        let mut legs = 0;
        while !r.is_empty() {
            let id = r.u32()?;
            let target = r.f64()?;
            let n = r.u32()? as usize;
            for _ in 0..n {
                let (h, l, c) = (r.f64()?, r.f64()?, r.f64()?);
                self.push(id, h, l, c);
            }
            self.leg(id).target = target;
            legs += 1;
        }
        ctx.info(&format!("took over {legs} instruments after {} votes", self.votes));
        Ok(())
    }
}

impl Strategy for MlEnsemble {
    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar, out: &mut Vec<Intent>) {
        if self.push(bar.instrument, bar.high, bar.low, bar.close) {
            self.decide(ctx, &[bar.instrument], out);
        }
    }

    fn on_bars(&mut self, ctx: &mut Ctx<'_>, bars: &[Bar], out: &mut Vec<Intent>) {
        let ready: Vec<InstrumentId> = bars.iter().filter(|b| self.push(b.instrument, b.high, b.low, b.close)).map(|b| b.instrument).collect();
        self.decide(ctx, &ready, out);
    }
}

stratbox_sdk::export_plugin!(MlEnsemble, roles: [strategy]);


#[cfg(test)]
mod tests;
