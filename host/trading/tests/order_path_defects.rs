//! The order-path defects a review and the simulation (`host/simtest`)
//! found, each pinned over the paper broker and a real sled journal. Each
//! test failed before its fix.

use std::path::Path;
use std::sync::Arc;

use stratbox_contract::{Bar, Instrument, Intent, OrderIntent, OrderType, Side, StopDecision, StopLevels, TargetPosition, TimeInForce};
use stratbox_trading::{Cause, Journal, JournalEvent, OrderPath, OrderPathConfig, PaperBroker, PaperConfig, RiskConfig, SharedWorld, TradingState};

const MIN: i64 = 60 * 1_000_000_000;
const T0: i64 = 28_401_120 * MIN; // 2024-01-01 00:00 UTC

struct Host {
    path: OrderPath,
    world: Arc<SharedWorld>,
    now: i64,
}

fn plugin() -> Arc<str> {
    Arc::from("p")
}

fn instruments() -> Vec<Instrument> {
    ["AAA", "BBB"].iter().enumerate().map(|(i, s)| Instrument { id: i as u32, symbol: (*s).into(), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() }).collect()
}

fn risk() -> RiskConfig {
    RiskConfig { require_open_market: false, max_order_quantity: 100.0, max_drawdown: 0.5, ..RiskConfig::default() }
}

/// A host on the journal at `dir` (replayed and reconciled as the engine starts one).
fn open(dir: &Path, risk: RiskConfig, paper: PaperConfig, now: i64) -> Host {
    let world = Arc::new(SharedWorld::new(10));
    world.clock.set(now);
    let broker = PaperBroker::new(paper, world.clone());
    let config = OrderPathConfig { risk, ..OrderPathConfig::default() };
    let (mut path, rebuilt) = OrderPath::open(Box::new(broker), Journal::open(dir, 1_000).unwrap(), world.clone(), instruments(), vec![None, None], config).unwrap();
    let rebuilt = rebuilt.unwrap_or_default();
    let outcome = path.begin_reconcile(&rebuilt);
    path.finish_reconcile(rebuilt, outcome);
    Host { path, world, now }
}

/// A host on the journal at `dir` whose reconciliation with the broker failed.
fn open_failing_reconciliation(dir: &Path, now: i64) -> (OrderPath, Arc<SharedWorld>) {
    let world = Arc::new(SharedWorld::new(10));
    world.clock.set(now);
    let broker = PaperBroker::new(paper(), world.clone());
    let config = OrderPathConfig { risk: risk(), ..OrderPathConfig::default() };
    let (mut path, rebuilt) = OrderPath::open(Box::new(broker), Journal::open(dir, 1_000).unwrap(), world.clone(), instruments(), vec![None, None], config).unwrap();
    path.finish_reconcile(rebuilt.unwrap(), Err("the broker could not be read".into()));
    (path, world)
}

fn paper() -> PaperConfig {
    PaperConfig { spread_bps: 0.0, commission_bps: 0.0, slippage_bps: 0.0, ..PaperConfig::default() }
}

impl Host {
    /// Stops the host with everything flushed (a clean stop); its market time.
    fn stop(mut self) -> i64 {
        self.path.flush().unwrap();
        self.now
    }

    /// A one-minute bar of `instrument` at `price` with `volume` (0: uncapped).
    fn bar(&mut self, instrument: u32, price: f64, volume: f64) {
        self.now += MIN;
        self.world.clock.set(self.now);
        let bar = Bar { instrument, start: self.now - MIN, period_secs: 60, open: price, high: price, low: price, close: price, volume };
        self.path.on_bars(&[bar], self.now);
        self.path.end_event([&plugin()], self.now);
    }

    fn submit(&mut self, intents: Vec<Intent>) {
        assert!(self.path.submit(vec![(plugin(), intents)], self.now).is_empty());
        self.path.end_event([&plugin()], self.now);
    }

    fn held(&self, instrument: u32) -> f64 {
        self.world.ledger().quantity("p", instrument)
    }

    fn working(&self) -> Vec<(u32, Side, f64)> {
        self.world.ledger().book("p").map(|b| b.orders.values().map(|o| (o.instrument, o.side, o.quantity - o.filled_quantity)).collect()).unwrap_or_default()
    }

    fn causes(&self) -> Vec<Cause> {
        self.path.risk_view().causes.iter().filter_map(|(_, r)| r.cause).collect()
    }

