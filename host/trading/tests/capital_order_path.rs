//! The order path over the Capital.com broker, against the mock on
//! 127.0.0.1 with its dealing faults: protective exits go through the path
//! (risk, client id, journal before the send); a 502 after the deal or a
//! reply lost after it leaves the order in doubt, blocks new orders of that
//! plugin and instrument, and is resolved from a lagging activity without a
//! second deal; and a position opened behind the host's back halts trading
//! while it runs, naming the instrument and both sizes.

mod common;

use std::time::Duration;

use common::{Rig, credentials, rig};
use stratbox_capital::{RestClient, RestConfig, wire};
use stratbox_capital_mock::Faults;
use stratbox_contract::StopLevels;
use stratbox_trading::{CapitalBrokerConfig, Cause, JournalEvent, RiskRule, TradingState};

#[test]
fn a_protective_exit_at_capital_is_checked_given_a_client_id_and_journaled_before_it_is_sent() {
    let mut rig = rig(Faults::default(), CapitalBrokerConfig { poll_ms: 200, ..CapitalBrokerConfig::default() });
    rig.target(5.0);
    rig.run_until("the entry's fill", Duration::from_secs(10), |r| r.held() == 5.0);
    let checked = rig.path.risk_view().stats.checked;
    // A stop above the bid of a long: the next quote reaches it.
    let m = rig.rt.block_on(rig.rest.market("AAPL")).unwrap();
    let levels = StopLevels { instrument: 0, stop_loss: Some(m.snapshot.bid * 1.5), take_profit: None };
    rig.protect(levels);
    rig.quote();
    assert_eq!(rig.path.risk_view().stats.checked, checked + 1, "the exit went through the risk engine");
    rig.path.commit();
    rig.run_until("the exit's fill", Duration::from_secs(10), |r| r.held() == 0.0);

    // The exit has its own client id and a journaled order, risk decision and send, in that order, before its fill.
    let entries = rig.journal();
    let exit_id = entries
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            JournalEvent::Fill { client_id, .. } => Some(client_id.clone()),
            _ => None,
        })
        .unwrap();
    let of_exit: Vec<&str> = entries
        .iter()
        .filter_map(|e| match &e.event {
            JournalEvent::Order { client_id, .. } if *client_id == exit_id => Some("order"),
            JournalEvent::Risk { client_id, accepted: true, .. } if *client_id == exit_id => Some("risk"),
            JournalEvent::Sent { client_id, .. } if *client_id == exit_id => Some("sent"),
            JournalEvent::BrokerRef { client_id, deal_reference: Some(_), .. } if *client_id == exit_id => Some("reference"),
            JournalEvent::Fill { client_id, .. } if *client_id == exit_id => Some("fill"),
            _ => None,
        })
        .collect();
    assert_eq!(of_exit, ["order", "risk", "sent", "reference", "fill"], "the exit {exit_id}'s journaled life");
    assert!(exit_id.starts_with("trend-"), "{exit_id}");
    // Every deal at the broker is one journaled order's.
    let deals = rig.mock.dealing().deals;
    assert_eq!(deals.len(), 2, "{deals:?}");
    let references: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.event {
            JournalEvent::BrokerRef { deal_reference: Some(r), .. } => Some(r.clone()),
            _ => None,
        })
        .collect();
    for d in &deals {
        assert!(references.contains(&d.deal_reference), "deal {d:?} is not journaled");
    }
    assert_eq!(rig.path.broker_stats().protective_exits, 1);
}

