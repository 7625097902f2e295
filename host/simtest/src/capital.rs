//! The Capital.com world of the simulation: the real [`CapitalBroker`]
//! worker and [`RestClient`] against the Capital.com mock's own handlers,
//! in process, on one current-thread tokio runtime whose clock is paused.
//!
//! Nothing here sleeps on the wall clock and no thread or socket is
//! involved: the worker, the client's rate limiters and backoff, the mock's
//! sessions, rate limits and activity lag all read the runtime's clock,
//! which moves only when the simulation drives it. So a seed gives one
//! interleaving of requests, and one trace, in any process.
//!
//! A crash at a request is a gate in the transport: after `n` more requests
//! the next one hangs, before the mock sees it or after the mock carried it
//! out, and the host is dropped there (its worker task aborted with it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratbox_capital::transport::{HttpRequest, Sending, Transport};
use stratbox_capital::{ApiCode, CapitalCredentials, RestClient, RestConfig};
use stratbox_capital_mock::{DealingSnapshot, InProcess, MockConfig, MockServer, ScriptedFault};
use stratbox_trading::{CapitalBroker, CapitalBrokerConfig, SharedWorld};

use crate::op::BrokerFault;

/// The client's timeout: a reply held longer is lost.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The broker's timings in the simulation: as in production, polls a little
/// slower (each poll is work for the simulated second it stands for), and a
/// grace for orders in doubt of two minutes: the simulated activity feed
/// lags up to 90 s (production's 30 s default assumes a lag of seconds).
pub fn broker_config() -> CapitalBrokerConfig {
    CapitalBrokerConfig { poll_ms: 2_000, positions_every_ms: 30_000, account_every_ms: 60_000, reconcile_timeout_secs: 600, unknown_grace_secs: 120, ..CapitalBrokerConfig::default() }
}

/// Where the next request goes.
#[derive(Debug, Default)]
struct GateState {
    /// Requests let through before the crash, and which side of the next one it hits.
    armed: Option<(u8, bool)>,
    /// The crash point was reached: nothing more reaches the broker.
    tripped: bool,
}

/// A crash point in the transport.
#[derive(Debug, Default)]
pub struct Gate(Mutex<GateState>);

enum Pass {
    Through,
    HangBefore,
    HangAfter,
}

impl Gate {
    pub fn arm(&self, requests: u8, after_handling: bool) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !g.tripped {
            g.armed = Some((requests, after_handling));
        }
    }

    /// Whether the crash point is after the broker carried the request out.
    pub fn after_handling(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).armed.is_some_and(|(_, after)| after)
    }

    pub fn tripped(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).tripped
    }

    fn pass(&self) -> Pass {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.tripped {
            return Pass::HangBefore;
        }
        match g.armed {
            Some((0, after)) => {
                g.tripped = true;
                if after { Pass::HangAfter } else { Pass::HangBefore }
            }
            Some((n, after)) => {
                g.armed = Some((n - 1, after));
                Pass::Through
            }
            None => Pass::Through,
        }
    }
}

/// The mock's in-process transport behind a [`Gate`].
struct Gated {
    inner: InProcess,
    gate: Arc<Gate>,
}

impl Transport for Gated {
    fn send(&self, request: HttpRequest) -> Sending<'_> {
        let pass = self.gate.pass();
        Box::pin(async move {
            match pass {
                Pass::Through => self.inner.send(request).await,
                Pass::HangBefore => std::future::pending().await,
                Pass::HangAfter => {
                    let _ = self.inner.send(request).await;
                    std::future::pending().await
                }
            }
        })
    }
}

/// The runtime, the mock, and the clock they share.
pub struct CapitalWorld {
    rt: Arc<tokio::runtime::Runtime>,
    pub mock: MockServer,
    t0: tokio::time::Instant,
    start_ms: i64,
    seed: u64,
    restarts: u64,
    /// The longest activity lag set so far: an activity made under it may
    /// still be unseen after a shorter one is set.
    pub lag_ms: u64,
}

