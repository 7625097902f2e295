//! The common check: a bad plugin next to sma-cross, compared with sma-cross alone.

use stratbox_engine::config::{Mode, PluginSpec};
use stratbox_sandbox::Health;

use crate::support::{Outcome, Scenario, sma_cross};

fn alone(mode: Mode) -> Outcome {
    Scenario::new(vec![sma_cross()]).mode(mode).run()
}

fn assert_bystander_unaffected(with_bad: &Outcome, mode: Mode) {
    let baseline = alone(mode);
    assert_eq!(with_bad.summary.status.stats.events, baseline.summary.status.stats.events, "the host processed every event");
    let good = with_bad.plugin("sma-cross");
    assert_eq!((good.health, good.faults), (Health::Running, 0), "the bystander keeps running");
    let expected = baseline.intents_of("sma-cross");
    assert!(!expected.is_empty(), "the bystander trades in this scenario, so the comparison means something");
    assert_eq!(with_bad.intents_of("sma-cross"), expected, "the bystander asked for exactly the same intents");
}

/// Runs `bad` beside sma-cross; asserts it was quarantined with a reason
/// containing every `expect` fragment; returns the run.
pub fn quarantined(bad: PluginSpec, scenario: impl FnOnce(Scenario) -> Scenario, expect: &[&str]) -> Outcome {
    let s = scenario(Scenario::new(vec![sma_cross(), bad]));
    let mode = s.mode;
    let out = s.run();
    let name = out.names().into_iter().find(|n| *n != "sma-cross").expect("bad plugin present").to_owned();
    let view = out.plugin(&name);
    assert_eq!(view.health, Health::Quarantined, "{name} should be quarantined: {view:?}");
    let reason = view.reason.as_deref().unwrap_or_default();
    for fragment in expect {
        assert!(reason.contains(fragment), "reason `{reason}` should mention `{fragment}`");
    }
    assert_bystander_unaffected(&out, mode);
    out
}

/// Runs `bad` beside sma-cross; asserts the host refused it at start with a
/// reason containing every `expect` fragment.
pub fn refused(bad: PluginSpec, expect: &[&str]) -> Outcome {
    refused_in(bad, |s| s, expect)
}

/// [`refused`] in a scenario adjusted by `scenario` (e.g. a shared compiled cache).
pub fn refused_in(bad: PluginSpec, scenario: impl FnOnce(Scenario) -> Scenario, expect: &[&str]) -> Outcome {
    let out = scenario(Scenario::new(vec![sma_cross(), bad])).run();
    assert_eq!(out.summary.plugins.len(), 1, "only the bystander was started: {:?}", out.names());
    let refused = &out.summary.status.stats.refused;
    assert_eq!(refused.len(), 1, "{refused:?}");
    for fragment in expect {
        assert!(refused[0].contains(fragment), "refusal `{}` should mention `{fragment}`", refused[0]);
    }
    assert_bystander_unaffected(&out, Mode::Backtest);
    out
}
