//! A fill is stamped with the moment it happens: a market order sent at one
//! bar's close fills at the next bar's open, so its time is that bar's start
//! (when the order was made), not the bar's end, when the host heard.

use std::collections::HashMap;

use stratbox_engine::RunOptions;
use stratbox_trading::JournalEvent;

use crate::support::{Scenario, sma_cross};

#[test]
fn a_fill_at_the_open_is_stamped_with_the_bars_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, _tx) = Scenario::new(vec![sma_cross()]).host(dir.path());
    host.run(&RunOptions::default());
    let entries = host.order_path.journal_page(0, 1_000_000).unwrap();
    let ordered: HashMap<&str, i64> = entries
        .iter()
        .filter_map(|e| match &e.event {
            JournalEvent::Order { client_id, .. } => Some((client_id.as_str(), e.time)),
            _ => None,
        })
        .collect();
    let fills: Vec<(i64, i64)> = entries
        .iter()
        .filter_map(|e| match &e.event {
            JournalEvent::Fill { client_id, .. } => Some((e.time, ordered[client_id.as_str()])),
            _ => None,
        })
        .collect();
    assert!(fills.len() >= 5, "sma-cross trades in this scenario: {} fills", fills.len());
    for (filled, ordered) in fills {
        assert_eq!(filled, ordered, "filled at the open of the bar that began when the order was made");
    }
}
