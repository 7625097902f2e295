//! The execution journal: a host stopped mid-run and started again on the
//! same data directory rebuilds exactly the trading state it had (positions,
//! average prices, realised P&L with fees and financing, working orders,
//! every order's state, trading states), and trades on from there.

use std::sync::mpsc;

use stratbox_engine::config::FeedConfig;
use stratbox_market::SimulatedMarket;
use stratbox_trading::TradingState;
use stratbox_engine::Host;

use crate::support::{Scenario, sma_cross};

/// Positions, working orders, order states and the plugin's trading state.
type Snapshot = (Vec<(u32, f64, f64, f64)>, Vec<(u64, f64, f64)>, String, (TradingState, String));

/// Everything that must survive a restart, comparable.
fn snapshot(host: &Host) -> Snapshot {
    let ledger = host.world().ledger();
    let positions = ledger.positions("sma-cross").iter().map(|p| (p.instrument, p.quantity, p.average_price, p.realised_pnl)).collect();
    let orders = ledger.open_orders("sma-cross").iter().map(|o| (o.id, o.quantity, o.filled_quantity)).collect();
    let states = format!("{:?}", host.order_path.tracker_stats().by_state);
    let risk = host.order_path.risk_view();
    let plugin = risk.plugins.get("sma-cross").map(|s| (s.state, s.reason.clone())).unwrap_or((TradingState::Active, String::new()));
    (positions, orders, states, plugin)
}

#[test]
fn a_restart_rebuilds_the_trading_state_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Scenario::new(vec![sma_cross()]).config(dir.path());
    config.broker.financing_bps_per_day = 3.0;
    config.journal.resume = Some(true); // the simulator starts afresh unless told to resume
    let FeedConfig::Simulator(sim) = &mut config.feed else { unreachable!() };
    sim.bar_secs = 3_600; // hourly bars: the run crosses days, so financing is charged
    let sim = *sim;

    let (_tx, rx) = mpsc::channel();
    let mut host = Host::new(config.clone(), Box::new(SimulatedMarket::new(sim)), rx).unwrap();
    // Run until positions are held and orders are working between two bars (bounded).
    for k in 0.. {
        assert!(host.step());
        let ledger = host.world().ledger();
        if k >= 60 && !ledger.open_orders("sma-cross").is_empty() && !ledger.positions("sma-cross").is_empty() {
            break;
        }
        drop(ledger);
        assert!(k < 115, "sma-cross never held a position with an order working");
    }
    host.set_trading_state(Some("sma-cross"), TradingState::ReduceOnly, "set by the test");
    let before = snapshot(&host);
    assert!(!before.0.is_empty(), "positions to rebuild");
    assert!(!before.1.is_empty(), "working orders to rebuild");
    assert!(host.order_path.broker_stats().financing_charged > 0.0, "financing was charged");
    let resume_at = host.world().clock.now();
    drop(host);

    // The market goes on from where it was (a fresh simulator from that time).
    let (_tx, rx) = mpsc::channel();
    let later = stratbox_market::SimulatorConfig { start: resume_at, seed: sim.seed + 1, ..sim };
    let mut again = Host::new(config, Box::new(SimulatedMarket::new(later)), rx).unwrap();
    let after = snapshot(&again);
    assert_eq!(after.0, before.0, "positions, average prices and realised P&L");
    assert_eq!(after.1, before.1, "working orders, with their ids");
    assert_eq!(after.2, before.2, "every order's state");
    assert_eq!(after.3, (TradingState::ReduceOnly, "set by the test".to_owned()), "trading states survive");
    assert_eq!(again.order_path.tracker().stats().illegal_transitions, 0);
    let global = again.order_path.risk_view().global;
    assert_eq!(global.state, TradingState::Active);
    assert!(global.reason.starts_with("reconciled after a restart"), "{}", global.reason);
    // It trades on: the restored working orders fill on the next bars, new
    // orders get ids after the old ones.
    let max_id = before.1.iter().map(|o| o.0).max();
    for _ in 0..5 {
        assert!(again.step());
    }
    let filled: Vec<_> = before.1.iter().filter(|(id, ..)| again.order_path.tracker().client_id_of(*id).and_then(|c| again.order_path.tracker().get(c)).is_some_and(|o| o.filled > 0.0)).collect();
    assert_eq!(filled.len(), before.1.len(), "every restored working order filled: {:?}", before.1);
    if let Some(max) = max_id {
        assert!(again.world().ledger().open_orders("sma-cross").iter().all(|o| o.id > max), "no id reused");
    }
    assert_eq!(again.order_path.tracker().stats().illegal_transitions, 0);
    drop(again);

    // Without resuming, a run starts flat and the old journal is kept aside.
    let mut fresh_config = Scenario::new(vec![sma_cross()]).config(dir.path());
    fresh_config.journal.resume = None;
    let (_tx, rx) = mpsc::channel();
    let fresh = Host::new(fresh_config, Box::new(SimulatedMarket::new(sim)), rx).unwrap();
    assert!(fresh.world().ledger().positions("sma-cross").is_empty());
    assert!(dir.path().join("journal.previous").exists());
}
