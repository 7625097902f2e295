//! Each rule on a few hand-made bars, with the numbers worked out in the
//! comments (the README's worked examples are these cases).

use super::*;
use stratbox_sdk::ParamValue;
use stratbox_sdk::testing::{Harness, instrument};

const DAY: i64 = 86_400 * NANOS_PER_SEC;

fn ohlc(day: i64, open: f64, high: f64, low: f64, close: f64) -> Bar {
    Bar { instrument: 0, start: day * DAY, period_secs: 86_400, open, high, low, close, volume: 0.0 }
}

fn flat(day: i64, close: f64) -> Bar {
    ohlc(day, close, close + 1.0, close - 1.0, close)
}

fn position(quantity: f64, entry: f64) -> Position {
    Position { instrument: 0, quantity, average_price: entry, realised_pnl: 0.0, unrealised_pnl: 0.0 }
}

fn rules(params: &[(&str, ParamValue)]) -> Harness<Stops> {
    Harness::<Stops>::new(vec![instrument(0, "AAA")], params).unwrap()
}

fn n(x: f64) -> ParamValue {
    ParamValue::Number(x)
}

fn i(x: i64) -> ParamValue {
    ParamValue::Integer(x)
}

fn only(name: &'static str, value: ParamValue) -> Vec<(&'static str, ParamValue)> {
    vec![("atr_trail", n(0.0)), (name, value)]
}

/// The (stop, take-profit) a decision list sets, or "exit".
fn levels(out: &[StopDecision]) -> Option<(Option<f64>, Option<f64>)> {
    match out {
        [StopDecision::SetLevels(l)] => Some((l.stop_loss, l.take_profit)),
        [] => None,
        other => panic!("expected levels, got {other:?}"),
    }
}

fn exits(out: &[StopDecision]) -> bool {
    out == [StopDecision::Exit(0)]
}

/// Records `closes` as bars before the trade (for the ATR warm-up); every
/// bar has a range of 2 and opens at its close, so the ATR is 2.
fn history(h: &mut Harness<Stops>, closes: &[f64]) -> i64 {
    for (d, c) in closes.iter().enumerate() {
        h.host().record_bar(&flat(d as i64, *c));
    }
    closes.len() as i64
}

#[test]
fn the_atr_trail_follows_the_best_close_warmed_up_from_history_and_never_loosens() {
    let mut h = rules(&[("atr_period", i(3)), ("atr_trail", n(2.0))]);
    let d = history(&mut h, &[100.0, 100.0, 100.0]);
    // Entry bar: ATR over 3 history bars (TR 2 each) and this one (TR 2) is
    // 2 at once, so the stop is there on the first bar: 100 - 2 x 2 = 96.
    assert_eq!(levels(&h.position_bar(flat(d, 100.0), position(10.0, 100.0))), Some((Some(96.0), None)));
    // A higher close raises it. The gap makes the true range 5, the ATR
    // (2 x 2 + 5) / 3 = 3, so 104 - 2 x 3 = 98.
    assert_eq!(levels(&h.position_bar(ohlc(d + 1, 104.0, 105.0, 103.0, 104.0), position(10.0, 100.0))), Some((Some(98.0), None)));
    // The fall widens the ATR to 3.83 (TR 5.5): 104 - 7.67 = 96.33 would loosen, so the stop stays.
    assert_eq!(levels(&h.position_bar(ohlc(d + 2, 101.0, 103.0, 98.5, 99.0), position(10.0, 100.0))), None);
    // A close through the stop exits at market.
    assert!(exits(&h.position_bar(ohlc(d + 3, 99.0, 99.0, 96.0, 97.0), position(10.0, 100.0))));
}

