//! The open-orders policy on quarantine: cancel (the default) or keep.

use stratbox_engine::config::{OrderPolicy, PluginSpec};
use stratbox_engine::RunOptions;

use crate::support::{Scenario, hostile};

fn working_orders_after_fault(policy: OrderPolicy) -> (usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let spec = PluginSpec { on_fault: policy, ..hostile("order-then-panic") };
    let (mut host, _tx) = Scenario::new(vec![spec]).host(dir.path());
    let summary = host.run(&RunOptions::default());
    let h = summary.plugins.iter().find(|p| p.name == "hostile").unwrap();
    assert!(h.reason.as_deref().unwrap().contains("second bar"), "{h:?}");
    (host.world().ledger().open_orders("hostile").len(), host.order_path.broker_stats().cancels)
}

#[test]
fn cancel_removes_the_working_order() {
    assert_eq!(working_orders_after_fault(OrderPolicy::Cancel), (0, 1));
}

#[test]
fn keep_leaves_it_working() {
    assert_eq!(working_orders_after_fault(OrderPolicy::Keep), (1, 0));
}
