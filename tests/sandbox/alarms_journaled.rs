//! Every alarm and every trading-state change it causes is journaled at the
//! market time it happened, and `report alarms` lists them.

use std::sync::mpsc;

use stratbox_engine::config::{FeedConfig, ParamInput};
use stratbox_engine::{Host, RunOptions};
use stratbox_market::SimulatedMarket;
use stratbox_trading::AlarmLevelName;
use stratbox_trading::report::{self, Filter};

use crate::support::{Scenario, hostile, sma_cross};

#[test]
fn alarms_and_the_breaker_trips_they_cause_carry_their_market_time() {
    let dir = tempfile::tempdir().unwrap();
    let detector = hostile("huge-alarm").param("bytes", ParamInput::Integer(40));
    let mut config = Scenario::new(vec![sma_cross(), detector]).config(dir.path());
    config.risk.circuit_breaker.alarm_level = Some(AlarmLevelName::Elevated);
    config.risk.circuit_breaker.halt_secs = 3_600;
    let FeedConfig::Simulator(sim) = &config.feed else { unreachable!() };
    let (_tx, rx) = mpsc::channel();
    let mut host = Host::new(config.clone(), Box::new(SimulatedMarket::new(*sim)), rx).unwrap();
    // The first cross-section: the detector raises its alarm at this market time.
    assert!(host.step());
    let first = host.world().clock.now();
    host.run(&RunOptions::default());
    let entries = host.order_path.journal_page(0, 1_000_000).unwrap();

    let all = report::alarms(&entries, &Filter::default());
    let alarms: Vec<_> = all.iter().filter(|r| r.kind == "alarm").collect();
    let raised = host.supervisor.views().iter().find(|p| p.name == "hostile").unwrap().alarms;
    assert_eq!(alarms.len() as u64, raised, "every alarm is journaled");
    assert_eq!((alarms[0].time, alarms[0].source.as_str(), alarms[0].level.as_str()), (first, "hostile", "elevated"));
    assert!(alarms.windows(2).all(|w| w[0].time < w[1].time), "one per cross-section, in market time");

    let trip = all.iter().find(|r| r.kind == "state").expect("the breaker tripped");
    assert_eq!((trip.time, trip.source.as_str(), trip.level.as_str()), (first, "global", "halted"));
    assert!(trip.reason.contains("circuit breaker: elevated alarm from hostile"), "{}", trip.reason);

    let later = report::alarms(&entries, &Filter { from: Some(first + 1), ..Filter::default() });
    assert_eq!(later.iter().filter(|r| r.kind == "alarm").count() as u64, raised - 1, "--from filters on market time");
}
