//! A faithful local Capital.com: the REST and WebSocket subset Stratbox
//! uses, with the real paths, shapes, headers, status codes and error codes
//! (`capital-com-api.md`, the Postman collection), prices from the built-in
//! simulator or a replay of stored bars, the ground truth of every bar it
//! published, and faults on demand. Used by the tests on 127.0.0.1 and by `stratbox mock capital`.
//!
//! Behaviour kept from the real API:
//! - login with the API key header, identifier and password, plain or RSA
//!   encrypted with the key of `/session/encryptionKey` (the mock's own
//!   2048-bit key pair); `CST` and `X-SECURITY-TOKEN` in the reply headers,
//!   echoed on every authenticated response;
//! - sessions die after 10 idle minutes; 10 requests/s per session and one
//!   login per second per key, else 429 `error.too-many.requests`;
//! - `GET /prices` with the documented limits (`max` <= 1000, the window
//!   <= (max-1) x resolution, no future `to`, 404 `error.prices.not-found`);
//! - the stream: tokens in every frame, subscriptions of at most 40 epics,
//!   quote pushes on every change, OHLC pushes of bid and ask at bar close,
//!   ping replies, a stream with no client frame for 10 minutes is closed.
//!
//! Faults ([`Faults`]): drop every stream after N ms, bursts of 429s,
//! tokens expiring early, slow responses, malformed frames, closed markets.
//!
//! It is a test double and nothing else: no host crate depends on it, only the
//! tests, the benches and the `stratbox mock capital` command.

// Handlers answer `Result<Response, Response>` (an error reply is a whole
// response); its size does not matter on this path.
#![allow(clippy::result_large_err)]

mod account;
mod dealing;
mod market;
mod trading;

/// The mock's one account.
const ACCOUNT_ID: &str = "12345678901234567";

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock: real time in a normal runtime, virtual under the simulation's paused one.
use tokio::time::Instant;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use dealing::{DealRecord, DealingSnapshot};
pub use market::{MockBar, MockMarket, MockQuote, Ohlc, Publication, QuoteSource, RESOLUTIONS, ReplayedQuotes, SimulatedQuotes};

use stratbox_capital::ApiCode;
use stratbox_capital::wire::{self, AccountSummary, BidAsk, ClientFrame, EncryptionKey, PriceBar, Prices, SessionRequest, SessionResponse};
use stratbox_market::SimulatorConfig;

/// The account the mock accepts.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockAccount {
    pub api_key: String,
    pub identifier: String,
    pub password: String,
}

impl Default for MockAccount {
    fn default() -> Self {
        Self { api_key: "mock-api-key".into(), identifier: "trader@example.com".into(), password: "mock-password".into() }
    }
}

impl std::fmt::Debug for MockAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockAccount").field("identifier", &self.identifier).finish_non_exhaustive()
    }
}

/// Faults to inject. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Drop each stream this many ms (wall time) after it opened, without a close frame.
    pub drop_stream_every_ms: Option<u64>,
    /// Every `rate_limit_every_ms`, answer the next `rate_limit_burst` REST requests with 429.
    pub rate_limit_every_ms: Option<u64>,
    pub rate_limit_burst: u32,
    /// Sessions die this many ms after login, however busy.
    pub token_expiry_ms: Option<u64>,
    /// Every REST response is delayed this long.
    pub slow_ms: Option<u64>,
    /// Before every Nth push, a malformed frame.
    pub malformed_every: Option<u64>,
    /// Before every Nth quote push, a copy of it stamped a day ahead (a
    /// broken clock upstream): it must not silence the epic's later quotes.
    pub future_frame_every: Option<u64>,
    /// Epics whose market is closed: no quotes, no bars, status CLOSED.
    pub closed_epics: Vec<String>,
    /// Every Nth dealing request (`POST /positions`, `POST /workingorders`)
    /// is carried out, then answered 502 with no `errorCode`: a gateway error
    /// after the deal was made.
    pub executed_then_502_every: Option<u64>,
    /// Every Nth dealing request is carried out, then its reply is held back
    /// `lost_reply_ms` (past the client's timeout): the reply is lost.
    pub lost_reply_every: Option<u64>,
    pub lost_reply_ms: u64,
    /// Activities show in `GET /history/activity` only this many wall ms
    /// after they happened (the real activity feed lags by seconds).
    pub activity_lag_ms: Option<u64>,
}

/// A fault scripted while the mock runs ([`MockServer::script`]): the next
/// `times` requests whose method is `method` and whose path starts with
/// `path` (e.g. `GET /api/v1/confirms/`) get `status`, with `error_code` as
/// the body's `errorCode` if given. With `after_handling` the request is
/// carried out first (a deal made, then a gateway error); without it the
/// request never reaches the account.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedFault {
    pub method: String,
    pub path: String,
    pub times: u32,
    pub status: u16,
    pub error_code: Option<ApiCode>,
    pub after_handling: bool,
}