#[test]
fn a_short_trails_from_above_and_a_flip_starts_another_trade() {
    let mut h = rules(&[("atr_period", i(1)), ("atr_trail", n(1.0))]);
    // ATR 1 of the entry bar alone: range 2. Short: 100 + 2 = 102.
    assert_eq!(levels(&h.position_bar(flat(0, 100.0), position(-5.0, 100.0))), Some((Some(102.0), None)));
    // Close 97, true range 4 (low 96 against the close of 100): 97 + 4 = 101.
    assert_eq!(levels(&h.position_bar(flat(1, 97.0), position(-5.0, 100.0))), Some((Some(101.0), None)));
    // The position flips long at 97: a new trade, trailing from below.
    assert_eq!(levels(&h.position_bar(flat(2, 97.0), position(5.0, 97.0))), Some((Some(95.0), None)));
}

#[test]
fn a_gap_in_the_bars_seen_means_a_new_trade_even_at_the_same_price() {
    let mut h = rules(&[("atr_period", i(1)), ("atr_trail", n(1.0))]);
    assert_eq!(levels(&h.position_bar(flat(0, 100.0), position(1.0, 100.0))), Some((Some(98.0), None)));
    assert_eq!(levels(&h.position_bar(flat(1, 101.0), position(1.0, 100.0))), Some((Some(99.0), None)));
    // Flat on day 2 (the policy is not called), in again at 100 on day 3:
    // the old trade would keep 99; this one starts at 100 - 2 = 98.
    h.host().record_bar(&flat(2, 100.0));
    assert_eq!(levels(&h.position_bar(flat(3, 100.0), position(1.0, 100.0))), Some((Some(98.0), None)));
}

#[test]
fn the_percentage_trail_is_measured_from_the_peak_not_the_entry() {
    let mut h = rules(&only("trail_pct", n(10.0)));
    // Peak is the entry bar's high 101: 90.9.
    let (stop, _) = levels(&h.position_bar(flat(0, 100.0), position(1.0, 100.0))).unwrap();
    assert!((stop.unwrap() - 90.9).abs() < 1e-9);
    // A high of 120 (close 110): 108, not 110 x 0.9 = 99 and not 100 x 0.9 = 90.
    let (stop, _) = levels(&h.position_bar(ohlc(1, 105.0, 120.0, 104.0, 110.0), position(1.0, 100.0))).unwrap();
    assert!((stop.unwrap() - 108.0).abs() < 1e-9);
    // Short: 10% above the lowest low.
    let mut h = rules(&only("trail_pct", n(10.0)));
    let (stop, _) = levels(&h.position_bar(ohlc(0, 100.0, 100.0, 80.0, 85.0), position(-1.0, 100.0))).unwrap();
    assert!((stop.unwrap() - 88.0).abs() < 1e-9);
}

#[test]
fn the_chandelier_hangs_from_the_highest_high_of_its_window() {
    let mut h = rules(&[("atr_trail", n(0.0)), ("chandelier", n(1.0)), ("chandelier_period", i(2)), ("atr_period", i(1))]);
    // ATR(1) is the bar's true range. Bar 0: high 101, TR 2: 99.
    assert_eq!(levels(&h.position_bar(flat(0, 100.0), position(1.0, 100.0))), Some((Some(99.0), None)));
    // Bar 1: high 110, TR 10 (101 -> 110 from close 100): 110 - 10 = 100.
    assert_eq!(levels(&h.position_bar(ohlc(1, 100.0, 110.0, 100.0, 108.0), position(1.0, 100.0))), Some((Some(100.0), None)));
    // Bar 2: highs in the window 110, 109; TR 2: 108, tighter.
    assert_eq!(levels(&h.position_bar(ohlc(2, 108.0, 109.0, 107.0, 108.5), position(1.0, 100.0))), Some((Some(108.0), None)));
    // Bar 3: 110 has left the window (109, 108.5), TR 1.5: 107.5 would loosen: no change.
    assert_eq!(levels(&h.position_bar(ohlc(3, 108.5, 108.5, 107.0, 108.5), position(1.0, 100.0))), None);
}

