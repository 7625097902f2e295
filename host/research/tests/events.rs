//! The shipped events file is what its header says: the listed sudden
//! crashes plus every day the S&P 500 index closed more than 5% from the day
//! before, derived again here from the real index file.

use std::collections::BTreeSet;
use std::path::Path;

use stratbox_research::detect::load_events;

#[test]
fn the_shipped_events_are_the_index_moves_over_five_percent_and_the_listed_crashes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let events = load_events(&root.join("examples/events/us-market.toml")).unwrap();
    let sudden: Vec<&str> = events.iter().filter(|e| e.kind == "sudden").map(|e| e.name.as_str()).collect();
    assert_eq!(sudden.len(), 6, "{sudden:?}");
    let index = root.join("../shared/data/daily/sp500_index_1950_2015.csv");
    let Ok(text) = std::fs::read_to_string(&index) else {
        eprintln!("skipped the derivation: {} is absent (the real data of ../shared/data)", index.display());
        return;
    };
    let mut moves = BTreeSet::new();
    let mut prev: Option<f64> = None;
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let close: f64 = cells[4].parse().unwrap();
        if let Some(p) = prev
            && (close / p - 1.0).abs() > 0.05
        {
            moves.insert(cells[0].to_owned());
        }
        prev = Some(close);
    }
    assert_eq!(moves.len(), 41, "41 index closes moved more than 5% in 1950-2015");
    let day = |e: &stratbox_research::detect::Event| stratbox_market::format_time(e.first)[..10].to_owned();
    let listed: BTreeSet<String> = events.iter().filter(|e| e.kind == "index-move").map(day).collect();
    // A day that is also a listed crash (1987-10-19, 2008-09-29) is listed once, as the crash.
    let crash_days: BTreeSet<String> = events.iter().filter(|e| e.kind == "sudden").map(day).collect();
    let expected: BTreeSet<String> = moves.difference(&crash_days).cloned().collect();
    assert_eq!(listed, expected);
    assert!(moves.contains("1987-10-19") && moves.contains("2008-09-29"));
}