/// Prices from stored bars instead of the simulator (the clock starts at the first bar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockReplay {
    /// A market store (`stratbox data import` writes one to `<data_dir>/market`).
    pub store: std::path::PathBuf,
    pub period_secs: u32,
    pub source: stratbox_market::store::PriceSource,
    /// Full spread put around the replayed prices, basis points.
    pub spread_bps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// With a replay: symbols of the store (empty: all of them).
    pub epics: Vec<String>,
    pub simulator: SimulatorConfig,
    pub replay: Option<MockReplay>,
    /// Market seconds between two quotes of an epic.
    pub quote_secs: u32,
    /// Market seconds per wall second (1: real time).
    pub speed: f64,
    /// Market time at start, ms since the epoch (`None`: now; a replay starts at its first bar).
    pub start_ms: Option<i64>,
    pub account: MockAccount,
    pub session_idle_secs: u64,
    /// Requests per second per session before 429.
    pub requests_per_sec: usize,
    /// Hours the account's local time is ahead of UTC (`snapshotTime` vs `snapshotTimeUTC`).
    pub timezone_offset: i32,
    pub faults: Faults,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            epics: default_epics(50),
            simulator: SimulatorConfig { jump_probability: 0.0, crash_probability: 0.0, ..SimulatorConfig::default() },
            replay: None,
            quote_secs: 1,
            speed: 1.0,
            start_ms: None,
            account: MockAccount::default(),
            session_idle_secs: 600,
            requests_per_sec: 10,
            timezone_offset: 2,
            faults: Faults::default(),
        }
    }
}