#[test]
fn time_stops_count_bars_and_market_seconds_in_the_position() {
    let mut h = rules(&only("max_bars", i(3)));
    assert!(h.position_bar(flat(0, 100.0), position(1.0, 100.0)).is_empty());
    assert!(h.position_bar(flat(1, 100.0), position(1.0, 100.0)).is_empty());
    assert!(exits(&h.position_bar(flat(2, 100.0), position(1.0, 100.0))), "the third bar's close");
    // Until the position is gone, every bar asks again.
    assert!(exits(&h.position_bar(flat(3, 100.0), position(1.0, 100.0))));

    // Two days of market time: the entry bar starts at day 0 and the second bar ends at day 2.
    let mut h = rules(&only("max_secs", i(2 * 86_400)));
    assert!(h.position_bar(flat(0, 100.0), position(1.0, 100.0)).is_empty());
    assert!(exits(&h.position_bar(flat(1, 100.0), position(1.0, 100.0))));
}

#[test]
fn the_session_close_exit_fires_on_the_bar_ending_inside_the_buffer() {
    let mut h = rules(&[("atr_trail", n(0.0)), ("session_close_utc", ParamValue::Text("20:00".into())), ("close_buffer_mins", i(60))]);
    let hour = |hh: i64, close: f64| Bar { instrument: 0, start: 10 * DAY + hh * 3_600 * NANOS_PER_SEC, period_secs: 3_600, open: close, high: close, low: close, close, volume: 0.0 };
    // The bar 17:00-18:00 ends before 19:00: hold.
    assert!(h.position_bar(hour(17, 100.0), position(1.0, 100.0)).is_empty());
    // The bar ending at 19:00 is inside [19:00, 20:00]: exit at the next open.
    assert!(exits(&h.position_bar(hour(18, 100.0), position(1.0, 100.0))));
    // A bar that ends after the close (an evening session) is not held back.
    let mut h = rules(&[("atr_trail", n(0.0)), ("session_close_utc", ParamValue::Text("20:00".into())), ("close_buffer_mins", i(60))]);
    assert!(h.position_bar(hour(20, 100.0), position(1.0, 100.0)).is_empty());
}

#[test]
fn break_even_then_lock_in_follow_the_open_profit() {
    // ATR 2 at entry (history), break-even once up 1.5 ATRs = 3, then lock half the profit.
    let mut h = rules(&[("atr_trail", n(0.0)), ("atr_period", i(3)), ("breakeven_atr", n(1.5)), ("lock_fraction", n(0.5))]);
    let d = history(&mut h, &[100.0, 100.0, 100.0]);
    assert_eq!(levels(&h.position_bar(flat(d, 100.0), position(1.0, 100.0))), None, "no rule has a level yet");
    assert_eq!(levels(&h.position_bar(flat(d + 1, 102.0), position(1.0, 100.0))), None, "up 2 < 3");
    // Up 4: protecting, stop = 100 + 0.5 x 4 = 102.
    assert_eq!(levels(&h.position_bar(flat(d + 2, 104.0), position(1.0, 100.0))), Some((Some(102.0), None)));
    // Up 10: 105. Back to 106: the best close is still 110, no change.
    assert_eq!(levels(&h.position_bar(flat(d + 3, 110.0), position(1.0, 100.0))), Some((Some(105.0), None)));
    assert_eq!(levels(&h.position_bar(flat(d + 4, 106.0), position(1.0, 100.0))), None);
}

#[test]
fn break_even_in_multiples_of_the_initial_risk() {
    // Initial stop 10% below the entry's peak: 90.9 with a high of 101, risk 9.1; 1R is reached at 109.1.
    let mut h = rules(&[("atr_trail", n(0.0)), ("trail_pct", n(10.0)), ("breakeven_r", n(1.0))]);
    let (stop, _) = levels(&h.position_bar(flat(0, 100.0), position(1.0, 100.0))).unwrap();
    assert!((stop.unwrap() - 90.9).abs() < 1e-9);
    // Close 109 (high 109.5): 0.9 short of 1R, the trail gives 98.55.
    let (stop, _) = levels(&h.position_bar(ohlc(1, 109.0, 109.5, 108.0, 109.0), position(1.0, 100.0))).unwrap();
    assert!((stop.unwrap() - 98.55).abs() < 1e-9);
    // Close 110, high 110: up 10 >= 9.1, the stop moves to the entry 100 (tighter than the trail's 99).
    assert_eq!(levels(&h.position_bar(ohlc(2, 110.0, 110.0, 109.0, 110.0), position(1.0, 100.0))), Some((Some(100.0), None)));
}

