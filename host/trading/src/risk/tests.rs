use super::*;

const T0: Timestamp = 1_704_103_200 * SEC; // 2024-01-01 10:00 UTC

fn order<'a>(plugin: &'a str, side: Side, quantity: f64, position: f64, now: Timestamp) -> OrderCheck<'a> {
    OrderCheck {
        plugin,
        instrument: 0,
        symbol: "AAPL",
        side,
        quantity,
        order_type: OrderType::Market,
        position,
        last_price: Some(100.0),
        market_open: Some(true),
        positions: &[],
        open_orders: 0,
        exit: false,
        now,
    }
}

fn rule(r: Result<(), RiskReject>) -> Option<RiskRule> {
    r.err().map(|e| e.rule)
}

#[test]
fn each_per_order_rule_names_itself() {
    let config = RiskConfig {
        allowed: vec!["AAPL".into(), "MSFT".into()],
        max_order_quantity: 1_000.0,
        max_order_notional: 50_000.0,
        price_band: 0.05,
        ..RiskConfig::default()
    };
    let mut r = RiskEngine::new(config);
    assert_eq!(rule(r.check(&order("p", Side::Buy, 10.0, 0.0, T0))), None);
    assert_eq!(rule(r.check(&OrderCheck { symbol: "TSLA", ..order("p", Side::Buy, 10.0, 0.0, T0) })), Some(RiskRule::InstrumentNotAllowed));
    assert_eq!(rule(r.check(&OrderCheck { market_open: Some(false), ..order("p", Side::Buy, 10.0, 0.0, T0) })), Some(RiskRule::MarketClosed));
    assert_eq!(rule(r.check(&OrderCheck { market_open: None, ..order("p", Side::Buy, 10.0, 0.0, T0) })), None, "unknown hours do not block");
    assert_eq!(rule(r.check(&order("p", Side::Buy, 1_001.0, 0.0, T0))), Some(RiskRule::OrderQuantity));
    assert_eq!(rule(r.check(&order("p", Side::Buy, 600.0, 0.0, T0))), Some(RiskRule::OrderNotional), "600 x 100 > 50,000");
    assert_eq!(rule(r.check(&OrderCheck { last_price: None, ..order("p", Side::Buy, 1.0, 0.0, T0) })), Some(RiskRule::NoPrice));
    let limit = |p| OrderCheck { order_type: OrderType::Limit(p), ..order("p", Side::Buy, 1.0, 0.0, T0) };
    assert_eq!(rule(r.check(&limit(104.9))), None);
    let e = r.check(&limit(94.0)).unwrap_err();
    assert_eq!(e.rule, RiskRule::PriceBand);
    assert!(e.detail.contains("94") && e.detail.contains("5.0%"), "{}", e.detail);
    assert_eq!(r.stats.rejected.values().sum::<u64>(), 6);
    assert_eq!(r.stats.rejected_by_plugin["p"], 6);
}

#[test]
fn portfolio_limits_count_the_position_after_the_order() {
    let config = RiskConfig {
        capital: 100_000.0,
        max_position_notional: 40_000.0,
        max_gross_exposure: 80_000.0,
        max_net_exposure: 50_000.0,
        max_concentration: 0.3,
        max_open_orders: 3,
        ..RiskConfig::default()
    };
    let mut r = RiskEngine::new(config);
    let others = [(1, 200.0, 100.0), (2, -150.0, 100.0)]; // 20,000 long, 15,000 short
    let with = |q, pos, positions| OrderCheck { positions, ..order("p", Side::Buy, q, pos, T0) };
    // Holding 100 of AAPL already: 200 more makes 30,000 (30% of equity), 201 more is too concentrated.
    assert_eq!(rule(r.check(&with(200.0, 100.0, &others))), None, "gross 65,000, net 35,000");
    assert_eq!(rule(r.check(&with(201.0, 100.0, &others))), Some(RiskRule::Concentration));
    // Selling down is always within limits.
    assert_eq!(rule(r.check(&order("p", Side::Sell, 300.0, 350.0, T0))), None);
    let r2 = &mut RiskEngine::new(RiskConfig { max_concentration: 1.0, ..r.config().clone() });
    assert_eq!(rule(r2.check(&with(301.0, 100.0, &[]))), Some(RiskRule::PositionLimit), "40,100 in AAPL");
    let long = [(1, 300.0, 100.0), (2, -50.0, 100.0)]; // net 25,000
    assert_eq!(rule(r2.check(&with(260.0, 0.0, &long))), Some(RiskRule::NetExposure), "net 51,000");
    let both = [(1, 300.0, 100.0), (2, -300.0, 100.0)]; // gross 60,000
    assert_eq!(rule(r2.check(&with(210.0, 0.0, &both))), Some(RiskRule::GrossExposure), "gross 81,000");
    assert_eq!(rule(r2.check(&OrderCheck { open_orders: 3, ..order("p", Side::Buy, 1.0, 0.0, T0) })), Some(RiskRule::OpenOrders));
}