/// `n` epic names: real Capital.com epics first, then `MOCKnnn`.
pub fn default_epics(n: usize) -> Vec<String> {
    const REAL: &[&str] = &[
        "AAPL", "MSFT", "AMZN", "GOOGL", "META", "TSLA", "NVDA", "NFLX", "AMD", "INTC", "US500", "US100", "US30", "DE40", "UK100", "J225",
        "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "EURGBP", "EURJPY", "GOLD", "SILVER", "OIL_CRUDE", "OIL_BRENT",
        "NATURALGAS", "COPPER", "BTCUSD", "ETHUSD", "LTCUSD", "XRPUSD", "BA", "JPM", "V", "MA", "DIS", "KO", "PEP", "MCD", "NKE", "WMT",
        "XOM", "CVX", "PFE", "MRK", "JNJ", "UNH",
    ];
    (0..n).map(|i| REAL.get(i).map_or_else(|| format!("MOCK{i:03}"), |s| (*s).to_owned())).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("mock Capital.com: cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("mock Capital.com: {0}")]
    Config(String),
    #[error("mock Capital.com replay: {0}")]
    Store(#[from] stratbox_market::store::StoreError),
}

/// Every stored bar of `epics` (all symbols if empty) in the replay's series.
fn replay_bars(replay: &MockReplay, epics: &[String]) -> Result<(Vec<String>, Vec<Vec<stratbox_market::Bar>>), MockError> {
    use stratbox_market::store::{MarketStore, Series, StoreConfig};
    let store = MarketStore::open(&replay.store, StoreConfig::default())?;
    let series = Series::Bars { period_secs: replay.period_secs, source: replay.source };
    let symbols: Vec<String> = if epics.is_empty() {
        let mut all: Vec<String> = store.stats()?.into_iter().filter(|s| s.series == series).map(|s| s.symbol).collect();
        all.sort();
        all
    } else {
        epics.to_vec()
    };
    let mut bars = Vec::with_capacity(symbols.len());
    for symbol in &symbols {
        let id = store.instrument_id_of(symbol).ok_or_else(|| MockError::Config(format!("no `{symbol}` in the store at {}", replay.store.display())))?;
        let rows = store.range(id, series, i64::MIN, i64::MAX)?;
        bars.push(rows.iter().map(|r| r.to_bar(id, replay.period_secs)).collect());
    }
    if bars.iter().all(Vec::is_empty) {
        return Err(MockError::Config(format!("the store at {} holds no {}s {:?} bars for {symbols:?}", replay.store.display(), replay.period_secs, replay.source)));
    }
    Ok((symbols, bars))
}

/// Counters of what the mock did.
#[derive(Debug, Default, Serialize)]
pub struct MockStats {
    pub requests: AtomicU64,
    pub logins: AtomicU64,
    pub failed_logins: AtomicU64,
    pub rate_limited: AtomicU64,
    pub expired_tokens: AtomicU64,
    pub streams_opened: AtomicU64,
    pub streams_dropped: AtomicU64,
    pub malformed_sent: AtomicU64,
    pub future_frames_sent: AtomicU64,
    pub quotes_sent: AtomicU64,
    pub bars_sent: AtomicU64,
    pub prices_requests: AtomicU64,
    /// Dealing requests carried out (`POST /positions`, `POST /workingorders`).
    pub dealing_requests: AtomicU64,
    /// Of those, answered 502 after the deal, and answered too late.
    pub executed_then_502: AtomicU64,
    pub lost_replies: AtomicU64,
}

struct Session {
    security_token: String,
    account_id: String,
    created: Instant,
    last_used: Instant,
    recent: VecDeque<Instant>,
}

struct Burst {
    next: Instant,
    left: u32,
}

struct Shared {
    config: MockConfig,
    index: HashMap<String, usize>,
    /// The login key pair and its public half (SPKI DER, base64): made at
    /// start on a socket, at the first encrypted login in process.
    keys: std::sync::OnceLock<(rsa::RsaPrivateKey, String)>,
    key_stamp: i64,
    market: Mutex<MockMarket>,
    dealing: Mutex<dealing::Dealing>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Every token handed out (so a test can search logs for them).
    issued: Mutex<Vec<String>>,
    logins: Mutex<VecDeque<Instant>>,
    burst: Mutex<Burst>,
    publications: broadcast::Sender<Arc<Publication>>,
    watchlists: Mutex<account::Watchlists>,
    wall_start: Instant,
    market_start: i64,
    stats: MockStats,
    scripted: Mutex<Vec<ScriptedFault>>,
    /// Market time skipped ahead by [`MockServer::skip`].
    skipped_ms: std::sync::atomic::AtomicI64,
    /// The activity feed's lag now, ms (0: none): `faults.activity_lag_ms`
    /// at start, changed by [`MockServer::set_activity_lag`].
    activity_lag_ms: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.market_start + self.skipped_ms.load(Ordering::Relaxed) + (self.wall_start.elapsed().as_secs_f64() * 1e3 * self.config.speed) as i64
    }
}

/// A running mock; stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The REST handlers, for the in-process transport.
    app: axum::Router,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// What the mock published: every closed minute bar of every epic.
#[derive(Debug, Clone, Serialize)]
pub struct GroundTruth {
    pub epics: Vec<String>,
    pub minutes: Vec<Vec<MockBar>>,
    pub quotes_published: u64,
    pub market_time_ms: i64,
}

type Reply = Result<Response, Response>;

fn error(status: StatusCode, code: ApiCode) -> Response {
    (status, Json(wire::ErrorBody { error_code: code.code() })).into_response()
}

impl MockServer {
    /// Starts on `listen` (e.g. `127.0.0.1:0`) in the current tokio runtime.
    pub async fn start(config: MockConfig, listen: &str) -> Result<Self, MockError> {
        let key = tokio::task::spawn_blocking(new_key).await.expect("key generation task")?;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|source| MockError::Listen { addr: listen.into(), source })?;
        let addr = listener.local_addr().map_err(|source| MockError::Listen { addr: listen.into(), source })?;
        let (shared, app) = Self::build(config)?;
        shared.keys.set(key).ok();
        let served = app.clone();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, served).await {
                tracing::error!(error = %e, "mock Capital.com server stopped");
            }
        });
        let clock = tokio::spawn(drive(shared.clone()));
        tracing::info!(%addr, epics = shared.config.epics.len(), speed = shared.config.speed, "mock Capital.com listening");
        Ok(Self { addr, shared, app, tasks: vec![server, clock] })
    }

    /// The same account and handlers with no socket and no clock task, for
    /// the deterministic simulation: requests come through [`MockServer::transport`],
    /// prices through [`MockServer::publish_quote`], and time is the tokio
    /// clock of the caller's runtime (paused there, it moves only when the
    /// simulation moves it). Order references are drawn from `seed`.
    pub fn in_process(config: MockConfig, seed: u64) -> Result<Self, MockError> {
        let (shared, app) = Self::build(config)?;
        shared.dealing.lock().expect("dealing lock").references = rand::SeedableRng::seed_from_u64(seed);
        Ok(Self { addr: SocketAddr::from(([127, 0, 0, 1], 0)), shared, app, tasks: Vec::new() })
    }

    fn build(mut config: MockConfig) -> Result<(Arc<Shared>, axum::Router), MockError> {
        let source: Box<dyn QuoteSource> = match &config.replay {
            Some(replay) => {
                let (epics, bars) = replay_bars(replay, &config.epics)?;
                config.epics = epics;
                Box::new(ReplayedQuotes::new(bars, replay.spread_bps, 0.01))
            }
            None => {
                let start = config.start_ms.unwrap_or_else(|| stratbox_contract::util::unix_ms() as i64);
                Box::new(SimulatedQuotes::new(config.epics.len(), config.simulator, config.quote_secs, start))
            }
        };
        if config.epics.is_empty() || !(config.speed > 0.0 && config.speed.is_finite()) {
            return Err(MockError::Config("need at least one epic and a positive speed".into()));
        }
        let closed: Vec<bool> = config.epics.iter().map(|e| config.faults.closed_epics.contains(e)).collect();
        let market = MockMarket::new(config.epics.len(), source, closed.clone());
        let mut dealing = dealing::Dealing::new(config.epics.clone(), closed, config.timezone_offset);
        dealing.transact(market.now_ms(), "DEPOSIT", "Opening deposit", None, dealing::DEPOSIT);
        let (publications, _) = broadcast::channel(1 << 16);
        let shared = Arc::new(Shared {
            index: config.epics.iter().enumerate().map(|(i, e)| (e.clone(), i)).collect(),
            keys: std::sync::OnceLock::new(),
            key_stamp: market.now_ms(),
            market_start: market.now_ms(),
            market: Mutex::new(market),
            dealing: Mutex::new(dealing),
            sessions: Mutex::default(),
            issued: Mutex::default(),
            logins: Mutex::default(),
            // The first burst meets the first request.
            burst: Mutex::new(Burst { next: Instant::now(), left: 0 }),
            publications,
            watchlists: Mutex::new(account::Watchlists::new(&config.epics)),
            wall_start: Instant::now(),
            stats: MockStats::default(),
            scripted: Mutex::default(),
            skipped_ms: std::sync::atomic::AtomicI64::new(0),
            activity_lag_ms: AtomicU64::new(config.faults.activity_lag_ms.unwrap_or(0)),
            config,
        });
        let app = axum::Router::new()
            .route("/api/v1/time", get(time))
            .route("/api/v1/ping", get(ping))
            .route("/api/v1/session/encryptionKey", get(encryption_key))
            .route("/api/v1/session", get(session_details).post(login).put(account::switch).delete(logout))
            .route("/api/v1/accounts", get(account::accounts))
            .route("/api/v1/accounts/topUp", axum::routing::post(account::top_up))
            .route("/api/v1/history/transactions", get(account::transactions))
            .route("/api/v1/marketnavigation", get(account::navigation))
            .route("/api/v1/marketnavigation/{node}", get(account::navigation_node))
            .route("/api/v1/clientsentiment", get(account::sentiments))
            .route("/api/v1/clientsentiment/{market}", get(account::sentiment))
            .route("/api/v1/watchlists", get(account::watchlists).post(account::create_watchlist))
            .route("/api/v1/watchlists/{id}", get(account::watchlist).put(account::add_to_watchlist).delete(account::delete_watchlist))
            .route("/api/v1/watchlists/{id}/{epic}", axum::routing::delete(account::remove_from_watchlist))
            .route("/api/v1/markets", get(markets))
            .route("/api/v1/markets/{epic}", get(market_details))
            .route("/api/v1/prices/{epic}", get(prices))
            .route("/api/v1/positions", get(trading::positions).post(trading::open_position))
            .route("/api/v1/positions/{deal_id}", get(trading::position).put(trading::amend_position).delete(trading::close_position))
            .route("/api/v1/workingorders", get(trading::working_orders).post(trading::create_working_order))
            .route("/api/v1/workingorders/{deal_id}", put(trading::amend_working_order).delete(trading::delete_working_order))
            .route("/api/v1/confirms/{reference}", get(trading::confirm))
            .route("/api/v1/accounts/preferences", get(trading::preferences).put(trading::set_preferences))
            .route("/api/v1/history/activity", get(trading::activity))
            .route("/connect", get(stream))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), scripted_faults))
            .with_state(shared.clone());
        Ok((shared, app))
    }

    /// A transport that hands each request to the mock's handlers in this
    /// process (no socket): a reply not ready within `timeout` of the
    /// runtime's clock is a timeout, as reqwest's would be.
    pub fn transport(&self, timeout: Duration) -> InProcess {
        InProcess { app: self.app.clone(), timeout }
    }

    /// Publishes a quote of epic `epic` (by index) at the mock's time now:
    /// working orders, stops and targets trade on it, good-till-date orders
    /// expire (the in-process mock has no price source of its own).
    pub fn publish_quote(&self, epic: usize, bid: f64, ask: f64) {
        let now = self.shared.now_ms();
        self.shared.dealing.lock().expect("dealing lock").on_quote(now, epic, bid, ask);
    }

    /// `http://127.0.0.1:PORT`: the REST base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/`: the `streamingHost` its logins return.
    pub fn streaming_host(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn stats(&self) -> &MockStats {
        &self.shared.stats
    }

    pub fn market_time_ms(&self) -> i64 {
        self.shared.now_ms()
    }

    /// Every `CST` and `X-SECURITY-TOKEN` issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.issued.lock().expect("issued lock").clone()
    }

    /// The dealing side of the account: positions, working orders, every deal received.
    pub fn dealing(&self) -> DealingSnapshot {
        self.shared.dealing.lock().expect("dealing lock").snapshot()
    }

    /// The account's balance now, as `GET /accounts` reports it.
    pub fn account(&self) -> stratbox_capital::wire::AccountInfo {
        self.shared.dealing.lock().expect("dealing lock").account()
    }

    /// Sets the account's hedging mode (as `PUT /accounts/preferences` does).
    pub fn set_hedging(&self, hedging: bool) {
        self.shared.dealing.lock().expect("dealing lock").hedging = hedging;
    }

    /// Ends every session now: the next request of each gets
    /// `error.invalid.session.token` (as after an idle timeout).
    pub fn expire_sessions(&self) {
        self.shared.sessions.lock().expect("sessions lock").clear();
    }

    /// The market jumps `ms` ahead (a host's days of downtime in an
    /// instant): every quote in between is published and trades the
    /// account's resting orders, and good-till-date orders expire, as if the
    /// time had passed.
    pub fn skip(&self, ms: i64) {
        self.shared.skipped_ms.fetch_add(ms.max(0), Ordering::Relaxed);
    }

    /// How long ago the account's last activity was (a deal, an execution,
    /// an expiry, a cancel), on the runtime's clock; `None` before the first.
    pub fn since_last_activity(&self) -> Option<Duration> {
        self.shared.dealing.lock().expect("dealing lock").activity_at.last().map(|at| at.elapsed())
    }

    /// From now on activities show in `GET /history/activity` only `ms`
    /// after they happened (0: at once).
    pub fn set_activity_lag(&self, ms: u64) {
        self.shared.activity_lag_ms.store(ms, Ordering::Relaxed);
    }

    /// Adds a fault for the next matching requests (see [`ScriptedFault`]).
    pub fn script(&self, fault: ScriptedFault) {
        self.shared.scripted.lock().expect("scripted lock").push(fault);
    }

    /// Scripted faults not yet used up.
    pub fn scripted_left(&self) -> u32 {
        self.shared.scripted.lock().expect("scripted lock").iter().map(|f| f.times).sum()
    }

    /// From now on resting orders, stops and targets never trigger (market deals still fill).
    pub fn freeze_dealing(&self) {
        self.shared.dealing.lock().expect("dealing lock").frozen = true;
    }

    pub fn ground_truth(&self) -> GroundTruth {
        let m = self.shared.market.lock().expect("market lock");
        GroundTruth {
            epics: self.shared.config.epics.clone(),
            minutes: m.minutes.iter().map(|b| b.values().copied().collect()).collect(),
            quotes_published: m.quotes_published,
            market_time_ms: m.now_ms(),
        }
    }
}

