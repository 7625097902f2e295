//! The restart policy: a faulting plugin is restarted (cold) with backoff,
//! up to its maximum, then stays quarantined.

use stratbox_engine::config::{PluginSpec, RestartPolicy};
use stratbox_sandbox::Health;

use crate::support::{Scenario, hostile, sma_cross};

#[test]
fn restarts_stop_at_the_maximum() {
    let spec = PluginSpec { restart: RestartPolicy { max_restarts: 2, backoff_ms: 0, max_backoff_ms: 0 }, ..hostile("panic") };
    let out = Scenario::new(vec![sma_cross(), spec]).run();
    let h = out.plugin("hostile");
    assert_eq!(h.health, Health::Quarantined);
    assert_eq!((h.restarts, h.faults), (2, 3), "two restarts, each faulting again: {h:?}");
    assert_eq!(h.next_restart_in_ms, None, "no restart scheduled after the maximum");
    assert_eq!(out.plugin("sma-cross").health, Health::Running);
}

#[test]
fn a_restart_waits_for_its_backoff() {
    let spec = PluginSpec { restart: RestartPolicy { max_restarts: 5, backoff_ms: 3_600_000, max_backoff_ms: 3_600_000 }, ..hostile("panic") };
    let out = Scenario::new(vec![spec]).run();
    let h = out.plugin("hostile");
    assert_eq!((h.restarts, h.faults), (0, 1), "an hour's backoff has not elapsed in this run");
    assert!(h.next_restart_in_ms.is_some_and(|ms| ms > 3_000_000), "{h:?}");
}
