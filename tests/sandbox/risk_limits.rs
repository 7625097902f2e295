//! Valid intents that break risk limits: an order spammer and a plugin
//! trying to exceed every per-order limit. The risk engine refuses each such
//! order and counts it by rule; the plugins are not faulted (a refused order
//! is an answer, not a crime), and sma-cross beside them asks for, and gets,
//! exactly what it gets alone.

use stratbox_trading::OrderState;
use stratbox_trading::RiskRule;
use stratbox_sandbox::Health;

use crate::support::{Scenario, hostile, sma_cross};

#[test]
fn spam_and_limit_breaking_orders_are_refused_and_counted_while_the_bystander_trades_on() {
    let alone = Scenario::new(vec![sma_cross()]).run();
    let out = Scenario::new(vec![sma_cross(), hostile("order-spam").named("spammer"), hostile("limit-breaker").named("breaker")]).run();

    let risk = &out.summary.status.risk;
    let rejected = |rule| risk.stats.rejected.get(&rule).copied().unwrap_or(0);
    // 200 orders a bar on each of 5 instruments, all at the same market second: 50 pass per bar.
    assert_eq!(rejected(RiskRule::PluginThrottle), 120 * (5 * 200 - 50), "{:?}", risk.stats.rejected);
    assert_eq!(risk.stats.rejected_by_plugin["spammer"], 120 * (5 * 200 - 50));
    // Three bad orders per instrument and bar, every one refused: by quantity, by band, and
    // by notional (or, on a cheap instrument where 5,000 units stay under the notional cap,
    // by concentration: more than half the equity in one name).
    assert_eq!(risk.stats.rejected_by_plugin["breaker"], 120 * 5 * 3);
    assert_eq!((rejected(RiskRule::OrderQuantity), rejected(RiskRule::PriceBand)), (600, 600));
    assert_eq!(rejected(RiskRule::OrderNotional) + rejected(RiskRule::Concentration), 600);
    assert_eq!(out.summary.status.stats.path.risk_rejected, risk.stats.rejected.values().sum::<u64>());
    assert!(!risk.stats.rejected_by_plugin.contains_key("sma-cross"), "{:?}", risk.stats.rejected_by_plugin);
    for name in ["spammer", "breaker"] {
        let view = out.plugin(name);
        assert_eq!((view.health, view.faults), (Health::Running, 0), "{name} is refused, not faulted");
    }

    // Every order followed the state machine to where it is: refused ones
    // rejected, none stuck between risk and the broker, no impossible transition.
    let orders = &out.summary.status.orders;
    let state = |s| orders.by_state.get(&s).copied().unwrap_or(0);
    assert_eq!(orders.illegal_transitions, 0);
    assert_eq!(state(OrderState::Rejected), out.summary.status.stats.path.risk_rejected);
    assert_eq!((state(OrderState::New), state(OrderState::Sent)), (0, 0));
    assert!(state(OrderState::Filled) > 0);
    assert_eq!(orders.by_state.values().sum::<u64>(), orders.orders);
    assert!(orders.slippage.contains_key("sma-cross"), "fills of sma-cross measured against its decision prices");

    let good = out.plugin("sma-cross");
    assert_eq!((good.health, good.faults), (Health::Running, 0));
    assert_eq!(out.intents_of("sma-cross"), alone.intents_of("sma-cross"), "the same intents");
    assert_eq!(good.book, alone.plugin("sma-cross").book, "the same fills and P&L");
}

/// De-leveraging by half in two steps, two bars apart: reduce-only meanwhile,
/// and every position ends at most half its size at the start.
#[test]
fn deleveraging_sheds_the_fraction_in_steps() {
    use stratbox_trading::TradingState;

    let dir = tempfile::tempdir().unwrap();
    let (mut host, _tx) = Scenario::new(vec![sma_cross()]).host(dir.path());
    for _ in 0..60 {
        assert!(host.step());
    }
    let before = host.world().ledger().positions("sma-cross");
    assert!(!before.is_empty(), "sma-cross holds positions after 60 bars");
    let plan = host.start_deleverage(0.5, 2, 120).unwrap();
    assert_eq!((plan.steps_done, plan.steps), (1, 2), "the first step at once");
    let state = host.order_path.risk_view().global;
    assert_eq!(state.state, TradingState::ReduceOnly);
    assert!(state.reason.contains("de-leveraging 50% in 2 steps"), "{}", state.reason);
    for _ in 0..4 {
        assert!(host.step());
    }
    for p in &before {
        let now = host.world().ledger().quantity("sma-cross", p.instrument);
        assert!(now.abs() <= (p.quantity * 0.5).abs() + 1e-9 && now * p.quantity >= 0.0, "instrument {}: {} -> {now}", p.instrument, p.quantity);
    }
    assert!(host.start_deleverage(1.5, 1, 60).unwrap_err().contains("fraction in (0, 1]"));
}

/// A span too long for the market clock is refused where it enters, and the
/// longest one allowed waits instead of wrapping round (`u64::MAX` seconds
/// used to take every step at once in a release build and panic in debug).
#[test]
fn deleveraging_spans_are_bounded_and_never_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, _tx) = Scenario::new(vec![sma_cross()]).host(dir.path());
    for _ in 0..60 {
        assert!(host.step());
    }
    let e = host.start_deleverage(0.5, 5, u64::MAX).unwrap_err();
    assert!(e.contains("every_secs") && e.contains("at most"), "{e}");
    let plan = host.start_deleverage(0.5, 5, stratbox_contract::util::MAX_SPAN_SECS).unwrap();
    assert_eq!(plan.steps_done, 1, "the first step at once, the next a year of market time away");
    for _ in 0..5 {
        assert!(host.step());
    }
    assert_eq!(host.order_path.deleverage_plan().map(|p| p.steps_done), Some(1), "no step taken early");
}