#[test]
fn throttles_and_duplicates_are_per_second_and_per_plugin() {
    let config = RiskConfig { orders_per_sec_per_plugin: 3, orders_per_sec: 5, duplicate_window_ms: 500, ..RiskConfig::default() };
    let mut r = RiskEngine::new(config);
    let ms = 1_000_000;
    for k in 0..3 {
        assert_eq!(rule(r.check(&order("spam", Side::Buy, 1.0 + k as f64, 0.0, T0 + k * ms))), None);
    }
    assert_eq!(rule(r.check(&order("spam", Side::Buy, 9.0, 0.0, T0 + 3 * ms))), Some(RiskRule::PluginThrottle));
    assert_eq!(rule(r.check(&order("calm", Side::Buy, 1.0, 0.0, T0 + 4 * ms))), None, "another plugin is not throttled by the spammer");
    assert_eq!(rule(r.check(&order("calm", Side::Buy, 2.0, 0.0, T0 + 5 * ms))), None);
    assert_eq!(rule(r.check(&order("third", Side::Buy, 1.0, 0.0, T0 + 6 * ms))), Some(RiskRule::GlobalThrottle));
    // A second later the window is empty again, but the same order twice is a duplicate.
    assert_eq!(rule(r.check(&order("spam", Side::Sell, 4.0, 0.0, T0 + SEC + 10 * ms))), None);
    assert_eq!(rule(r.check(&order("spam", Side::Sell, 4.0, 0.0, T0 + SEC + 20 * ms))), Some(RiskRule::Duplicate));
    assert_eq!(rule(r.check(&order("spam", Side::Sell, 4.0, 0.0, T0 + SEC + 600 * ms))), None, "outside the window it is a new order");
}

