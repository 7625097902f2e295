//! A host's order path over Capital.com (the mock on 127.0.0.1), shared by
//! the Capital.com order-path tests: the rig, a restart from its journal, and waits.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use stratbox_capital::{CapitalCredentials, RestClient, RestConfig, wire};
use stratbox_capital_mock::{Faults, MockAccount, MockConfig, MockServer};
use stratbox_contract::{Instrument, Intent, OrderIntent, Quote, StopDecision, StopLevels, TargetPosition};
use stratbox_trading::{CapitalBroker, CapitalBrokerConfig, Journal, OrderPath, OrderPathConfig, Rebuilt, RiskConfig, SharedWorld};

pub fn credentials() -> CapitalCredentials {
    let a = MockAccount::default();
    CapitalCredentials { api_key: a.api_key.clone(), identifier: a.identifier.clone(), password: a.password.clone() }
}

/// A host's order path over Capital.com (the mock), with its journal in a temporary folder.
pub struct Rig {
    pub rt: tokio::runtime::Runtime,
    pub mock: MockServer,
    pub rest: Arc<RestClient>,
    pub world: Arc<SharedWorld>,
    pub path: OrderPath,
    pub plugin: Arc<str>,
    pub broker: CapitalBrokerConfig,
    pub risk: RiskConfig,
    pub dir: tempfile::TempDir,
}

/// The account: netting, or hedging (opposite positions side by side).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Account {
    Netting,
    Hedging,
}

pub fn rig(faults: Faults, broker: CapitalBrokerConfig) -> Rig {
    rig_with(faults, broker, Account::Netting, RiskConfig { duplicate_window_ms: 0, ..RiskConfig::default() })
}

pub fn rig_with(faults: Faults, broker: CapitalBrokerConfig, account: Account, risk: RiskConfig) -> Rig {
    rig_on(MockConfig { faults, ..mock_config() }, broker, account, risk)
}

/// The mock's market: AAPL and GOLD, in real time, from a day ago.
pub fn mock_config() -> MockConfig {
    MockConfig { epics: vec!["AAPL".into(), "GOLD".into()], start_ms: Some(stratbox_contract::util::unix_ms() as i64 - 86_400_000), ..MockConfig::default() }
}

pub fn rig_on(config: MockConfig, broker: CapitalBrokerConfig, account: Account, risk: RiskConfig) -> Rig {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mock = rt.block_on(MockServer::start(config, "127.0.0.1:0")).unwrap();
    mock.set_hedging(account == Account::Hedging);
    // A short timeout: a reply held back by the mock is lost to the client.
    let rest_config = RestConfig { base_url: mock.base_url(), backoff_ms: 20, backoff_max_ms: 200, timeout_ms: 1_500, ..RestConfig::default() };
    let rest = Arc::new(RestClient::new(rest_config, credentials()).unwrap());
    rt.block_on(rest.login()).unwrap();
    // Deals fill at published prices: wait for the first ones.
    wait_for("the mock's first quotes", Duration::from_secs(10), || mock.ground_truth().quotes_published >= 2);
    let world = Arc::new(SharedWorld::new(100));
    let dir = tempfile::tempdir().unwrap();
    let (path, rebuilt) = open_path(&rt, &rest, &world, &dir, &broker, &risk);
    assert!(rebuilt.is_none(), "a fresh journal");
    let mut rig = Rig { rt, mock, rest, world, path, plugin: Arc::from("trend"), broker, risk, dir };
    rig.quote();
    rig
}

fn open_path(
    rt: &tokio::runtime::Runtime,
    rest: &Arc<RestClient>,
    world: &Arc<SharedWorld>,
    dir: &tempfile::TempDir,
    broker: &CapitalBrokerConfig,
    risk: &RiskConfig,
) -> (OrderPath, Option<Rebuilt>) {
    let epics = vec!["AAPL".to_owned(), "GOLD".to_owned()];
    let capital = CapitalBroker::start(rest.clone(), rt.handle().clone(), epics, world.clone(), broker.clone()).unwrap();
    let journal = Journal::open(dir.path(), 0).unwrap();
    let instrument = |id: u32, symbol: &str| Instrument { id, symbol: symbol.into(), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() };
    let config = OrderPathConfig { risk: risk.clone(), ..OrderPathConfig::default() };
    OrderPath::open(Box::new(capital), journal, world.clone(), vec![instrument(0, "AAPL"), instrument(1, "GOLD")], vec![None, None], config).unwrap()
}

