//! The order path over the paper broker: risk sees the orders the path
//! placed earlier in the same callback (its book cache is updated in place),
//! and what a cancel takes off the book.

use std::sync::Arc;

use stratbox_contract::{Bar, Instrument, Intent, OrderIntent, OrderType, Side, TargetPosition, TimeInForce};
use stratbox_trading::{Journal, OrderPath, OrderPathConfig, PaperBroker, PaperConfig, RiskConfig, RiskRule, SharedWorld, TradingState};

const DAY: i64 = 86_400 * 1_000_000_000;
const T0: i64 = 19_723 * DAY; // 2024-01-01

fn bar(day: i64, price: f64) -> Bar {
    Bar { instrument: 0, start: T0 + day * DAY, period_secs: 86_400, open: price, high: price, low: price, close: price, volume: 1e6 }
}

fn sell(quantity: f64, order_type: OrderType) -> Intent {
    Intent::Order(OrderIntent { instrument: 0, side: Side::Sell, quantity, order_type, time_in_force: TimeInForce::Gtc, tag: 0 })
}

#[test]
fn orders_earlier_in_the_same_batch_count_toward_reduce_only_and_cancels_free_them() {
    let dir = tempfile::tempdir().unwrap();
    let world = Arc::new(SharedWorld::new(10));
    let broker = PaperBroker::new(PaperConfig { latency_ms: 0, ..PaperConfig::default() }, world.clone());
    let instruments = vec![Instrument { id: 0, symbol: "AAPL".into(), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() }];
    let config = OrderPathConfig { risk: RiskConfig { require_open_market: false, duplicate_window_ms: 0, ..RiskConfig::default() }, ..OrderPathConfig::default() };
    let (mut path, _) = OrderPath::open(Box::new(broker), Journal::open(dir.path(), 0).unwrap(), world.clone(), instruments, vec![None], config).unwrap();
    let plugin: Arc<str> = Arc::from("p");
    let step = |path: &mut OrderPath, day: i64| {
        world.clock.set(T0 + day * DAY);
        path.on_bars(&[bar(day, 100.0)], T0 + day * DAY);
        path.end_event([&plugin], T0 + day * DAY);
    };
    step(&mut path, 0);
    assert!(path.submit(vec![(plugin.clone(), vec![Intent::Target(TargetPosition { instrument: 0, quantity: 10.0 })])], T0).is_empty());
    path.commit();
    step(&mut path, 1);
    assert_eq!(world.ledger().quantity(&plugin, 0), 10.0, "long 10");

    path.set_trading_state(None, TradingState::ReduceOnly, "test");
    let rejected = |path: &OrderPath| path.risk_view().stats.rejected.get(&RiskRule::ReduceOnly).copied().unwrap_or(0);
    // Two limit sells of 10 from +10 in one callback: the second could flip the position.
    let far = OrderType::Limit(104.0);
    assert!(path.submit(vec![(plugin.clone(), vec![sell(10.0, far), sell(10.0, far)])], T0 + DAY).is_empty());
    path.commit();
    assert_eq!(rejected(&path), 1, "the second sell is refused");
    assert_eq!(world.ledger().book(&plugin).unwrap().orders.len(), 1, "one resting sell");
    // Cancelled, the resting sell no longer counts: a new one closes the position.
    assert!(path.submit(vec![(plugin.clone(), vec![Intent::CancelAll(None)])], T0 + DAY).is_empty());
    assert!(world.ledger().book(&plugin).unwrap().orders.is_empty());
    assert!(path.submit(vec![(plugin.clone(), vec![sell(10.0, OrderType::Market)])], T0 + DAY).is_empty());
    path.commit();
    assert_eq!(rejected(&path), 1, "accepted once the first is gone");
    step(&mut path, 2);
    assert_eq!(world.ledger().quantity(&plugin, 0), 0.0, "flat, never short");
}