impl CapitalWorld {
    /// A mock account (netting or hedging) with `epics`, at market time `start_ms`.
    pub fn new(seed: u64, hedging: bool, epics: Vec<String>, start_ms: i64) -> Self {
        let rt = Arc::new(tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("a current-thread runtime"));
        let config = MockConfig { epics, start_ms: Some(start_ms), ..MockConfig::default() };
        // Made on the runtime, so that every instant the mock keeps is of its paused clock.
        let (mock, t0) = rt.block_on(async move { (MockServer::in_process(config, seed).expect("the in-process mock starts"), tokio::time::Instant::now()) });
        mock.set_hedging(hedging);
        Self { rt, mock, t0, start_ms, seed, restarts: 0, lag_ms: 0 }
    }

    /// Market time now, ns (the runtime's clock since the start).
    pub fn now_ns(&self) -> i64 {
        let _in = self.rt.enter();
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.t0);
        (self.start_ms * 1_000_000).saturating_add(elapsed.as_nanos() as i64)
    }

    /// Runs the worker, the client and the mock for `d` of the runtime's clock.
    pub fn drive(&self, d: Duration) {
        self.rt.block_on(async move { tokio::time::sleep(d).await });
    }

    /// A quote of instrument `epic` at the broker, now.
    pub fn publish(&self, epic: usize, bid: f64, ask: f64) {
        let _in = self.rt.enter();
        self.mock.publish_quote(epic, bid, ask);
    }

    pub fn dealing(&self) -> DealingSnapshot {
        self.mock.dealing()
    }

    /// How long ago the account last had an activity (a deal, an execution, an expiry).
    pub fn since_last_activity(&self) -> Option<Duration> {
        let _in = self.rt.enter();
        self.mock.since_last_activity()
    }

    /// Starts a host's broker: a new client (a new login) behind a new gate.
    pub fn connect(&mut self, world: Arc<SharedWorld>, epics: Vec<String>) -> (CapitalBroker, Arc<Gate>) {
        self.restarts += 1;
        let gate = Arc::new(Gate::default());
        let transport = Gated { inner: self.mock.transport(TIMEOUT), gate: gate.clone() };
        let account = stratbox_capital_mock::MockAccount::default();
        let credentials = CapitalCredentials { api_key: account.api_key, identifier: account.identifier, password: account.password };
        let config = RestConfig { base_url: "http://127.0.0.1".into(), encrypt_password: false, timeout_ms: TIMEOUT.as_millis() as u64, ..RestConfig::default() };
        let jitter = self.seed ^ self.restarts.rotate_left(32);
        // Made on the runtime: the client's rate limiters start from its clock, not the wall's.
        let mut broker = self
            .rt
            .block_on(async move {
                let rest = Arc::new(RestClient::in_process(config, credentials, Box::new(transport), jitter));
                CapitalBroker::connect(rest, epics, world, broker_config()).await
            })
            .expect("the broker connects to the in-process mock");
        let rt = self.rt.clone();
        broker.drive_with(Box::new(move || {
            let step = Duration::from_millis(100);
            rt.block_on(async move { tokio::time::sleep(step).await });
            step
        }));
        (broker, gate)
    }

    /// Injects `fault` at the broker.
    pub fn inject(&mut self, fault: &BrokerFault) {
        let script = |method: &str, path: &str, times: u32, status: u16, error_code: Option<ApiCode>, after_handling: bool| ScriptedFault {
            method: method.into(),
            path: path.into(),
            times,
            status,
            error_code,
            after_handling,
        };
        let deal_path = |working: bool| if working { "/api/v1/workingorders" } else { "/api/v1/positions" };
        match *fault {
            BrokerFault::DealThenError { working, status } => self.mock.script(script("POST", deal_path(working), 1, status, None, true)),
            BrokerFault::Refused { working } => self.mock.script(script("POST", deal_path(working), 1, 400, Some(ApiCode::InvalidSize), false)),
            BrokerFault::ConfirmMissing { times } => self.mock.script(script("GET", "/api/v1/confirms/", u32::from(times), 404, Some(ApiCode::NotFoundDealReference), false)),
            BrokerFault::CancelMissing => self.mock.script(script("DELETE", "/api/v1/workingorders/", 1, 404, Some(ApiCode::NotFoundDealId), false)),
            BrokerFault::RateLimited { times } => self.mock.script(script("GET", "/api/v1/", u32::from(times), 429, Some(ApiCode::TooManyRequests), false)),
            BrokerFault::SessionExpired => self.mock.expire_sessions(),
            BrokerFault::ActivityLate { ms } => {
                self.lag_ms = self.lag_ms.max(ms);
                self.mock.set_activity_lag(ms);
            }
        }
    }
}