    /// A stop policy sets `levels` for the plugin's position.
    fn protect(&mut self, levels: StopLevels) {
        assert!(self.path.apply_stop_decisions(vec![(Arc::from("guard"), plugin(), StopDecision::SetLevels(levels))], self.now).is_empty());
    }

    fn entries(&mut self) -> Vec<JournalEvent> {
        self.path.journal_page(0, usize::MAX).unwrap().into_iter().map(|e| e.event).collect()
    }
}

fn target(instrument: u32, quantity: f64) -> Intent {
    Intent::Target(TargetPosition { instrument, quantity })
}

fn limit(instrument: u32, side: Side, quantity: f64, price: f64) -> Intent {
    Intent::Order(OrderIntent { instrument, side, quantity, order_type: OrderType::Limit(price), time_in_force: TimeInForce::Gtc, tag: 0 })
}

/// Defect 1: a failed reconciliation at a start put back none of the
/// journaled states, so the adopt that ends it traded again under a flatten.
#[test]
fn a_failed_reconciliation_keeps_every_other_journaled_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.path.flatten([&plugin()]);
    let now = h.stop();
    let (path, _) = open_failing_reconciliation(dir.path(), now);
    let causes: Vec<Cause> = path.risk_view().causes.iter().filter_map(|(_, r)| r.cause).collect();
    assert!(causes.contains(&Cause::Reconciliation), "{causes:?}");
    assert!(causes.contains(&Cause::Flatten), "the flatten holds beside the failed reconciliation: {causes:?}");
}

/// Defect 4: the drawdown peak and the day's start began again from the
/// capital after every restart (a crash loop reset the daily loss limit).
#[test]
fn loss_limit_baselines_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 100.0)]);
    h.bar(0, 100.0, 0.0);
    h.bar(0, 150.0, 0.0);
    h.bar(0, 140.0, 0.0);
    let before = h.path.risk_baselines();
    assert!(before.peak_equity > risk().capital + 4_000.0, "{before:?}");
    let now = h.stop();
    let h = open(dir.path(), risk(), paper(), now);
    assert_eq!(h.path.risk_baselines(), before);
}

/// Defect 10: a position larger than the order cap could not be flattened
/// (the exit was refused by the quantity rule before the exit rule ran).
#[test]
fn an_exit_larger_than_the_order_cap_goes_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 90.0)]);
    h.submit(vec![target(0, 150.0)]);
    h.bar(0, 100.0, 0.0);
    assert_eq!(h.held(0), 150.0);
    let report = h.path.flatten([&plugin()]);
    assert_eq!(report.closing_orders, [("p".to_owned(), "AAA".to_owned(), -150.0)]);
    let mut sizes: Vec<f64> = h.working().iter().map(|w| w.2).collect();
    sizes.sort_by(f64::total_cmp);
    assert_eq!(sizes, [50.0, 100.0]);
    h.bar(0, 100.0, 0.0);
    assert_eq!(h.held(0), 0.0);
}

/// Defect 10: an instrument dropped from the allowed list kept its position:
/// the exit was refused by the allowed-instrument rule.
#[test]
fn an_exit_passes_the_allowed_instrument_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(1, 50.0, 0.0);
    h.submit(vec![target(1, 20.0)]);
    h.bar(1, 50.0, 0.0);
    let now = h.stop();
    let mut h = open(dir.path(), RiskConfig { allowed: vec!["AAA".into()], ..risk() }, paper(), now);
    h.bar(1, 50.0, 0.0);
    h.path.flatten([&plugin()]);
    assert_eq!(h.working(), [(1, Side::Sell, 20.0)]);
    h.bar(1, 50.0, 0.0);
    assert_eq!(h.held(1), 0.0);
}

/// Defect 11: a target counted the whole size of a partly filled market
/// order, so the next target sent an opposite order (churn).
#[test]
fn a_target_counts_what_is_left_of_a_partly_filled_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), PaperConfig { max_volume_fraction: 0.1, ..paper() }, T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 100.0)]);
    h.bar(0, 100.0, 500.0);
    assert_eq!(h.held(0), 50.0, "10% of 500");
    h.submit(vec![target(0, 100.0)]);
    assert_eq!(h.working(), [(0, Side::Buy, 50.0)], "the same order goes on: nothing sold back");
}

