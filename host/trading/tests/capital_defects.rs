//! The Capital.com defects of the order-path review (issue 33), each pinned
//! against the mock on 127.0.0.1 with its scripted faults, a real sled
//! journal and real restarts. Each test failed before its fix.

mod common;

use std::time::Duration;

use common::{Rig, rig};
use stratbox_capital_mock::{Faults, ScriptedFault};
use stratbox_trading::{CapitalBrokerConfig, Cause, JournalEvent, TradingState};

fn fast() -> CapitalBrokerConfig {
    CapitalBrokerConfig { poll_ms: 200, positions_every_ms: 500, unknown_grace_secs: 5, reconcile_timeout_secs: 20, ..CapitalBrokerConfig::default() }
}

/// The next `times` requests `method path*` answered `status` (with an `errorCode` if given).
fn script(rig: &Rig, method: &str, path: &str, times: u32, status: u16, after_handling: bool) {
    rig.mock.script(ScriptedFault { method: method.into(), path: path.into(), times, status, error_code: None, after_handling });
}

fn fills_of(rig: &mut Rig) -> f64 {
    rig.journal().iter().filter_map(|e| if let JournalEvent::Fill { quantity, .. } = &e.event { Some(*quantity) } else { None }).sum()
}

/// Defect 8: a failure while reconciling kept none of the replies received
/// before it: the fill of an order sent just before the stop was never
/// journaled, the order stayed in flight for good, and with it in flight
/// every running position check was skipped.
#[test]
fn a_failed_reconciliation_keeps_the_fills_it_found_and_the_position_checks_go_on() {
    // No running position reads before the stop: the scripted failure is the reconciliation's.
    let mut rig = rig(Faults::default(), CapitalBrokerConfig { positions_every_ms: 600_000, ..fast() });
    rig.target(5.0);
    // The host stops right after sending: the journal holds the order, not its reference or fill.
    rig.path.flush().unwrap();
    script(&rig, "GET", "/api/v1/positions", 1, 500, false);
    rig.broker = fast();
    let mut rig = rig.restart();
    let v = rig.path.risk_view();
    assert_eq!((v.global.state, v.global.cause), (TradingState::Halted, Some(Cause::Reconciliation)), "{}", v.global.reason);
    assert!(v.global.reason.contains("could not be read"), "{}", v.global.reason);
    // The deal found in the activity before the account read failed is the host's.
    rig.run_until("the found fill", Duration::from_secs(10), |r| r.held() == 5.0);
    assert_eq!(fills_of(&mut rig), 5.0, "journaled once");
    assert!(rig.path.tracker().open_orders("trend").is_empty(), "nothing left in flight");
    let checks = rig.path.position_checks();
    rig.run_until("the running position checks", Duration::from_secs(10), |r| r.path.position_checks() >= checks + 2);
    assert_eq!(rig.mock.dealing().deals.len(), 1);
}