/// The in-process transport ([`MockServer::transport`]).
pub struct InProcess {
    app: axum::Router,
    timeout: Duration,
}

impl stratbox_capital::transport::Transport for InProcess {
    fn send(&self, r: stratbox_capital::transport::HttpRequest) -> stratbox_capital::transport::Sending<'_> {
        use stratbox_capital::transport::{HttpResponse, TransportError};
        use tower::ServiceExt;
        Box::pin(async move {
            let mut request = axum::http::Request::builder().method(r.method).uri(r.path_and_query);
            if let Some(h) = request.headers_mut() {
                *h = r.headers;
                h.insert("host", HeaderValue::from_static("127.0.0.1"));
            }
            let request = request.body(axum::body::Body::from(r.body.unwrap_or_default())).map_err(|e| TransportError::Failed(e.to_string()))?;
            let answer = async {
                let response = self.app.clone().oneshot(request).await.map_err(|e| TransportError::Failed(e.to_string()))?;
                let (parts, body) = response.into_parts();
                let body = axum::body::to_bytes(body, 64 << 20).await.map_err(|e| TransportError::Failed(e.to_string()))?;
                Ok(HttpResponse { status: parts.status, headers: parts.headers, body: body.to_vec() })
            };
            tokio::time::timeout(self.timeout, answer).await.map_err(|_| TransportError::Timeout)?
        })
    }
}

