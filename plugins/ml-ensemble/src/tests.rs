//! The ensemble's rules on members whose answers are known (the harness's
//! test models): voting, abstaining, sizing, refusals, and a hot swap.

use super::*;
use stratbox_sdk::ParamValue;
use stratbox_sdk::testing::{Harness, TestHost, TestModel, instrument};

/// A member that always gives `p` for `up`.
fn fixed(name: &str, steps: u32, p: f32) -> TestModel {
    TestModel::new(name, steps * COUNT as u32, &["down", "up"], move |_| vec![1.0 - p, p])
}

fn harness(models: Vec<TestModel>, params: &[(&str, ParamValue)]) -> Result<Harness<MlEnsemble>, String> {
    let mut host = TestHost::default();
    host.models = models;
    Harness::with_host(host, vec![instrument(0, "SPY"), instrument(1, "QQQ")], params)
}

fn text(s: &str) -> ParamValue {
    ParamValue::Text(s.into())
}

/// Bars of both instruments on day `d`, rising gently.
fn day(d: i64) -> Vec<Bar> {
    (0..2).map(|i| stratbox_sdk::testing::bar(i, d * 86_400, 86_400, 100.0 + d as f64 + i as f64)).collect()
}

/// Runs `days` days; the intents of the last.
fn run(h: &mut Harness<MlEnsemble>, days: i64) -> Vec<Intent> {
    (0..days).map(|d| h.bars(&day(d))).last().unwrap_or_default()
}

#[test]
fn soft_voting_sizes_by_confidence_once_the_window_is_full() {
    let mut h = harness(vec![fixed("a", 1, 0.56), fixed("b", 1, 0.54)], &[("models", text("a,b"))]).unwrap();
    assert!(run(&mut h, WINDOW as i64 - 1).is_empty(), "no row before 21 closes");
    // Mean 0.55: an edge of 0.05 is half of full_at (0.1): 50 of 100.
    let intents = h.bars(&day(WINDOW as i64));
    assert_eq!(intents, vec![Intent::target(0, 50.0), Intent::target(1, 50.0)]);
    assert!(h.bars(&day(WINDOW as i64 + 1)).is_empty(), "the same target is not sent again");
    assert_eq!(h.host().predicted_rows, 2 * 2 * 2, "two members, two instruments, two days");
}

#[test]
fn weighted_and_hard_voting_and_abstaining() {
    let members = || vec![fixed("a", 1, 0.60), fixed("b", 1, 0.45)];
    // Weighted 3:1 -> 0.5625: 62 (floored to lots).
    let mut h = harness(members(), &[("models", text("a,b")), ("voting", text("weighted")), ("weights", text("3,1"))]).unwrap();
    assert_eq!(run(&mut h, WINDOW as i64)[0], Intent::target(0, 62.0));
    // Hard: one up, one down -> 1/2: nothing.
    let mut h = harness(members(), &[("models", text("a,b")), ("voting", text("hard"))]).unwrap();
    assert!(run(&mut h, WINDOW as i64).is_empty());
    // Spread 0.15 over max_spread 0.1: abstain, flat.
    let mut h = harness(members(), &[("models", text("a,b")), ("max_spread", ParamValue::Number(0.1))]).unwrap();
    assert!(run(&mut h, WINDOW as i64 + 3).is_empty());
    assert_eq!(h.plugin().abstained, 2 * 4);
    // Down votes go short only when allowed.
    let down = || vec![fixed("a", 1, 0.3)];
    let mut h = harness(down(), &[("models", text("a"))]).unwrap();
    assert!(run(&mut h, WINDOW as i64).is_empty());
    let mut h = harness(down(), &[("models", text("a")), ("allow_short", ParamValue::Flag(true))]).unwrap();
    assert_eq!(run(&mut h, WINDOW as i64)[0], Intent::target(0, -100.0));
}

#[test]
fn a_sequence_member_gets_its_last_rows_oldest_first() {
    // A member of 3 steps checks it gets 3 rows and answers from the newest.
    let seq = TestModel::new("seq", 3 * COUNT as u32, &["down", "up"], |rows| {
        assert_eq!(rows.len(), 3 * COUNT);
        vec![0.0, if rows[2 * COUNT] > 0.0 { 0.6 } else { 0.4 }]
    });
    let mut h = harness(vec![seq, fixed("a", 1, 0.6)], &[("models", text("seq,a"))]).unwrap();
    assert!(run(&mut h, WINDOW as i64 + 1).is_empty(), "3 rows need 23 closes");
    assert_eq!(h.bars(&day(WINDOW as i64 + 2))[0], Intent::target(0, 100.0));
}

#[test]
fn bad_setups_are_refused_with_the_reason() {
    let err = |models: Vec<TestModel>, params: &[(&str, ParamValue)]| harness(models, params).err().expect("refused");
    assert!(err(vec![], &[("models", text("gbdt"))]).contains("model `gbdt`: no model named `gbdt`"));
    let wrong = TestModel::new("w", 5, &["down", "up"], |_| vec![0.5, 0.5]);
    assert!(err(vec![wrong], &[("models", text("w"))]).contains("rows of 5 values"));
    let classes = TestModel::new("c", COUNT as u32, &["neg", "pos"], |_| vec![0.5, 0.5]);
    assert!(err(vec![classes], &[("models", text("c"))]).contains("no class `up`"));
    assert!(err(vec![fixed("a", 1, 0.5)], &[("models", text("a")), ("voting", text("weighted"))]).contains("one weight per model"));
    assert!(err(vec![fixed("a", 1, 0.5)], &[("models", text("a")), ("voting", text("loud"))]).contains("soft, weighted or hard"));
}

#[test]
fn a_hot_swap_keeps_the_windows_and_targets() {
    let mut h = harness(vec![fixed("a", 1, 0.6)], &[("models", text("a"))]).unwrap();
    run(&mut h, WINDOW as i64);
    let rows_before = h.host().predicted_rows;
    let mut swapped = h.swap::<MlEnsemble>(&[("models", text("a"))]).unwrap();
    // Rows at once (no second warm-up) and no repeated target.
    assert!(swapped.bars(&day(WINDOW as i64)).is_empty());
    assert_eq!(swapped.host().predicted_rows, rows_before + 2);
    assert_eq!(swapped.plugin().votes, 4);
}
