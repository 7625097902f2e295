//! The Capital.com broker against the mock on 127.0.0.1: the dealing
//! endpoints (confirms, netting and hedging, working orders, amend and
//! close, typed errors), and the host killed with `kill -9` at seeded random
//! points while it trades against a mock that also answers deals with 502s,
//! loses replies and lags its activity, 30 times over: after each restart it
//! reconciles equal, and in the end no order reached the broker twice, every
//! deal is a journaled order's, no fill was lost and the positions are the
//! broker's. Also: a first start on an account that holds positions.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratbox_trading::Ledger;
use stratbox_capital_mock::{MockConfig, MockServer};
use stratbox_capital::{ApiCode, RestClient, RestConfig, wire};
use stratbox_capital::CapitalCredentials;
use stratbox_trading::{Journal, JournalEvent, OrderTracker, rebuild};

const PASSPHRASE: &str = "kill -9 is not a shutdown";

fn credentials() -> CapitalCredentials {
    let a = stratbox_capital_mock::MockAccount::default();
    CapitalCredentials { api_key: a.api_key.clone(), identifier: a.identifier.clone(), password: a.password.clone() }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn mock_config(speed: f64) -> MockConfig {
    MockConfig {
        epics: vec!["AAPL".into(), "GOLD".into()],
        speed,
        start_ms: Some(chrono::Utc::now().timestamp_millis() - 86_400_000),
        ..MockConfig::default()
    }
}

fn deal(epic: &str, buy: bool, size: f64) -> wire::DealRequest {
    wire::DealRequest { epic: epic.into(), direction: if buy { "BUY" } else { "SELL" }.into(), size, ..Default::default() }
}

#[test]
fn dealing_endpoints_confirms_netting_hedging_working_orders_and_typed_errors() {
    let rt = runtime();
    rt.block_on(async {
        let mock = MockServer::start(mock_config(1.0), "127.0.0.1:0").await.unwrap();
        let rest = RestClient::new(RestConfig { base_url: mock.base_url(), backoff_ms: 20, backoff_max_ms: 200, ..RestConfig::default() }, credentials()).unwrap();
        rest.login().await.unwrap();
        // Wait for the first quotes: deals fill at the published price.
        let deadline = Instant::now() + Duration::from_secs(10);
        while mock.ground_truth().quotes_published < 2 {
            assert!(Instant::now() < deadline, "no quotes from the mock");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!rest.preferences().await.unwrap().hedging_mode, "netting by default, as a new account");

        // A market deal: a reference, then the confirm with the fill.
        let r = rest.open_position(&deal("AAPL", true, 3.0)).await.unwrap();
        assert!(r.starts_with("o_"), "{r}");
        let c = rest.confirm(&r).await.unwrap();
        assert!(c.accepted() && c.status == "OPEN" && c.size == 3.0 && c.level > 0.0, "{c:?}");
        assert_eq!(c.affected_deals[0].status, "OPENED");
        let position_id = c.affected_deals[0].deal_id.clone();

        // Netting: an opposite deal reduces the position.
        let c = rest.confirm(&rest.open_position(&deal("AAPL", false, 1.0)).await.unwrap()).await.unwrap();
        assert_eq!((c.status.as_str(), c.affected_deals[0].status.as_str()), ("PARTIALLY_CLOSED", "PARTIALLY_CLOSED"));
        let positions = rest.positions().await.unwrap().positions;
        assert_eq!(positions.len(), 1);
        assert_eq!((positions[0].position.size, positions[0].position.deal_reference.clone()), (2.0, format!("p_{position_id}")));
        assert_eq!(mock.dealing().net["AAPL"], 2.0);

        // Amend: a stop above the price of a long is refused with its typed, valued code; a sensible one is kept.
        let bid = positions[0].market.bid;
        let err = rest.amend_position(&position_id, &wire::AmendRequest { stop_level: Some(bid * 2.0), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err.code(), Some(ApiCode::StopLossMax(Some(_)))), "{err}");
        let r = rest.amend_position(&position_id, &wire::AmendRequest { stop_level: Some(bid * 0.5), ..Default::default() }).await.unwrap();
        assert_eq!(rest.confirm(&r).await.unwrap().status, "AMENDED");
        assert_eq!(rest.positions().await.unwrap().positions[0].position.stop_level, Some(bid * 0.5));

        // Close: the whole position, under its p_ reference.
        let r = rest.close_position(&position_id).await.unwrap();
        assert_eq!(r, format!("p_{position_id}"));
        let c = rest.confirm(&r).await.unwrap();
        assert_eq!((c.status.as_str(), c.size, c.direction.as_str()), ("CLOSED", 2.0, "SELL"));
        assert!(rest.positions().await.unwrap().positions.is_empty());

        // Hedging: an opposite deal opens a second position.
        mock.set_hedging(true);
        rest.confirm(&rest.open_position(&deal("GOLD", true, 1.0)).await.unwrap()).await.unwrap();
        rest.confirm(&rest.open_position(&deal("GOLD", false, 1.0)).await.unwrap()).await.unwrap();
        let positions = rest.positions().await.unwrap().positions;
        assert_eq!(positions.len(), 2, "both sides stay open when hedging");
        assert_eq!(mock.dealing().net.get("GOLD").copied().unwrap_or(0.0), 0.0);
        mock.set_hedging(false);

        // Working orders: create, amend, list, delete; one that crosses executes on a quote.
        let ask = positions[0].market.offer;
        let mut far = deal("AAPL", true, 1.0);
        (far.level, far.order_type) = (Some((ask * 0.5 * 100.0).round() / 100.0), Some("LIMIT".into()));
        let c = rest.confirm(&rest.create_working_order(&far).await.unwrap()).await.unwrap();
        let order_id = c.deal_id.clone();
        let r = rest.amend_working_order(&order_id, &wire::AmendRequest { level: Some((ask * 0.6 * 100.0).round() / 100.0), ..Default::default() }).await.unwrap();
        assert_eq!(rest.confirm(&r).await.unwrap().status, "AMENDED");
        let listed = rest.working_orders().await.unwrap().working_orders;
        assert_eq!((listed.len(), listed[0].working_order_data.order_level), (1, (ask * 0.6 * 100.0).round() / 100.0));
        assert_eq!(listed[0].working_order_data.time_in_force, "GOOD_TILL_CANCELLED");
        rest.delete_working_order(&order_id).await.unwrap();
        let err = rest.delete_working_order(&order_id).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::NotFoundDealId), "{err}");
        let mut crossing = deal("AAPL", true, 2.0);
        (crossing.level, crossing.order_type) = (Some((ask * 1.5 * 100.0).round() / 100.0), Some("LIMIT".into()));
        let wo = rest.confirm(&rest.create_working_order(&crossing).await.unwrap()).await.unwrap().deal_id;
        let deadline = Instant::now() + Duration::from_secs(10);
        let executed = loop {
            let a = rest.activity_since(mock.market_time_ms() - 60_000).await.unwrap();
            if let Some(a) = a.into_iter().find(|a| a.deal_id == wo && a.status == "EXECUTED") {
                break a;
            }
            assert!(Instant::now() < deadline, "the crossing limit order never executed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(executed.details.as_ref().unwrap().size, 2.0);
        assert!(rest.working_orders().await.unwrap().working_orders.is_empty());
        assert_eq!(mock.dealing().net["AAPL"], 2.0);

        // Typed errors.
        let err = rest.open_position(&deal("NOPE", true, 1.0)).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::NotFoundEpic), "{err}");
        let err = rest.open_position(&deal("AAPL", true, 0.0)).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::InvalidSize), "{err}");
        let err = rest.open_position(&deal("AAPL", true, 1e6)).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::InvalidSizeMax), "{err}");
        let err = rest.confirm("o_00000000-0000-4000-a000-000000000000").await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::NotFoundDealReference), "{err}");
        let err = rest.close_position("006011e7-0001-54c4-0000-000000000000").await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::NotFoundDealId), "{err}");
        let mut past = deal("AAPL", true, 1.0);
        (past.level, past.order_type, past.good_till_date) = (Some(1.0), Some("LIMIT".into()), Some(wire::format_query_time(mock.market_time_ms() - 60_000)));
        let err = rest.create_working_order(&past).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::GoodTillDateNotInFuture), "{err}");
        // Our client spaces opening calls 100 ms apart: the mock's 1-per-100-ms rule never fired.
        assert!(mock.dealing().deals.iter().all(|d| d.accepted));
    });
}