/// A 2048-bit login key pair, and its public half as SPKI DER in base64.
fn new_key() -> Result<(rsa::RsaPrivateKey, String), MockError> {
    use rsa::pkcs8::EncodePublicKey;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| MockError::Config(format!("RSA key generation: {e}")))?;
    let public = B64.encode(private.to_public_key().to_public_key_der().map_err(|e| MockError::Config(e.to_string()))?.as_bytes());
    Ok((private, public))
}

/// Answers a request a scripted fault matches, before or after its handler.
async fn scripted_faults(State(shared): State<Arc<Shared>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let fault = {
        let mut scripted = shared.scripted.lock().expect("scripted lock");
        let (method, path) = (request.method().as_str(), request.uri().path());
        let found = scripted.iter_mut().find(|f| f.times > 0 && f.method == method && path.starts_with(&f.path));
        let fault = found.map(|f| {
            f.times -= 1;
            f.clone()
        });
        scripted.retain(|f| f.times > 0);
        fault
    };
    let Some(fault) = fault else { return next.run(request).await };
    tracing::debug!(method = %fault.method, path = %fault.path, status = fault.status, after = fault.after_handling, "fault: scripted answer");
    if fault.after_handling {
        let _ = next.run(request).await;
    }
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match fault.error_code {
        Some(code) => error(status, code),
        None => (status, "<html><body>gateway error</body></html>").into_response(),
    }
}

/// Moves the market clock and publishes, every few ms of wall time.
async fn drive(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = shared.now_ms();
        let out = shared.market.lock().expect("market lock").advance(now);
        {
            // Working orders, stops and targets trade on the quotes as they are published.
            let mut d = shared.dealing.lock().expect("dealing lock");
            for p in &out {
                if let Publication::Quote(q) = p {
                    d.on_quote(q.time_ms, q.epic, q.bid, q.ask);
                }
            }
        }
        for p in out {
            // No subscriber is fine: nobody is streaming.
            let _ = shared.publications.send(Arc::new(p));
        }
    }
}

/// The checks every REST request goes through: slowness, 429 bursts, the
/// session's rate limit and validity. Returns the session's tokens to echo.
async fn gate(shared: &Shared, headers: &HeaderMap, authenticated: bool) -> Result<Option<(String, String)>, Response> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(ms) = shared.config.faults.slow_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(every) = shared.config.faults.rate_limit_every_ms {
        let mut b = shared.burst.lock().expect("burst lock");
        if Instant::now() >= b.next {
            b.next = Instant::now() + Duration::from_millis(every);
            b.left = shared.config.faults.rate_limit_burst;
        }
        if b.left > 0 {
            b.left -= 1;
            shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(error(StatusCode::TOO_MANY_REQUESTS, ApiCode::TooManyRequests));
        }
    }
    if !authenticated {
        return Ok(None);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(cst), Some(token)) = (header("CST"), header("X-SECURITY-TOKEN")) else {
        return Err(error(StatusCode::BAD_REQUEST, ApiCode::NullClientToken));
    };
    let mut sessions = shared.sessions.lock().expect("sessions lock");
    let Some(s) = sessions.get_mut(&cst).filter(|s| s.security_token == token) else {
        return Err(error(StatusCode::UNAUTHORIZED, ApiCode::InvalidSessionToken));
    };
    let now = Instant::now();
    let idle = Duration::from_secs(shared.config.session_idle_secs);
    let expired_early = shared.config.faults.token_expiry_ms.is_some_and(|ms| now >= s.created + Duration::from_millis(ms));
    if now >= s.last_used + idle || expired_early {
        sessions.remove(&cst);
        shared.stats.expired_tokens.fetch_add(1, Ordering::Relaxed);
        return Err(error(StatusCode::UNAUTHORIZED, ApiCode::InvalidSessionToken));
    }
    while s.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
        s.recent.pop_front();
    }
    if s.recent.len() >= shared.config.requests_per_sec {
        shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(error(StatusCode::TOO_MANY_REQUESTS, ApiCode::TooManyRequests));
    }
    s.recent.push_back(now);
    s.last_used = now;
    Ok(Some((cst, token)))
}

/// A JSON reply with the session's tokens echoed in the headers.
fn ok<T: Serialize>(tokens: Option<(String, String)>, body: &T) -> Response {
    let mut r = Json(body).into_response();
    if let Some((cst, token)) = tokens
        && let (Ok(c), Ok(t)) = (HeaderValue::from_str(&cst), HeaderValue::from_str(&token))
    {
        r.headers_mut().insert("CST", c);
        r.headers_mut().insert("X-SECURITY-TOKEN", t);
    }
    r
}

fn api_key_ok(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    match headers.get("X-CAP-API-KEY").and_then(|v| v.to_str().ok()) {
        None | Some("") => Err(error(StatusCode::BAD_REQUEST, ApiCode::NullApiKey)),
        Some(k) if k != shared.config.account.api_key => Err(error(StatusCode::UNAUTHORIZED, ApiCode::InvalidDetails)),
        Some(_) => Ok(()),
    }
}

async fn time(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    gate(&shared, &headers, false).await?;
    Ok(ok(None, &wire::ServerTime { server_time: shared.now_ms() }))
}