/// Defect 13: a quarantine or an unload removed the protective levels of
/// the plugin's open positions.
#[test]
fn a_quarantine_keeps_the_protective_levels_of_open_positions() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 10.0), limit(0, Side::Buy, 5.0, 95.0)]);
    h.bar(0, 100.0, 0.0);
    let levels = StopLevels { instrument: 0, stop_loss: Some(90.0), take_profit: None };
    h.protect(levels);
    assert_eq!(h.path.cancel_all("p"), 1, "the resting buy");
    assert_eq!(h.path.protections(), [(plugin(), levels)]);
    h.bar(0, 85.0, 0.0);
    assert_eq!(h.held(0), 0.0, "the level still closed the position");
}

/// Found by the simulation: a plugin's cancels (and its quarantine) took
/// back the exits the host placed for it, before and after a restart.
#[test]
fn a_plugins_cancels_leave_the_hosts_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 40.0)]);
    h.bar(0, 100.0, 0.0);
    h.path.flatten([&plugin()]);
    assert_eq!(h.working(), [(0, Side::Sell, 40.0)]);
    h.submit(vec![Intent::CancelAll(None)]);
    assert_eq!(h.path.cancel_all("p"), 0);
    assert_eq!(h.working(), [(0, Side::Sell, 40.0)], "the exit works on");
    let now = h.stop();
    let mut h = open(dir.path(), risk(), paper(), now);
    h.submit(vec![Intent::CancelAll(None)]);
    assert_eq!(h.working(), [(0, Side::Sell, 40.0)], "and after a restart");
    h.bar(0, 100.0, 0.0);
    assert_eq!(h.held(0), 0.0);
}

/// Found by the simulation: an exit was sized against the plugin's pending
/// orders, so once they were cancelled it opened the other way; and flatten
/// left the working orders of a plugin that was unloaded without cancelling.
#[test]
fn an_exit_is_sized_by_what_is_held_and_flatten_reaches_every_working_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 60.0)]);
    assert!(h.path.apply_stop_decisions(vec![(Arc::from("guard"), plugin(), StopDecision::Exit(0))], h.now).is_empty());
    assert!(h.working().is_empty(), "nothing held: the pending buy is cancelled and nothing sold: {:?}", h.working());
    h.submit(vec![limit(0, Side::Buy, 5.0, 95.0)]);
    // Flatten of no loaded plugin still reaches the book with a working order.
    h.path.flatten(std::iter::empty());
    assert!(h.working().is_empty(), "{:?}", h.working());
}

/// Defect 15: cancel requests were not journaled, and a de-leveraging plan
/// lived only in memory (a restart stopped it) and skipped books of plugins
/// not named (adopted positions).
#[test]
fn cancels_and_de_leveraging_are_journaled_and_de_leveraging_goes_on_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![limit(0, Side::Buy, 5.0, 95.0)]);
    h.submit(vec![Intent::CancelAll(None)]);
    h.submit(vec![target(0, 80.0)]);
    let entries = h.entries();
    let requested = entries.iter().position(|e| matches!(e, JournalEvent::CancelRequested { .. })).expect("the cancel request is journaled");
    let cancelled = entries.iter().position(|e| matches!(e, JournalEvent::Cancelled { .. })).expect("and its end");
    assert!(requested < cancelled);
    h.bar(0, 100.0, 0.0);
    assert_eq!(h.held(0), 80.0);
    // Named plugins: none. The book is de-leveraged all the same.
    let plan = h.path.start_deleverage(std::iter::empty(), 0.5, 2, 3_600).unwrap();
    assert_eq!(plan.steps_done, 1);
    assert_eq!(h.working(), [(0, Side::Sell, 20.0)], "the first step: 80 toward 60");
    h.bar(0, 100.0, 0.0);
    assert_eq!(h.held(0), 60.0);
    let now = h.stop();
    let mut h = open(dir.path(), risk(), paper(), now + 3_600 * 1_000_000_000);
    assert!(h.causes().contains(&Cause::Deleverage));
    assert_eq!(h.path.deleverage_plan().map(|p| (p.steps_done, p.steps)), Some((1, 2)), "the plan goes on");
    h.bar(0, 100.0, 0.0);
    h.bar(0, 100.0, 0.0);
    assert_eq!(h.held(0), 40.0, "the second step after the restart");
    assert!(h.path.deleverage_plan().is_none());
    assert_eq!(h.path.risk_view().global.state, TradingState::ReduceOnly);
}

