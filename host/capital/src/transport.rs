//! How a request reaches Capital.com: HTTPS with reqwest, or an in-process
//! transport (the mock's handlers called directly, no socket), which is how
//! the deterministic simulation runs the real client on virtual time.
//!
//! The rate limiters read the same clock as everything else on the client's
//! runtime (tokio's): real time in production, the simulation's paused
//! clock under test.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// One request: the path with its query (`/api/v1/positions?x=y`), headers, a JSON body.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

/// One response, body read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// No response: the request may or may not have been carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Nothing came back within the client's timeout.
    Timeout,
    /// The connection failed or broke.
    Failed(String),
}

pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>>;

/// Carries requests to Capital.com (or to something that answers as it does).
pub trait Transport: Send + Sync {
    fn send(&self, request: HttpRequest) -> Sending<'_>;
}

/// HTTPS (or HTTP to this machine) with reqwest.
pub(crate) struct Http {
    client: reqwest::Client,
    base_url: String,
}

impl Http {
    pub(crate) fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).user_agent(concat!("stratbox/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Self { client, base_url: base_url.trim_end_matches('/').to_owned() })
    }
}

/// A reqwest error as a transport error, with its URL (which holds no secret) dropped.
fn failed(e: reqwest::Error) -> TransportError {
    if e.is_timeout() { TransportError::Timeout } else { TransportError::Failed(e.without_url().to_string()) }
}

impl Transport for Http {
    fn send(&self, r: HttpRequest) -> Sending<'_> {
        Box::pin(async move {
            let mut request = self.client.request(r.method, format!("{}{}", self.base_url, r.path_and_query)).headers(r.headers);
            if let Some(body) = r.body {
                request = request.body(body);
            }
            let response = request.send().await.map_err(failed)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(failed)?.to_vec();
            Ok(HttpResponse { status, headers, body })
        })
    }
}

/// The path with `query` encoded as reqwest would (`application/x-www-form-urlencoded`).
pub(crate) fn with_query(path: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let mut url = reqwest::Url::parse("http://q/").expect("a fixed URL parses");
    url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    format!("{path}?{}", url.query().unwrap_or(""))
}

/// governor's clock, read from tokio's: rate limits wait on the same clock
/// as everything else the client does (virtual under the simulation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TokioInstant(tokio::time::Instant);

impl std::ops::Add<governor::nanos::Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, other: governor::nanos::Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl governor::clock::Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> governor::nanos::Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }
    fn saturating_sub(&self, duration: governor::nanos::Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

impl governor::clock::Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

pub(crate) type Limiter = governor::RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, TokioClock, governor::middleware::NoOpMiddleware<TokioInstant>>;

pub(crate) fn limiter(quota: governor::Quota) -> Limiter {
    governor::RateLimiter::direct_with_clock(quota, TokioClock)
}

/// Waits until `limiter` lets one more request through, sleeping on tokio's clock.
pub(crate) async fn until_ready(limiter: &Limiter) {
    while let Err(not_until) = limiter.check() {
        tokio::time::sleep(not_until.wait_time_from(governor::clock::Clock::now(&TokioClock))).await;
    }
}