async fn ping(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    Ok(ok(tokens, &wire::Status { status: "OK".into() }))
}

async fn encryption_key(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    gate(&shared, &headers, false).await?;
    api_key_ok(&shared, &headers)?;
    let key = match shared.keys.get() {
        Some((_, public)) => public.clone(),
        None => {
            let made = new_key().map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, ApiCode::Other(e.to_string())))?;
            shared.keys.get_or_init(|| made).1.clone()
        }
    };
    Ok(ok(None, &EncryptionKey { encryption_key: key, time_stamp: shared.key_stamp }))
}

/// The password of an `encryptedPassword` login, or `None` if it does not decrypt.
fn decrypt_password(shared: &Shared, sealed: &str) -> Option<String> {
    let bytes = B64.decode(sealed).ok()?;
    let plain = shared.keys.get()?.0.decrypt(rsa::Pkcs1v15Encrypt, &bytes).ok()?;
    let inner = String::from_utf8(B64.decode(plain).ok()?).ok()?;
    let (password, stamp) = inner.rsplit_once('|')?;
    (stamp.parse::<i64>().ok()? == shared.key_stamp).then(|| password.to_owned())
}

async fn login(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Option<Json<SessionRequest>>) -> Reply {
    gate(&shared, &headers, false).await?;
    api_key_ok(&shared, &headers)?;
    {
        // One login per second per API key.
        let mut logins = shared.logins.lock().expect("logins lock");
        let now = Instant::now();
        while logins.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            logins.pop_front();
        }
        if !logins.is_empty() {
            shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(error(StatusCode::TOO_MANY_REQUESTS, ApiCode::TooManyRequests));
        }
        logins.push_back(now);
    }
    let Some(Json(request)) = body else { return Err(error(StatusCode::BAD_REQUEST, ApiCode::InvalidDetails)) };
    let password = if request.encrypted_password { decrypt_password(&shared, &request.password) } else { Some(request.password.clone()) };
    let account = &shared.config.account;
    if request.identifier != account.identifier || password.as_deref() != Some(account.password.as_str()) {
        shared.stats.failed_logins.fetch_add(1, Ordering::Relaxed);
        return Err(error(StatusCode::UNAUTHORIZED, ApiCode::InvalidDetails));
    }
    let token = |prefix: &str| format!("{prefix}{:032x}", rand::thread_rng().r#gen::<u128>());
    let (cst, security_token) = (token("cst"), token("xst"));
    let account_id = ACCOUNT_ID.to_owned();
    shared.issued.lock().expect("issued lock").extend([cst.clone(), security_token.clone()]);
    let now = Instant::now();
    shared
        .sessions
        .lock()
        .expect("sessions lock")
        .insert(cst.clone(), Session { security_token: security_token.clone(), account_id: account_id.clone(), created: now, last_used: now, recent: VecDeque::new() });
    shared.stats.logins.fetch_add(1, Ordering::Relaxed);
    let body = SessionResponse {
        account_type: "CFD".into(),
        account_info: shared.dealing.lock().expect("dealing lock").account(),
        currency_iso_code: "USD".into(),
        currency_symbol: "$".into(),
        current_account_id: account_id.clone(),
        streaming_host: format!("ws://{}/", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1")),
        accounts: vec![AccountSummary { account_id, account_name: "USD".into(), preferred: true, account_type: "CFD".into() }],
        client_id: "12345678".into(),
        timezone_offset: shared.config.timezone_offset,
        has_active_demo_accounts: true,
        has_active_live_accounts: false,
        trailing_stops_enabled: false,
    };
    Ok(ok(Some((cst, security_token)), &body))
}

async fn session_details(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let account_id = tokens.as_ref().and_then(|(cst, _)| shared.sessions.lock().expect("sessions lock").get(cst).map(|s| s.account_id.clone()));
    let body = serde_json::json!({
        "clientId": "12345678", "accountId": account_id, "timezoneOffset": shared.config.timezone_offset,
        "locale": "en", "currency": "USD", "streamEndpoint": format!("ws://{}/", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1")),
    });
    Ok(ok(tokens, &body))
}

async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    if let Some((cst, _)) = &tokens {
        shared.sessions.lock().expect("sessions lock").remove(cst);
    }
    Ok(ok(None, &wire::Status { status: "SUCCESS".into() }))
}

fn details(shared: &Shared, i: usize) -> wire::MarketDetails {
    let (bid, ask) = shared.market.lock().expect("market lock").last_mid(i).unwrap_or((0.0, 0.0));
    let epic = &shared.config.epics[i];
    let closed = shared.config.faults.closed_epics.contains(epic);
    let points = |value| wire::Distance { unit: "POINTS".into(), value };
    let day = serde_json::json!(["00:00 - 00:00"]);
    wire::MarketDetails {
        instrument: wire::MarketInstrument {
            epic: epic.clone(),
            symbol: epic.clone(),
            name: epic.clone(),
            expiry: "-".into(),
            lot_size: 1.0,
            instrument_type: account::instrument_type(epic).into(),
            currency: "USD".into(),
            streaming_prices_available: true,
            // The simulated market trades around the clock, every day.
            opening_hours: serde_json::json!({ "mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day, "zone": "UTC" }),
        },
        dealing_rules: wire::DealingRules { min_step_distance: points(0.01), min_deal_size: points(1.0), max_deal_size: points(10_000.0), min_size_increment: points(1.0) },
        snapshot: wire::MarketSnapshot {
            market_status: if closed { "CLOSED" } else { "TRADEABLE" }.into(),
            bid,
            offer: ask,
            high: ask,
            low: bid,
            update_time: wire::format_query_time(shared.now_ms()),
            delay_time: 0,
            decimal_places_factor: 2,
            scaling_factor: 1,
        },
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MarketsQuery {
    search_term: Option<String>,
    epics: Option<String>,
}

async fn markets(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<MarketsQuery>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    // searchTerm wins over epics; neither lists every market.
    if q.search_term.is_some() || q.epics.is_none() {
        if q.search_term.as_deref() == Some("") {
            return Err(error(StatusCode::BAD_REQUEST, ApiCode::NullSearchTerm));
        }
        let term = q.search_term.unwrap_or_default().to_lowercase();
        let now = shared.now_ms();
        let d = shared.dealing.lock().expect("dealing lock");
        let found: Vec<_> =
            d.epics().iter().enumerate().filter(|(_, e)| e.to_lowercase().contains(&term)).map(|(i, _)| d.market_summary(i, now)).collect();
        return Ok(ok(tokens, &wire::MarketList { markets: found }));
    }
    let epics = q.epics.unwrap_or_default();
    let wanted: Vec<&str> = epics.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if wanted.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, ApiCode::NullEpic));
    }
    let found: Vec<_> = wanted.iter().filter_map(|e| shared.index.get(*e)).map(|&i| details(&shared, i)).collect();
    Ok(ok(tokens, &serde_json::json!({ "marketDetails": found })))
}

async fn market_details(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(epic): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let &i = shared.index.get(&epic).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundEpic))?;
    Ok(ok(tokens, &details(&shared, i)))
}