#[test]
fn take_profit_is_fixed_at_entry_the_nearer_of_atrs_and_percent() {
    let mut h = rules(&[("atr_trail", n(0.0)), ("atr_period", i(3)), ("take_profit_atr", n(3.0)), ("take_profit_pct", n(10.0))]);
    let d = history(&mut h, &[100.0, 100.0, 100.0]);
    // 3 ATRs = 106 against 10% = 110: 106.
    assert_eq!(levels(&h.position_bar(flat(d, 100.0), position(1.0, 100.0))), Some((None, Some(106.0))));
    // A wider ATR later does not move it.
    assert_eq!(levels(&h.position_bar(ohlc(d + 1, 100.0, 105.0, 95.0, 101.0), position(1.0, 100.0))), None);
    // Short: 10% below, 90, is farther than 3 ATRs (94).
    let mut h = rules(&[("atr_trail", n(0.0)), ("atr_period", i(3)), ("take_profit_atr", n(3.0)), ("take_profit_pct", n(10.0))]);
    let d = history(&mut h, &[100.0, 100.0, 100.0]);
    assert_eq!(levels(&h.position_bar(flat(d, 100.0), position(-1.0, 100.0))), Some((None, Some(94.0))));
}

#[test]
fn combined_rules_take_the_tightest_level() {
    let mut h = rules(&[("atr_period", i(1)), ("atr_trail", n(3.0)), ("trail_pct", n(1.0))]);
    // ATR trail 100 - 6 = 94; 1% below the high of 101 = 99.99: 99.99.
    let (stop, _) = levels(&h.position_bar(flat(0, 100.0), position(1.0, 100.0))).unwrap();
    assert!((stop.unwrap() - 99.99).abs() < 1e-9);
}

#[test]
fn bad_parameters_are_refused_with_the_reason() {
    let refused = |params: &[(&str, ParamValue)]| Harness::<Stops>::new(vec![instrument(0, "AAA")], params).err().expect("refused");
    assert!(refused(&[("atr_trail", n(0.0))]).contains("every rule is off"));
    assert!(refused(&[("atr_trail", n(0.0)), ("breakeven_r", n(1.0))]).contains("`breakeven_r` needs a trailing rule"));
    assert!(refused(&[("lock_fraction", n(0.5))]).contains("`lock_fraction` needs"));
    assert!(refused(&[("session_close_utc", ParamValue::Text("25:00".into()))]).contains("`session_close_utc` is `25:00`"));
}

#[test]
fn a_successor_takes_over_the_trade_and_its_stop_does_not_loosen() {
    let mut h = rules(&[("atr_period", i(1)), ("atr_trail", n(1.0))]);
    h.position_bar(flat(0, 100.0), position(1.0, 100.0));
    assert_eq!(levels(&h.position_bar(flat(1, 101.0), position(1.0, 100.0))), Some((Some(99.0), None)));
    let mut next = h.swap::<Stops>(&[("atr_period", i(1)), ("atr_trail", n(1.0))]).unwrap();
    // Close 98.5, ATR 3: a cold start would trail from 98.5 (95.5); the
    // successor keeps the best close 101 and the stop 99, which the close went through: exit.
    assert!(exits(&next.position_bar(ohlc(2, 99.5, 99.5, 98.0, 98.5), position(1.0, 100.0))));
    // A truncated state is refused with the reason.
    let mut fresh = rules(&[]);
    let mut host = stratbox_sdk::testing::TestHost::default();
    let err = fresh.plugin().import_state(&mut Ctx::new(&mut host), &[1, 0, 0]).unwrap_err();
    assert!(err.contains("truncated"), "{err}");
}
