//! Timers fire on market time, at the period a plugin declared; quotes reach
//! strategies. (The `hostile` fixture in mode `echo` answers each with an
//! intent naming what arrived.)

use stratbox_market::{MarketEvent, Quote};
use stratbox_contract::{Intent, TargetPosition};

use crate::support::{Scenario, hostile};

fn target(instrument: u32, quantity: f64) -> Intent {
    Intent::Target(TargetPosition { instrument, quantity })
}

#[test]
fn timers_fire_every_declared_period_of_market_time() {
    // 120 one-minute bars closing 10:01..12:00; the fixture asks for a 300 s timer.
    let out = Scenario::new(vec![hostile("echo")]).run();
    let fired: Vec<Intent> = out.intents_of("hostile").into_iter().map(|(_, i)| i).collect();
    let expected: Vec<Intent> = (0..24).map(|k| target(0, f64::from(605 + 5 * k))).collect();
    assert_eq!(fired, expected, "10:05, 10:10, ... 12:00, once each");
}

#[test]
fn quotes_reach_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, _tx) = Scenario::new(vec![hostile("echo")]).host(dir.path());
    let quote = Quote { instrument: 2, time: 1_704_103_230_000_000_000, bid: 100.0, bid_size: 5.0, ask: 103.0, ask_size: 7.0 };
    host.process(MarketEvent::Quote(quote));
    let log = host.order_path.intent_log.take().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].0, &*log[0].1, &log[0].2), (quote.time, "hostile", &target(2, 3.0)));
}