/// Both faults leave the order in doubt; the activity shows the deal 2 s late.
fn in_doubt_then_resolved(faults: Faults, fault: &str) {
    let faults = Faults { activity_lag_ms: Some(2_000), ..faults };
    let broker = CapitalBrokerConfig { poll_ms: 200, unknown_grace_secs: 20, ..CapitalBrokerConfig::default() };
    let mut rig = rig(faults, broker);
    rig.target(5.0);
    // The worker gets no clear answer: the order is in doubt, and stays working in the book.
    rig.run_until("the order to be in doubt", Duration::from_secs(10), |r| in_doubt(r));
    assert_eq!((rig.held(), rig.mock.dealing().deals.len()), (0.0, 1), "{fault}: dealt at the broker, not known to the host");
    assert_eq!(rig.path.tracker().open_orders("trend").len(), 1, "{fault}: still working, not refused");
    // A target strategy asking again must not double the position.
    rig.quote();
    rig.target(7.0);
    let v = rig.path.risk_view();
    assert_eq!(v.stats.rejected.get(&RiskRule::InDoubt).copied(), Some(1), "{fault}: {:?}", v.stats);
    // The lagging activity resolves it: one deal, filled in the host.
    rig.run_until("the order in doubt to be found and filled", Duration::from_secs(20), |r| r.held() == 5.0);
    assert!(!in_doubt(&rig));
    let dealing = rig.mock.dealing();
    assert_eq!((dealing.deals.len(), dealing.net.get("AAPL").copied()), (1, Some(5.0)), "{fault}: {:?}", dealing.deals);
    // Resolved, the plugin trades again (and meets the same fault again, resolved the same way).
    rig.quote();
    rig.target(7.0);
    rig.run_until("the second order", Duration::from_secs(25), |r| r.held() == 7.0);
    let dealing = rig.mock.dealing();
    assert_eq!((dealing.deals.len(), dealing.net.get("AAPL").copied()), (2, Some(7.0)), "{fault}: {:?}", dealing.deals);
    let lost = rig.journal().iter().filter(|e| matches!(&e.event, JournalEvent::BrokerRejected { .. })).count();
    assert_eq!(lost, 0, "{fault}: nothing was taken as refused");
}

fn in_doubt(r: &Rig) -> bool {
    r.path.in_doubt(&r.plugin, 0).is_some()
}

#[test]
fn a_502_after_the_deal_is_in_doubt_not_refused_and_blocks_the_instrument_until_resolved() {
    let faults = Faults { executed_then_502_every: Some(1), ..Faults::default() };
    in_doubt_then_resolved(faults, "502 after the deal");
}

#[test]
fn a_reply_lost_after_the_deal_is_in_doubt_and_resolved_from_the_lagging_activity() {
    // Held back 4 s: the client gives up after 1.5 s.
    let faults = Faults { lost_reply_every: Some(1), lost_reply_ms: 4_000, ..Faults::default() };
    in_doubt_then_resolved(faults, "reply lost after the deal");
}

#[test]
fn a_position_opened_behind_the_hosts_back_halts_trading_while_it_runs() {
    let mut rig = rig(Faults::default(), CapitalBrokerConfig { poll_ms: 200, positions_every_ms: 500, ..CapitalBrokerConfig::default() });
    rig.target(5.0);
    rig.run_until("the fill", Duration::from_secs(10), |r| r.held() == 5.0);
    // Position checks agree while nothing else trades.
    rig.run_until("two agreeing position checks", Duration::from_secs(10), |r| r.path.position_checks() >= 2);
    assert_eq!(rig.path.risk_view().global.state, TradingState::Active);
    // Someone else trades the account.
    let deal = wire::DealRequest { epic: "AAPL".into(), direction: "BUY".into(), size: 2.0, ..Default::default() };
    let other = RestClient::new(RestConfig { base_url: rig.mock.base_url(), ..RestConfig::default() }, credentials()).unwrap();
    rig.rt.block_on(other.open_position(&deal)).unwrap();
    rig.run_until("the running check to halt trading", Duration::from_secs(10), |r| r.path.risk_view().global.state == TradingState::Halted);
    let v = rig.path.risk_view();
    assert_eq!(v.global.cause, Some(Cause::Reconciliation));
    assert!(v.global.reason.contains("AAPL: host 5, broker 7"), "{}", v.global.reason);
    // Halted: the plugin's next order is refused, naming why.
    rig.quote();
    rig.target(9.0);
    assert!(rig.path.risk_view().stats.rejected.get(&RiskRule::Halted).is_some_and(|n| *n >= 1));
}