/// `stratbox` with the passphrase on stdin and logs to a file.
fn spawn_host(data: &std::path::Path, config: &std::path::Path, url: &str, log: &std::path::Path, extra: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .arg("--data-dir")
        .arg(data)
        .args(["run", "--config", config.to_str().unwrap(), "--feed", "capital", "--epics", "AAPL,GOLD", "--url", url, "--orders", "capital"])
        .args(extra)
        .env("STRATBOX_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("stratbox runs");
    child.stdin.take().unwrap().write_all(format!("{PASSPHRASE}\n").as_bytes()).unwrap();
    child
}

fn write_config(path: &std::path::Path, data: &std::path::Path, plugin: Option<&std::path::Path>) {
    let mut text = format!(
        "data_dir = {data:?}\nstatus_secs = 0\n\n[control]\nenabled = false\n\n\
         [capital_broker]\npoll_ms = 500\nunknown_grace_secs = 6\npositions_every_ms = 2000\n\n\
         [risk]\norders_per_sec_per_plugin = 20\norders_per_sec = 20\nduplicate_window_ms = 0\n"
    );
    if let Some(p) = plugin {
        text += &format!("\n[[plugin]]\npath = {p:?}\nname = \"churn\"\nparams = {{ mode = \"churn\" }}\n");
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn kill_dash_nine_in_a_loop_loses_no_fill_and_duplicates_no_order() {
    let rt = runtime();
    // Quotes at 1.5 per epic per wall second, an intent each: inside the rate limits.
    // Every 7th deal answers 502 after it is made, every 11th reply comes after
    // the client's 10 s timeout, and the activity shows deals 1.5 s late.
    let faults = stratbox_capital_mock::Faults {
        executed_then_502_every: Some(7),
        lost_reply_every: Some(11),
        lost_reply_ms: 11_000,
        activity_lag_ms: Some(1_500),
        ..Default::default()
    };
    let mock = rt.block_on(MockServer::start(MockConfig { faults, ..mock_config(1.5) }, "127.0.0.1:0")).unwrap();
    let url = mock.base_url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("host.log");
    let account = stratbox_capital_mock::MockAccount::default();
    let mut set = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .arg("--data-dir")
        .arg(&data)
        .args(["credentials", "set", "capital"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    set.stdin.take().unwrap().write_all(format!("{PASSPHRASE}\n{}\n{}\n{}\n", account.api_key, account.identifier, account.password).as_bytes()).unwrap();
    assert!(set.wait().unwrap().success());
    let plugin = support::component("tests/plugins/hostile");
    let trading = dir.path().join("trading.toml");
    write_config(&trading, &data, Some(&plugin));

    // Kill at seeded random points: while logging in, reconciling, sending, confirming.
    let seed: u64 = std::env::var("STRATBOX_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_0011);
    eprintln!("kill times from seed {seed} (STRATBOX_KILL_SEED to replay)");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let kills = 30;
    let started = Instant::now();
    for k in 0..kills {
        let mut child = spawn_host(&data, &trading, &url, &log, &[]);
        let wait = Duration::from_millis(rand::Rng::gen_range(&mut rng, 1_500..5_000));
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("kill {} of {kills} after {wait:?}: {} deals at the broker so far", k + 1, mock.dealing().deals.len());
        assert!(started.elapsed() < Duration::from_secs(400), "the loop is bounded in time");
    }
    // Let what rests stay resting, then restart without the plugin: the last reconciliation.
    mock.freeze_dealing();
    let quiet = dir.path().join("quiet.toml");
    write_config(&quiet, &data, None);
    let mut child = spawn_host(&data, &quiet, &url, &log, &["--duration", "4"]);
    assert!(child.wait().unwrap().success(), "the last run ends cleanly:\n{}", std::fs::read_to_string(&log).unwrap());

    let broker = mock.dealing();
    let journal = Journal::open(&data.join("journal"), 100).unwrap();
    let mut ledger = Ledger::default();
    let mut tracker = OrderTracker::default();
    let rebuilt = rebuild(&journal, &["AAPL".to_owned(), "GOLD".to_owned()], &mut ledger, &mut tracker).unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(broker.deals.len() >= 10, "too little trading to test anything: {} deals\n{log_text}", broker.deals.len());

    // Every restart reconciled; none found a difference.
    let mut reconciled = 0;
    // Per client id: the start it was sent in, and the start its answer (reference or refusal) came in.
    let mut sent_in: HashMap<String, usize> = HashMap::new();
    let mut answered_in: HashMap<String, usize> = HashMap::new();
    let mut orders_journaled: std::collections::HashSet<String> = Default::default();
    let mut references: HashMap<String, Vec<String>> = HashMap::new();
    let mut filled: HashMap<String, f64> = HashMap::new();
    let mut symbols = Vec::new();
    let mut equity_points = 0;
    for entry in journal.entries() {
        match entry.unwrap().event {
            JournalEvent::TradingState { reason, .. } => assert!(!reason.starts_with("reconciliation failed"), "{reason}"),
            JournalEvent::Order { client_id, .. } => {
                orders_journaled.insert(client_id);
            }
            JournalEvent::Sent { client_id, .. } => {
                assert!(orders_journaled.contains(&client_id), "{client_id} was sent before its order was journaled");
                sent_in.insert(client_id, reconciled);
            }
            JournalEvent::BrokerRejected { client_id, .. } => {
                answered_in.entry(client_id).or_insert(reconciled);
            }
            JournalEvent::BrokerRef { client_id, deal_reference: Some(r), .. } => {
                answered_in.entry(client_id.clone()).or_insert(reconciled);
                references.entry(r).or_default().push(client_id);
            }
            JournalEvent::Fill { client_id, quantity, .. } => *filled.entry(client_id).or_default() += quantity,
            JournalEvent::Equity { equity, .. } => {
                assert!(equity.is_finite());
                equity_points += 1;
            }
            JournalEvent::Instruments { symbols: s } => {
                reconciled += 1;
                symbols = s;
            }
            _ => {}
        }
    }
    assert!(equity_points >= 2, "the equity curve is journaled: {equity_points} points");
    // Runs killed while logging in never got as far as the journal.
    assert!(reconciled >= 10 && reconciled <= kills + 1, "{reconciled} starts journaled");
    assert!(log_text.contains("reconciled"), "the restarts reconciled:\n{log_text}");

    // The kills landed mid-send: some orders were sent in one run and answered in a later one.
    let across = sent_in.iter().filter(|(c, run)| answered_in.get(*c).is_some_and(|a| a > run)).count();
    assert!(across >= 1, "no kill landed between a send and its answer ({} orders sent)", sent_in.len());
    // No duplicate: each deal at the broker is exactly one journaled order, and the reverse.
    for (r, clients) in &references {
        assert_eq!(clients.len(), 1, "reference {r} claimed by {clients:?}");
    }
    // At most one opening deal per client order id (netting: one deal per order).
    let mut deals_of: HashMap<&str, usize> = HashMap::new();
    for clients in references.values() {
        *deals_of.entry(clients[0].as_str()).or_default() += 1;
    }
    assert!(deals_of.values().all(|n| *n == 1), "a client id with two deals: {:?}", deals_of.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>());
    // The faults were met: deals answered 502 and replies lost, each resolved from the activity.
    let stats = mock.stats();
    let (gateway, lost) = (stats.executed_then_502.load(std::sync::atomic::Ordering::Relaxed), stats.lost_replies.load(std::sync::atomic::Ordering::Relaxed));
    assert!(gateway >= 2 && lost >= 1, "faults injected: {gateway} 502s after a deal, {lost} lost replies");
    let at_broker: BTreeMap<&str, &stratbox_capital_mock::DealRecord> = broker.deals.iter().map(|d| (d.deal_reference.as_str(), d)).collect();
    assert_eq!(at_broker.len(), broker.deals.len(), "the broker never saw one reference twice");
    for d in &broker.deals {
        let clients = references.get(&d.deal_reference).unwrap_or_else(|| panic!("deal {d:?} at the broker is not in the journal"));
        // No lost fill: what the broker dealt is what the journal filled.
        let journaled = filled.get(&clients[0]).copied().unwrap_or(0.0);
        assert!((journaled - d.filled).abs() < 1e-9, "deal {d:?}: journal filled {journaled}");
    }
    for r in references.keys() {
        assert!(at_broker.contains_key(r.as_str()), "journal reference {r} unknown to the broker");
    }
    // Positions equal the broker's.
    let net = ledger.net_positions();
    for (i, symbol) in symbols.iter().enumerate() {
        let journal_net = net.get(&(i as u32)).copied().unwrap_or(0.0);
        let broker_net = broker.net.get(symbol).copied().unwrap_or(0.0);
        assert!((journal_net - broker_net).abs() < 1e-9, "{symbol}: journal {journal_net}, broker {broker_net}");
    }
    assert_eq!(tracker.stats().illegal_transitions, 0, "every order's journaled life is legal: {:?}", tracker.stats());
    let still_working = rebuilt.working.iter().filter(|o| o.order_type != stratbox_contract::OrderType::Market).count();
    assert_eq!(still_working, broker.working_orders, "working orders: journal vs broker");
    eprintln!(
        "lost replies found at the broker: {}; requests that never reached it: {}",
        log_text.matches("reply was lost was found").count(),
        log_text.matches("never reached the broker").count()
    );
    eprintln!(
        "{kills} kills ({reconciled} journaled starts, {across} orders answered after a restart): {} deals at the broker ({} fills), {} journaled references, {gateway} 502s after a deal, {lost} lost replies, positions {:?}",
        broker.deals.len(),
        broker.fills,
        references.len(),
        broker.net
    );
}

/// A `Host` trading Capital.com (the mock) through its feed's session, in `dir`.
fn capital_host(mock: &MockServer, dir: &std::path::Path, plugins: Vec<stratbox_engine::config::PluginSpec>, broker: stratbox_trading::CapitalBrokerConfig) -> stratbox_engine::Host {
    use stratbox_capital::{CapitalFeed, CapitalFeedConfig};
    use stratbox_engine::config::{FeedConfig, HostConfig};
    use stratbox_engine::{Host, HostError};
    use stratbox_market::Feed;
    use stratbox_trading::{Broker, CapitalBroker};
    let feed_config = CapitalFeedConfig {
        epics: vec!["AAPL".into(), "GOLD".into()],
        // One login per second per key: a restart right after the last one backs off on 429.
        rest: RestConfig { base_url: mock.base_url(), backoff_ms: 250, backoff_max_ms: 1_000, ..RestConfig::default() },
        ..CapitalFeedConfig::default()
    };
    let feed = CapitalFeed::connect(&feed_config, credentials(), None).unwrap();
    let (rest, handle) = feed.session();
    let epics: Vec<String> = feed.instruments().iter().map(|i| i.symbol.clone()).collect();
    let mut config = HostConfig { data_dir: dir.to_owned(), status_secs: 0, plugins, ..HostConfig::default() };
    config.feed = FeedConfig::Capital(Box::new(feed_config));
    config.control.enabled = false;
    config.risk.duplicate_window_ms = 0;
    let make = move |world| CapitalBroker::start(rest, handle, epics, world, broker).map(|b| Box::new(b) as Box<dyn Broker>).map_err(|e| HostError::Broker(e.to_string()));
    let (_tx, rx) = std::sync::mpsc::channel();
    Host::with_broker(config, Box::new(feed), make, rx).unwrap()
}

/// In hedging mode an order that reduces closes whole opposite positions
/// first (and opens only the rest), so the account does not pile up hedged
/// pairs; the host's positions end equal to the account's.
#[test]
fn hedging_mode_closes_opposite_positions_and_ends_equal_to_the_account() {
    use stratbox_engine::RunOptions;
    use stratbox_engine::config::{ParamInput, PluginSpec};
    use stratbox_trading::CapitalBrokerConfig;

    let rt = runtime();
    let mock = rt.block_on(MockServer::start(mock_config(1.5), "127.0.0.1:0")).unwrap();
    mock.set_hedging(true);
    let dir = tempfile::tempdir().unwrap();
    // A bounded churn: 24 intents, then quiet.
    let plugin = PluginSpec::new(support::component("tests/plugins/hostile"))
        .named("churn")
        .param("mode", ParamInput::Text("churn".into()))
        .param("orders", ParamInput::Integer(24));
    let broker_config = CapitalBrokerConfig { poll_ms: 300, account_every_ms: 300, ..CapitalBrokerConfig::default() };
    let mut host = capital_host(&mock, dir.path(), vec![plugin], broker_config);
    // 24 intents at 3 quotes/s take ~8 s; then resting orders may still trigger until frozen.
    host.run(&RunOptions { duration: Some(Duration::from_secs(11)), ..RunOptions::default() });
    mock.freeze_dealing();
    host.run(&RunOptions { duration: Some(Duration::from_secs(2)), ..RunOptions::default() });

    let account = mock.dealing();
    assert!(account.hedging);
    let closes = account.deals.iter().filter(|d| d.kind == "CLOSE").count();
    assert!(closes > 0, "reducing orders closed hedged positions: {:?}", account.deals);
    let net = host.world().ledger().net_positions();
    for (i, symbol) in ["AAPL", "GOLD"].iter().enumerate() {
        let (ours, theirs) = (net.get(&(i as u32)).copied().unwrap_or(0.0), account.net.get(*symbol).copied().unwrap_or(0.0));
        assert!((ours - theirs).abs() < 1e-9, "{symbol}: host {ours}, account {theirs}");
    }
    // Closing whole positions first keeps at most one side open per epic, but for
    // a remainder smaller than every opposite position (which must open a hedge).
    eprintln!("hedging: {} deals ({closes} closes), {} positions open, net {:?}", account.deals.len(), account.positions, account.net);
    assert!(host.order_path.tracker_stats().illegal_transitions == 0, "{:?}", host.order_path.tracker_stats());

    // The host reads the balance and its equity agrees with the account's
    // (what differs is the broker's bid/offer marks, within the tolerance).
    let check = host.status().account.expect("trading an account, the status shows its balance");
    eprintln!("account check: {check:?}");
    assert_eq!(check.account.balance, mock.account().balance, "the latest balance");
    assert!(check.within && check.mismatches == 0, "{check:?}");
    assert!(check.broker_change != 0.0, "the trades moved the account");
    // Money the host did not trade for (a deposit) is a difference beyond costs: reported.
    let client = RestClient::new(RestConfig { base_url: mock.base_url(), ..RestConfig::default() }, credentials()).unwrap();
    let topped: serde_json::Value =
        rt.block_on(client.call(reqwest::Method::POST, "/accounts/topUp", Some(&serde_json::json!({"amount": 1000})), &[], stratbox_capital::CallKind::General)).unwrap();
    assert_eq!(topped["successful"], true);
    host.run(&RunOptions { duration: Some(Duration::from_secs(2)), ..RunOptions::default() });
    let check = host.status().account.unwrap();
    assert!(!check.within && (check.difference - 1000.0).abs() < check.tolerance, "{check:?}");
    assert_eq!(check.mismatches, 1, "reported once, not at every read");
}

/// A first start on an account that already holds a position the journal
/// does not know: the host reconciles anyway (an empty journal too), halts
/// naming it, and trades again only once the operator adopts it; the adopted
/// book is then flattened like any other, and a restart agrees with the account.
#[test]
fn a_first_start_on_a_busy_account_halts_until_the_operator_adopts_what_it_holds() {
    use stratbox_engine::RunOptions;
    use stratbox_trading::{CapitalBrokerConfig, Cause, TradingState};

    let rt = runtime();
    let mock = rt.block_on(MockServer::start(mock_config(1.0), "127.0.0.1:0")).unwrap();
    let client = RestClient::new(RestConfig { base_url: mock.base_url(), ..RestConfig::default() }, credentials()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.ground_truth().quotes_published < 2 {
        assert!(Instant::now() < deadline, "no quotes from the mock");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Bought by hand before the host ever ran.
    rt.block_on(client.confirm(&rt.block_on(client.open_position(&deal("AAPL", true, 3.0))).unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let start = |mock: &MockServer| capital_host(mock, dir.path(), Vec::new(), CapitalBrokerConfig { poll_ms: 300, ..CapitalBrokerConfig::default() });
    let mut host = start(&mock);
    let risk = host.status().risk;
    assert_eq!((risk.global.state, risk.global.cause), (TradingState::Halted, Some(Cause::Reconciliation)), "{:?}", risk.global);
    assert!(risk.global.reason.contains("AAPL: journal 0, broker 3") && risk.global.reason.contains("stratbox adopt"), "{}", risk.global.reason);
    // A plain resume does not lift it.
    host.set_trading_state(None, TradingState::Active, "resumed by the operator");
    assert_eq!(host.status().risk.global.state, TradingState::Halted);
    // Adopt needs a price: let the feed bring one.
    host.run(&RunOptions { duration: Some(Duration::from_secs(2)), ..RunOptions::default() });
    let report = host.adopt(stratbox_engine::ADOPTED).unwrap();
    assert_eq!(report.adopted.len(), 1, "{report:?}");
    assert_eq!((report.adopted[0].0.as_str(), report.adopted[0].1), ("AAPL", 3.0));
    assert_eq!(report.risk.global.state, TradingState::Active, "{:?}", report.risk.global);
    assert_eq!(host.world().ledger().quantity(stratbox_engine::ADOPTED, 0), 3.0);
    drop(host);

    // A restart agrees with the account: the adopted position is journaled.
    let mut host = start(&mock);
    let risk = host.status().risk;
    assert_eq!(risk.global.state, TradingState::Active, "{:?}", risk.causes);
    assert_eq!(host.world().ledger().quantity(stratbox_engine::ADOPTED, 0), 3.0);
    // Flatten closes the adopted book like a plugin's.
    let flat = host.flatten();
    assert_eq!(flat.closing_orders, vec![(stratbox_engine::ADOPTED.to_owned(), "AAPL".to_owned(), -3.0)]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while mock.dealing().net.contains_key("AAPL") || host.world().ledger().quantity(stratbox_engine::ADOPTED, 0) != 0.0 {
        assert!(Instant::now() < deadline, "the adopted position was not closed: {:?}", mock.dealing().net);
        host.run(&RunOptions { duration: Some(Duration::from_millis(300)), ..RunOptions::default() });
    }
}