/// Found in review: with latency, flatten's exit is not live on the next bar
/// while a protective level fires on it; the level closed the whole position
/// and the exit then opened the other way.
#[test]
fn a_level_and_a_flatten_exit_do_not_close_a_position_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), PaperConfig { latency_ms: 90_000, ..paper() }, T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 50.0)]);
    for _ in 0..3 {
        h.bar(0, 100.0, 0.0);
    }
    assert_eq!(h.held(0), 50.0, "live after 90 s: filled on the third bar");
    let levels = StopLevels { instrument: 0, stop_loss: Some(95.0), take_profit: None };
    h.protect(levels);
    h.path.flatten([&plugin()]);
    // The next bar reaches the level before the exit is live: the level takes only what the exit does not.
    h.bar(0, 90.0, 0.0);
    h.bar(0, 90.0, 0.0);
    h.bar(0, 90.0, 0.0);
    assert_eq!(h.held(0), 0.0, "closed once, never short");
}

/// Found in review: a restored de-leveraging plan went on stepping while a
/// failed reconciliation said the ledger differs from the broker.
#[test]
fn no_de_leveraging_step_while_the_reconciliation_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 80.0)]);
    h.bar(0, 100.0, 0.0);
    h.path.start_deleverage([&plugin()], 0.5, 2, 300).unwrap();
    h.bar(0, 100.0, 0.0);
    assert_eq!(h.held(0), 60.0);
    let now = h.stop();
    let (mut path, world) = open_failing_reconciliation(dir.path(), now);
    let later = now + 10 * MIN;
    world.clock.set(later);
    path.on_bars(&[Bar { instrument: 0, start: later - MIN, period_secs: 60, open: 100.0, high: 100.0, low: 100.0, close: 100.0, volume: 0.0 }], later);
    path.end_event([&plugin()], later);
    assert!(world.ledger().book("p").is_none_or(|b| b.orders.is_empty()), "no step sent");
    assert_eq!(path.deleverage_plan().map(|p| p.steps_done), Some(1), "the plan waits");
}

/// Found in review: a de-leveraging step cancelled the plugin's stop-loss
/// for what stays; only orders that could take the exit past flat go.
#[test]
fn a_partial_exit_keeps_the_plugins_stop_for_what_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 100.0)]);
    h.bar(0, 100.0, 0.0);
    let stop = Intent::Order(OrderIntent { instrument: 0, side: Side::Sell, quantity: 50.0, order_type: OrderType::Stop(92.0), time_in_force: TimeInForce::Gtc, tag: 0 });
    h.submit(vec![stop, limit(0, Side::Buy, 10.0, 95.0)]);
    h.path.start_deleverage([&plugin()], 0.25, 1, 60).unwrap();
    let mut working = h.working();
    working.sort_by(|a, b| a.2.total_cmp(&b.2));
    assert_eq!(working, [(0, Side::Sell, 25.0), (0, Side::Sell, 50.0)], "the exit and the stop; the buy (opening side) went");
}

/// Found in review: protective levels lived only in the broker, so a restart
/// left every position unprotected until its policy sent the levels again.
/// They are journaled when they change and given back to the broker.
#[test]
fn protective_levels_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), risk(), paper(), T0);
    h.bar(0, 100.0, 0.0);
    h.submit(vec![target(0, 10.0), target(1, 5.0)]);
    h.bar(0, 100.0, 0.0);
    h.bar(1, 100.0, 0.0);
    let first = StopLevels { instrument: 0, stop_loss: Some(90.0), take_profit: None };
    let moved = StopLevels { instrument: 0, stop_loss: Some(92.0), take_profit: Some(130.0) };
    h.protect(first);
    h.protect(first);
    h.protect(moved);
    h.protect(StopLevels { instrument: 1, stop_loss: Some(80.0), take_profit: None });
    h.protect(StopLevels { instrument: 1, stop_loss: None, take_profit: None });
    let journaled = h.entries().iter().filter(|e| matches!(e, JournalEvent::Protection { .. })).count();
    assert_eq!(journaled, 4, "journaled when they change, removals too");
    let now = h.stop();
    let mut h = open(dir.path(), risk(), paper(), now);
    assert_eq!(h.path.protections(), [(plugin(), moved)], "the levels in force before the stop, and only those");
    h.bar(0, 91.0, 0.0);
    assert_eq!(h.held(0), 0.0, "the restored level closed the position");
}