#[derive(Deserialize)]
struct PricesQuery {
    resolution: Option<String>,
    max: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn prices(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(epic): Path<String>, Query(q): Query<PricesQuery>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    shared.stats.prices_requests.fetch_add(1, Ordering::Relaxed);
    let bad = |code| error(StatusCode::BAD_REQUEST, code);
    let &i = shared.index.get(&epic).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundEpic))?;
    let resolution = q.resolution.as_deref().unwrap_or("MINUTE");
    let secs = RESOLUTIONS.iter().find(|(n, _)| *n == resolution).map(|(_, s)| *s).ok_or_else(|| bad(ApiCode::InvalidResolution))?;
    let max: i64 = match q.max.as_deref() {
        None => 10,
        Some(m) => m.parse().ok().filter(|m| (1..=1000).contains(m)).ok_or_else(|| bad(ApiCode::InvalidMax))?,
    };
    let parse = |s: &Option<String>, code| s.as_deref().map(|s| wire::parse_wire_time(s).filter(|_| !s.contains('Z') && !s.contains('+')).ok_or_else(|| bad(code))).transpose();
    let from = parse(&q.from, ApiCode::InvalidFrom)?;
    let to = parse(&q.to, ApiCode::InvalidTo)?;
    let now = shared.now_ms();
    let span = i64::from(secs) * 1000;
    if to.is_some_and(|t| t > now) {
        return Err(bad(ApiCode::InvalidDateRange));
    }
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(bad(ApiCode::InvalidDateRange));
        }
        if t - f > (max - 1) * span {
            return Err(bad(ApiCode::InvalidMaxDateRange));
        }
    }
    let bars = {
        let m = shared.market.lock().expect("market lock");
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - max * span);
        let mut bars = m.bars(i, secs, from, to);
        if q.from.is_none() {
            // The newest `max` bars.
            let skip = bars.len().saturating_sub(max as usize);
            bars.drain(..skip);
        }
        bars.truncate(max as usize);
        bars
    };
    if bars.is_empty() {
        return Err(error(StatusCode::NOT_FOUND, ApiCode::PricesNotFound));
    }
    let offset = i64::from(shared.config.timezone_offset) * 3_600_000;
    let pair = |b: f64, a: f64| BidAsk { bid: b, ask: a };
    let prices = bars
        .iter()
        .map(|b| PriceBar {
            snapshot_time: wire::format_query_time(b.t + offset),
            snapshot_time_utc: wire::format_query_time(b.t),
            open_price: pair(b.bid.open, b.ask.open),
            close_price: pair(b.bid.close, b.ask.close),
            high_price: pair(b.bid.high, b.ask.high),
            low_price: pair(b.bid.low, b.ask.low),
            last_traded_volume: b.quotes as i64,
        })
        .collect();
    Ok(ok(tokens, &Prices { prices, instrument_type: "SHARES".into() }))
}

async fn stream(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| serve_stream(shared, socket))
}

fn frame(destination: &str, correlation_id: Option<&str>, status: &str, payload: serde_json::Value) -> Message {
    let f = wire::ServerFrame { status: status.into(), destination: destination.into(), correlation_id: correlation_id.map(str::to_owned), payload, error_code: None };
    Message::text(serde_json::to_string(&f).expect("frames serialise"))
}