#[test]
fn losses_move_trading_to_reduce_only_then_halted_with_reasons_and_alerts() {
    let config = RiskConfig { capital: 100_000.0, daily_loss_limit: Some(2_000.0), plugin_daily_loss_limit: Some(1_000.0), max_drawdown: 0.10, ..RiskConfig::default() };
    let mut r = RiskEngine::new(config);
    let (p, q): (Arc<str>, Arc<str>) = (Arc::from("p"), Arc::from("q"));
    r.on_pnl(0.0, &[(p.clone(), 0.0), (q.clone(), 0.0)], T0);
    r.on_pnl(5_000.0, &[(p.clone(), 0.0), (q.clone(), 5_000.0)], T0 + 60 * SEC); // peak equity 105,000
    r.on_pnl(3_900.0, &[(p.clone(), -1_100.0), (q.clone(), 5_000.0)], T0 + 120 * SEC);
    assert_eq!(r.state_of("p").state, TradingState::ReduceOnly, "p lost 1,100 today");
    assert_eq!(r.state_of("q").state, TradingState::Active, "others trade on");
    assert_eq!(rule(r.check(&order("p", Side::Buy, 1.0, 10.0, T0 + 121 * SEC))), Some(RiskRule::ReduceOnly));
    assert_eq!(rule(r.check(&order("p", Side::Sell, 10.0, 10.0, T0 + 122 * SEC))), None, "closing is allowed");
    assert_eq!(rule(r.check(&order("p", Side::Sell, 11.0, 10.0, T0 + 123 * SEC))), Some(RiskRule::ReduceOnly), "flipping is not");
    r.on_pnl(-2_100.0, &[(p.clone(), -1_100.0), (q.clone(), -1_000.0)], T0 + 180 * SEC);
    assert_eq!(r.view().global.state, TradingState::ReduceOnly, "everyone: a daily loss of 2,100");
    r.on_pnl(-5_600.0, &[(p.clone(), -1_100.0), (q.clone(), -4_500.0)], T0 + 240 * SEC);
    let v = r.view();
    assert_eq!(v.global.state, TradingState::Halted);
    assert!(v.global.reason.contains("drawdown 10.1%"), "{}", v.global.reason);
    assert_eq!(v.global.since, T0 + 240 * SEC);
    let e = r.check(&order("q", Side::Sell, 1.0, 5.0, T0 + 241 * SEC)).unwrap_err();
    assert_eq!(e.rule, RiskRule::Halted, "halted: not even reducing orders from strategies");
    assert_eq!(rule(r.check(&OrderCheck { exit: true, ..order("q", Side::Sell, 5.0, 5.0, T0 + 242 * SEC) })), None, "but exits go");
    let kinds: Vec<_> = r.take_alerts().into_iter().map(|a| (a.scope, a.kind)).collect();
    let expected = [("p", "reduceonly"), ("global", "reduceonly"), ("q", "reduceonly"), ("global", "halted")];
    assert_eq!(kinds, expected.map(|(s, k)| (s.to_owned(), k.to_owned())), "q lost its 1,000 at T0+180");
    r.set_state(None, TradingState::Active, "resumed by the operator", T0 + 300 * SEC);
    assert_eq!(r.view().global.state, TradingState::Active);
}

#[test]
fn the_circuit_breaker_halts_on_alarms_and_market_moves_for_a_while() {
    let config = RiskConfig {
        circuit_breaker: CircuitBreakerConfig { alarm_level: Some(AlarmLevelName::Severe), reference: Some("US500".into()), drop: 0.07, halt_secs: 600 },
        ..RiskConfig::default()
    };
    let mut r = RiskEngine::new(config);
    r.on_alarm("zscore-guard", AlarmLevel::Elevated, "z 4.1", T0);
    assert_eq!(r.view().global.state, TradingState::Active, "below the configured level");
    r.on_alarm("zscore-guard", AlarmLevel::Severe, "z 7.9", T0);
    let v = r.view();
    assert_eq!((v.global.state, v.global.until), (TradingState::Halted, Some(T0 + 600 * SEC)));
    assert!(v.global.reason.contains("zscore-guard") && v.global.reason.contains("z 7.9"));
    r.tick(T0 + 599 * SEC);
    assert_eq!(r.view().global.state, TradingState::Halted);
    r.tick(T0 + 600 * SEC);
    assert_eq!(r.view().global.state, TradingState::Active, "the halt ends by itself");
    // The reference index: first price of the day 5,000; 4,700 is -6%, 4,640 is -7.2%.
    r.on_price("US500", 5_000.0, T0 + 700 * SEC);
    r.on_price("AAPL", 10.0, T0 + 701 * SEC);
    r.on_price("US500", 4_700.0, T0 + 702 * SEC);
    assert_eq!(r.view().global.state, TradingState::Active);
    r.on_price("US500", 4_640.0, T0 + 703 * SEC);
    let v = r.view();
    assert_eq!(v.global.state, TradingState::Halted);
    assert!(v.global.reason.contains("US500 down 7.2%"), "{}", v.global.reason);
    // The next day starts from its own first price.
    r.tick(T0 + 86_400 * SEC);
    r.on_price("US500", 4_500.0, T0 + 86_400 * SEC);
    assert_eq!(r.view().global.state, TradingState::Active);
}