pub fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Rig {
    pub fn now(&self) -> i64 {
        self.mock.market_time_ms() * 1_000_000
    }

    /// The mock's current AAPL price into the path (risk needs a price), as a quote.
    pub fn quote(&mut self) -> wire::MarketDetails {
        let m = self.rt.block_on(self.rest.market("AAPL")).unwrap();
        self.quote_again(&m);
        m
    }

    /// `m`'s prices again, stamped now (no REST call: the client's rate limit is the worker's).
    pub fn quote_again(&mut self, m: &wire::MarketDetails) {
        let now = self.now();
        self.world.clock.set(now);
        let q = Quote { instrument: 0, time: now, bid: m.snapshot.bid, bid_size: 1.0, ask: m.snapshot.offer, ask_size: 1.0 };
        self.path.on_quote(&q, now);
        self.path.settle();
    }

    pub fn target(&mut self, quantity: f64) {
        let now = self.now();
        self.world.clock.set(now);
        let violations = self.path.submit(vec![(self.plugin.clone(), vec![Intent::Target(TargetPosition { instrument: 0, quantity })])], now);
        assert!(violations.is_empty(), "{violations:?}");
        self.path.commit();
    }

    /// The plugin's intents, checked and committed (the broker sends them).
    pub fn submit(&mut self, intents: Vec<Intent>) {
        let now = self.now();
        self.world.clock.set(now);
        let violations = self.path.submit(vec![(self.plugin.clone(), intents)], now);
        assert!(violations.is_empty(), "{violations:?}");
        self.path.commit();
    }

    pub fn order(&mut self, order: OrderIntent) {
        self.submit(vec![Intent::Order(order)]);
    }

    /// Polls the broker (as the engine does) until `done` or the deadline.
    pub fn run_until(&mut self, what: &str, within: Duration, mut done: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.world.clock.set(self.now());
            self.path.poll_broker();
            self.path.settle();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The host stops (its journal as committed) and starts again as the
    /// engine does: replay, the broker asked, its replies drained, the
    /// positions compared. The old host's broker worker ends with it.
    pub fn restart(self) -> Self {
        self.restart_after(|_| {})
    }

    /// A restart with `downtime` done to the broker while the host is down.
    pub fn restart_after(self, downtime: impl FnOnce(&MockServer)) -> Self {
        let Rig { rt, mock, rest, path, plugin, broker, risk, dir, .. } = self;
        drop(path);
        downtime(&mock);
        let world = Arc::new(SharedWorld::new(100));
        let (path, rebuilt) = open_path(&rt, &rest, &world, &dir, &broker, &risk);
        let mut rig = Rig { rt, mock, rest, world, path, plugin, broker, risk, dir };
        let now = rig.now();
        rig.world.clock.set(now);
        let rebuilt = rebuilt.unwrap_or_default();
        let outcome = rig.path.begin_reconcile(&rebuilt);
        rig.path.poll_broker();
        rig.path.settle();
        rig.path.finish_reconcile(rebuilt, outcome);
        rig.quote();
        rig
    }

    /// A stop policy sets `levels` for the plugin's position.
    pub fn protect(&mut self, levels: StopLevels) {
        let now = self.now();
        assert!(self.path.apply_stop_decisions(vec![(Arc::from("stops"), self.plugin.clone(), StopDecision::SetLevels(levels))], now).is_empty());
    }

    pub fn held(&self) -> f64 {
        self.world.ledger().quantity(&self.plugin, 0)
    }

    pub fn journal(&mut self) -> Vec<stratbox_trading::Entry> {
        self.path.journal_page(0, 100_000).unwrap()
    }
}