/// One stream connection: client requests, and the pushes it subscribed to.
async fn serve_stream(shared: Arc<Shared>, socket: WebSocket) {
    shared.stats.streams_opened.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut source) = socket.split();
    let mut pushes = shared.publications.subscribe();
    let drop_at = shared.config.faults.drop_stream_every_ms.map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    let idle = Duration::from_secs(shared.config.session_idle_secs);
    let mut last_client = tokio::time::Instant::now();
    let mut quotes: HashSet<usize> = HashSet::new();
    let mut ohlc: HashSet<(usize, u32)> = HashSet::new();
    let mut pushed = 0u64;
    loop {
        let deadline = drop_at.map_or(last_client + idle, |d| d.min(last_client + idle));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                if drop_at.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    // An abrupt drop: no close frame, the TCP connection just ends.
                    shared.stats.streams_dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            incoming = source.next() => {
                let text = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                };
                last_client = tokio::time::Instant::now();
                let reply = client_request(&shared, text.as_str(), &mut quotes, &mut ohlc);
                if sink.send(reply).await.is_err() {
                    return;
                }
            }
            p = pushes.recv() => {
                let p = match p {
                    Ok(p) => p,
                    // A consumer too slow for the feed is dropped, as a real server would.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                };
                let msg = match &*p {
                    Publication::Quote(q) if quotes.contains(&q.epic) => {
                        shared.stats.quotes_sent.fetch_add(1, Ordering::Relaxed);
                        let push = |time_ms| wire::QuotePush { epic: &shared.config.epics[q.epic], product: "CFD", bid: q.bid, bid_qty: q.bid_qty, ofr: q.ask, ofr_qty: q.ask_qty, timestamp: time_ms };
                        let quote = frame("quote", None, "OK", serde_json::to_value(push(q.time_ms)).expect("push"));
                        let sent = shared.stats.quotes_sent.load(Ordering::Relaxed);
                        if shared.config.faults.future_frame_every.is_some_and(|n| n > 0 && sent.is_multiple_of(n)) {
                            shared.stats.future_frames_sent.fetch_add(1, Ordering::Relaxed);
                            vec![frame("quote", None, "OK", serde_json::to_value(push(q.time_ms + 86_400_000)).expect("push")), quote]
                        } else {
                            vec![quote]
                        }
                    }
                    Publication::Bar { epic, resolution_secs, bar } if ohlc.contains(&(*epic, *resolution_secs)) => {
                        shared.stats.bars_sent.fetch_add(1, Ordering::Relaxed);
                        let name = RESOLUTIONS.iter().find(|(_, s)| s == resolution_secs).map(|(n, _)| *n).expect("known resolution");
                        [("bid", bar.bid), ("ask", bar.ask)]
                            .into_iter()
                            .map(|(side, o)| {
                                let push = wire::OhlcPush { resolution: name, epic: &shared.config.epics[*epic], kind: "classic", price_type: side, t: bar.t, h: o.high, l: o.low, o: o.open, c: o.close };
                                frame("ohlc.event", None, "OK", serde_json::to_value(push).expect("push"))
                            })
                            .collect()
                    }
                    _ => continue,
                };
                for m in msg {
                    pushed += 1;
                    if shared.config.faults.malformed_every.is_some_and(|n| n > 0 && pushed.is_multiple_of(n)) {
                        shared.stats.malformed_sent.fetch_add(1, Ordering::Relaxed);
                        if sink.send(Message::text(r#"{"status":"OK","destination":"quote","payload":{"epic":"#)).await.is_err() {
                            return;
                        }
                    }
                    if sink.send(m).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The reply to one client frame.
fn client_request(shared: &Shared, text: &str, quotes: &mut HashSet<usize>, ohlc: &mut HashSet<(usize, u32)>) -> Message {
    let request: ClientFrame = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(_) => return frame("error", None, "ERROR", serde_json::json!({ "errorCode": "error.invalid.request" })),
    };
    let id = Some(request.correlation_id.as_str());
    let fail = |code: ApiCode| frame(&request.destination, id, "ERROR", serde_json::json!({ "errorCode": code.code() }));
    {
        let mut sessions = shared.sessions.lock().expect("sessions lock");
        let live = sessions.get_mut(&request.cst).filter(|s| s.security_token == request.security_token);
        let Some(s) = live else { return fail(ApiCode::InvalidSessionToken) };
        if shared.config.faults.token_expiry_ms.is_some_and(|ms| s.created.elapsed() >= Duration::from_millis(ms)) {
            sessions.remove(&request.cst);
            shared.stats.expired_tokens.fetch_add(1, Ordering::Relaxed);
            return fail(ApiCode::InvalidSessionToken);
        }
        s.last_used = Instant::now();
    }
    let epics: Vec<String> = request.payload.get("epics").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
    match request.destination.as_str() {
        "ping" => frame("ping", id, "OK", serde_json::json!({})),
        "marketData.subscribe" | "marketData.unsubscribe" | "OHLCMarketData.subscribe" | "OHLCMarketData.unsubscribe" => {
            if epics.len() > stratbox_capital::MAX_EPICS_PER_SUBSCRIPTION {
                return fail(ApiCode::Other("error.invalid.epics.size".into()));
            }
            let subscribe = request.destination.ends_with(".subscribe");
            let resolutions: Vec<String> = request
                .payload
                .get("resolutions")
                .and_then(|r| serde_json::from_value(r.clone()).ok())
                .unwrap_or_else(|| vec!["MINUTE".into()]);
            let mut result = serde_json::Map::new();
            for epic in &epics {
                let Some(&i) = shared.index.get(epic) else {
                    result.insert(epic.clone(), "NOT_FOUND".into());
                    continue;
                };
                if request.destination.starts_with("marketData") {
                    if subscribe { quotes.insert(i) } else { quotes.remove(&i) };
                    result.insert(epic.clone(), "PROCESSED".into());
                } else {
                    for r in &resolutions {
                        let Some((_, secs)) = RESOLUTIONS.iter().find(|(n, _)| n == r) else {
                            result.insert(format!("{epic}:{r}:classic"), "ERROR".into());
                            continue;
                        };
                        if subscribe { ohlc.insert((i, *secs)) } else { ohlc.remove(&(i, *secs)) };
                        result.insert(format!("{epic}:{r}:classic"), "PROCESSED".into());
                    }
                }
            }
            frame(&request.destination, id, "OK", serde_json::json!({ "subscriptions": result }))
        }
        other => frame(other, id, "ERROR", serde_json::json!({ "errorCode": "error.invalid.destination" })),
    }
}
