//! The order path under a deterministic fault simulation.
//!
//! One seed draws a list of operations ([`op::generate`]): bars with gaps
//! through stops, quotes, plugin intents of every kind and size, stop
//! levels and exits, alarms, the operator's flatten, de-leveraging, halt,
//! resume, adopt, quarantine and unload, journal flushes, and crashes with
//! downtime from minutes to days. [`sim::run`] drives the real
//! [`stratbox_trading::OrderPath`], risk engine, sled journal and paper
//! broker through them on a virtual clock and checks the invariants of
//! [`check::Invariant`] after every step. The same operations give the same
//! trace hash in any process; a failing run is shrunk ([`shrink`]) to a few
//! operations and kept as a replay file that `cargo test` runs.
//!
//! With [`BrokerKind::Netting`] or [`BrokerKind::Hedging`] the broker is the
//! real Capital.com broker and REST client against the Capital.com mock's
//! handlers in process ([`capital`]), on one paused tokio clock, with broker
//! faults ([`BrokerFault`]) and crashes on either side of a request.

pub mod capital;
pub mod check;
pub mod op;
pub mod sim;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use check::{Invariant, Violation};
pub use op::{BrokerFault, Op, generate, generate_for};
pub use sim::{BrokerKind, Options, Outcome, Stats, latency_for, run, run_with};

/// A failing run kept for `cargo test`: the operations, and what failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replay {
    /// The seed and step count it was drawn from.
    pub seed: u64,
    pub steps: usize,
    /// What it found, in words (the defect it is the regression test of).
    pub found: String,
    /// The paper broker's latency it ran with.
    #[serde(default)]
    pub latency_ms: u64,
    /// The broker it ran against.
    #[serde(default)]
    pub broker: BrokerKind,
    pub violation: Option<Violation>,
    pub ops: Vec<Op>,
}

/// Shrinks a failing run to fewer operations that fail the same invariant:
/// the run cut after the failing step, then chunks removed while the failure
/// stays (halving the chunk when none can go), in at most `max_runs` runs
/// (a count, not a time: the result is the same on any machine).
pub fn shrink(ops: &[Op], invariant: Invariant, dir: &Path, max_runs: usize, options: Options) -> (Vec<Op>, Violation) {
    let runs = std::cell::Cell::new(0usize);
    let fails = |ops: &[Op]| {
        runs.set(runs.get() + 1);
        run_with(ops, dir, options).violation.filter(|v| v.invariant == invariant)
    };
    let over = || runs.get() >= max_runs;
    let mut best = fails(ops).expect("shrink is given a failing run");
    let mut ops = ops[..=best.step].to_vec();
    let mut chunk = (ops.len() / 2).max(1);
    loop {
        let mut removed = false;
        let mut at = 0;
        while at < ops.len() && !over() {
            let end = (at + chunk).min(ops.len());
            let candidate: Vec<Op> = ops[..at].iter().chain(&ops[end..]).cloned().collect();
            match fails(&candidate) {
                Some(v) => {
                    ops = candidate[..=v.step].to_vec();
                    best = v;
                    removed = true;
                }
                None => at += chunk,
            }
        }
        if over() || (chunk == 1 && !removed) {
            break;
        }
        if !removed {
            chunk = (chunk / 2).max(1);
        }
    }
    (ops, best)
}
