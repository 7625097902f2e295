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
        working: (0.0, 0.0),
        last_price: Some(100.0),
        market_open: Some(true),
        others: BookTotals::default(),
        open_orders: 0,
        exit: false,
        in_doubt: None,
        now,
    }
}

/// A filled position in another instrument, nothing working.
fn held(instrument: InstrumentId, quantity: f64, mark: f64) -> Exposure {
    Exposure { instrument, quantity, mark, buying: 0.0, selling: 0.0 }
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
    let others = [held(1, 200.0, 100.0), held(2, -150.0, 100.0)]; // 20,000 long, 15,000 short
    let with = |q, pos, book: &[Exposure]| OrderCheck { others: BookTotals::of(book), ..order("p", Side::Buy, q, pos, T0) };
    // Holding 100 of AAPL already: 200 more makes 30,000 (30% of equity), 201 more is too concentrated.
    assert_eq!(rule(r.check(&with(200.0, 100.0, &others))), None, "gross 65,000, net 35,000");
    assert_eq!(rule(r.check(&with(201.0, 100.0, &others))), Some(RiskRule::Concentration));
    // Selling down is always within limits.
    assert_eq!(rule(r.check(&order("p", Side::Sell, 300.0, 350.0, T0))), None);
    let r2 = &mut RiskEngine::new(RiskConfig { max_concentration: 1.0, ..r.config().clone() });
    assert_eq!(rule(r2.check(&with(301.0, 100.0, &[]))), Some(RiskRule::PositionLimit), "40,100 in AAPL");
    let long = [held(1, 300.0, 100.0), held(2, -50.0, 100.0)]; // net 25,000
    assert_eq!(rule(r2.check(&with(260.0, 0.0, &long))), Some(RiskRule::NetExposure), "net 51,000");
    let both = [held(1, 300.0, 100.0), held(2, -300.0, 100.0)]; // gross 60,000
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

#[test]
fn working_orders_count_at_their_worst_for_reduce_only_exits_and_exposure() {
    let mut r = RiskEngine::new(RiskConfig { max_position_notional: 40_000.0, max_gross_exposure: 60_000.0, max_net_exposure: 50_000.0, max_concentration: 1.0, ..RiskConfig::default() });
    r.set_state(None, TradingState::ReduceOnly, "test", T0);
    // Long 10 with a sell 10 already on its way: a second sell 10 would flip the position to -10.
    let first = order("p", Side::Sell, 10.0, 10.0, T0);
    assert_eq!(rule(r.check(&first)), None, "the first sell closes");
    let second = OrderCheck { working: (0.0, 10.0), ..order("p", Side::Sell, 10.0, 10.0, T0) };
    let e = r.check(&second).unwrap_err();
    assert_eq!(e.rule, RiskRule::ReduceOnly);
    assert!(e.detail.contains("to -10") && e.detail.contains("10 more working"), "{}", e.detail);
    assert_eq!(rule(r.check(&OrderCheck { working: (0.0, 4.0), ..order("p", Side::Sell, 6.0, 10.0, T0) })), None, "4 + 6 still only closes");
    assert_eq!(rule(r.check(&OrderCheck { working: (25.0, 0.0), ..order("p", Side::Sell, 6.0, 10.0, T0) })), None, "working buys cannot make a sell flip");
    // Halted: exits pass only if they cannot flip either.
    r.set_state(None, TradingState::Halted, "test", T0);
    let exit = |working| OrderCheck { exit: true, working, ..order("p", Side::Sell, 10.0, 10.0, T0) };
    assert_eq!(rule(r.check(&exit((0.0, 0.0)))), None);
    let e = r.check(&exit((0.0, 10.0))).unwrap_err();
    assert_eq!(e.rule, RiskRule::Halted);
    assert!(e.detail.contains("an exit may only reduce"), "{}", e.detail);
    r.set_state(None, TradingState::Active, "resume", T0);

    // Exposure: resting buys count as if filled. 300 resting + 150 more = 45,000 > 40,000.
    assert_eq!(rule(r.check(&order("p", Side::Buy, 350.0, 0.0, T0))), None, "35,000 alone is within");
    assert_eq!(rule(r.check(&OrderCheck { working: (300.0, 0.0), ..order("p", Side::Buy, 150.0, 0.0, T0) })), Some(RiskRule::PositionLimit));
    // The larger side counts: long 100 with 450 resting sells could be short 350.
    assert_eq!(rule(r.check(&OrderCheck { working: (0.0, 450.0), ..order("p", Side::Buy, 1.0, 100.0, T0) })), None, "short 350 at worst: 35,000");
    assert_eq!(rule(r.check(&OrderCheck { working: (0.0, 510.0), ..order("p", Side::Buy, 1.0, 100.0, T0) })), Some(RiskRule::PositionLimit));
    // Other instruments' working orders count toward gross and net.
    let book = [Exposure { instrument: 1, quantity: 0.0, mark: 100.0, buying: 300.0, selling: 0.0 }];
    assert_eq!(rule(r.check(&OrderCheck { others: BookTotals::of(&book), ..order("p", Side::Buy, 250.0, 0.0, T0) })), Some(RiskRule::NetExposure), "net 55,000 if all buys fill");
    let hedged = [Exposure { instrument: 1, quantity: 0.0, mark: 100.0, buying: 0.0, selling: 300.0 }];
    assert_eq!(rule(r.check(&OrderCheck { others: BookTotals::of(&hedged), ..order("p", Side::Buy, 250.0, 0.0, T0) })), None, "gross 55,000, net at worst 25,000 or -30,000");
    assert_eq!(rule(r.check(&OrderCheck { others: BookTotals::of(&hedged), ..order("p", Side::Buy, 310.0, 0.0, T0) })), Some(RiskRule::GrossExposure), "gross 61,000");
    // A position with working orders on top counts once, at its worst.
    let adding = [Exposure { instrument: 1, quantity: 100.0, mark: 100.0, buying: 200.0, selling: 0.0 }];
    assert_eq!(rule(r.check(&OrderCheck { others: BookTotals::of(&adding), ..order("p", Side::Buy, 260.0, 0.0, T0) })), Some(RiskRule::NetExposure), "net 56,000: 30,000 there at worst");
    assert_eq!(rule(r.check(&OrderCheck { others: BookTotals::of(&adding), ..order("p", Side::Buy, 190.0, 0.0, T0) })), None, "net 49,000");
}

#[test]
fn each_cause_holds_and_ends_on_its_own_and_the_strictest_decides() {
    let config = RiskConfig {
        daily_loss_limit: Some(1_000.0),
        circuit_breaker: CircuitBreakerConfig { alarm_level: Some(AlarmLevelName::Severe), halt_secs: 60, ..CircuitBreakerConfig::default() },
        ..RiskConfig::default()
    };
    let mut r = RiskEngine::new(config);
    r.on_pnl(0.0, &[], T0);
    r.on_pnl(-1_200.0, &[], T0 + SEC);
    assert_eq!(r.view().global.state, TradingState::ReduceOnly);
    r.on_alarm("zscore-guard", AlarmLevel::Critical, "z 9", T0 + 2 * SEC);
    let v = r.view();
    assert_eq!((v.global.state, v.global.cause), (TradingState::Halted, Some(Cause::CircuitBreaker)), "the stricter cause shows");
    assert_eq!(v.causes.len(), 2, "{:?}", v.causes);
    // The breaker's halt ends; the daily loss's reduce-only was never lifted.
    r.tick(T0 + 62 * SEC);
    let v = r.view();
    assert_eq!((v.global.state, v.global.cause), (TradingState::ReduceOnly, Some(Cause::DailyLoss)));
    let ended = r.take_alerts().pop().unwrap();
    assert_eq!((ended.kind.as_str(), ended.state, ended.cause), ("reduceonly", Some(TradingState::Active), Some(Cause::CircuitBreaker)));
    assert!(ended.message.contains("still reduce-only") && ended.message.contains("daily loss"), "{}", ended.message);
    // A breaker trip during a de-leveraging leaves the de-leveraging in force too.
    r.set_cause(None, Cause::Deleverage, TradingState::ReduceOnly, "de-leveraging", T0 + 63 * SEC);
    r.on_alarm("zscore-guard", AlarmLevel::Critical, "z 9", T0 + 64 * SEC);
    r.tick(T0 + 124 * SEC);
    assert!(r.holds(Cause::Deleverage) && r.holds(Cause::DailyLoss) && !r.holds(Cause::CircuitBreaker));
    // A failed reconciliation is not lifted by the operator's resume; the rest is.
    r.set_cause(None, Cause::Reconciliation, TradingState::Halted, "reconciliation failed: X", T0 + 125 * SEC);
    r.set_state(None, TradingState::Active, "resumed by the operator", T0 + 126 * SEC);
    let v = r.view();
    assert_eq!((v.global.state, v.global.cause), (TradingState::Halted, Some(Cause::Reconciliation)));
    assert_eq!(v.causes.len(), 1);
    r.set_cause(None, Cause::Reconciliation, TradingState::Active, "reconciled", T0 + 127 * SEC);
    let v = r.view();
    assert_eq!((v.global.state, v.global.reason.as_str()), (TradingState::Active, "reconciled"));
    // A plugin's own cause and the global one: the stricter applies to it.
    r.set_state(Some("p"), TradingState::ReduceOnly, "operator", T0 + 128 * SEC);
    assert_eq!(r.state_of("p").state, TradingState::ReduceOnly);
    assert_eq!(r.state_of("q").state, TradingState::Active);
}

#[test]
fn a_var_over_its_limit_is_reduce_only_with_the_reason_and_lifts_below_the_resume_level() {
    let limit = VarLimitConfig { confidence: 0.99, window_days: 60, min_days: 20, max_fraction: 0.02, resume_at: 0.9 };
    let mut r = RiskEngine::new(RiskConfig { var_limit: Some(limit), ..RiskConfig::default() });
    assert!(r.var_enabled());
    // 40 days of instrument 0 swinging +-3% a day (one close a day).
    let day = 86_400 * SEC;
    let mut price = 100.0;
    for d in 0..40 {
        r.on_var_price(0, price, T0 + d * day);
        price *= if d % 2 == 0 { 1.03 } else { 0.97 };
    }
    let now = T0 + 40 * day;
    // 1,000 shares at 100 on equity 100,000: a -3% day loses 3,000, VaR 3% > 2%.
    r.update_var(&HashMap::from([(0, 1_000.0)]), |_| Some(100.0), now);
    assert_eq!(r.state_of("p").state, TradingState::ReduceOnly);
    let view = r.view();
    let v = view.var.unwrap();
    assert!((v.var - 3_000.0).abs() < 1e-6 && v.days == 38, "38 final days of 40 seen: {v:?}");
    let reason = &r.state_of("p").reason;
    assert!(reason.contains("99% VaR 3000.00") && reason.contains("over the limit 2.00%"), "{reason}");
    assert_eq!(rule(r.check(&order("p", Side::Buy, 1.0, 1_000.0, now))), Some(RiskRule::ReduceOnly));
    assert_eq!(rule(r.check(&order("p", Side::Sell, 500.0, 1_000.0, now))), None, "reducing passes");
    // 650 shares: VaR 1.95%, under the limit but over the resume level (1.8%); 500: 1.5%, lifted.
    r.update_var(&HashMap::from([(0, 650.0)]), |_| Some(100.0), now);
    assert_eq!(r.state_of("p").state, TradingState::ReduceOnly, "1.95% is under the limit but over the resume level");
    r.update_var(&HashMap::from([(0, 500.0)]), |_| Some(100.0), now);
    assert_eq!(r.state_of("p").state, TradingState::Active);
    let alerts = r.take_alerts();
    assert_eq!(alerts.iter().filter(|a| a.cause == Some(Cause::Var)).count(), 2, "one breach, one lift: {alerts:?}");
}
