//! The Capital.com REST client: session, tokens, keep-alive, rate limits.
//!
//! - Login with the API key, identifier and password, or with the password
//!   RSA-encrypted (`encryptedPassword`) using `/session/encryptionKey`.
//! - `CST` and `X-SECURITY-TOKEN` go on every call and are replaced by the
//!   values echoed in any response. They are zeroised when dropped, marked
//!   sensitive in headers, and never logged.
//! - A session dies 10 minutes after its last use: [`RestClient::keep_alive`]
//!   pings well inside that, and an expired-token error logs in again and
//!   retries once.
//! - Rate limits are kept on our side: 10 requests/s for everything (spread
//!   evenly, one per 100 ms, so no sliding one-second window ever holds more
//!   than 10), a separate one per 100 ms for trading calls, one login per
//!   second. A 429 still gets exponential backoff with jitter (or the
//!   server's `Retry-After`), up to `max_retries`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use governor::Quota;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::error::{ApiCode, CapitalError};
use super::wire::{self, EncryptionKey, ErrorBody, Prices, SessionRequest, SessionResponse, Status};
use crate::credentials::CapitalCredentials;
use crate::transport::{self, Http, HttpRequest, Limiter, Transport, TransportError};

/// Capital.com's live and demo REST hosts.
pub const LIVE_URL: &str = "https://api-capital.backend-capital.com";
pub const DEMO_URL: &str = "https://demo-api-capital.backend-capital.com";

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestConfig {
    /// Scheme and host; paths get `/api/v1` prepended.
    pub base_url: String,
    /// Send the password RSA-encrypted (`encryptedPassword: true`).
    pub encrypt_password: bool,
    /// Steady request rate, all endpoints.
    pub requests_per_sec: u32,
    /// Minimum spacing of trading calls (positions, working orders), ms.
    pub trading_interval_ms: u64,
    /// Retries of a call answered 429.
    pub max_retries: u32,
    /// First 429 backoff and its cap, ms (doubled each retry, with jitter).
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    pub timeout_ms: u64,
    /// Ping when the session has been idle this long (it dies at 10 minutes).
    pub keep_alive_secs: u64,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            base_url: DEMO_URL.into(),
            encrypt_password: true,
            requests_per_sec: 10,
            trading_interval_ms: 100,
            max_retries: 6,
            backoff_ms: 250,
            backoff_max_ms: 8_000,
            timeout_ms: 10_000,
            keep_alive_secs: 240,
        }
    }
}

/// Which rate limits a call is subject to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    General,
    /// Opening or changing positions and working orders.
    Trading,
}

/// The session's tokens (never printed).
#[derive(Clone)]
pub struct Tokens {
    pub cst: Zeroizing<String>,
    pub security_token: Zeroizing<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(***)")
    }
}

struct Session {
    tokens: Tokens,
    streaming_host: String,
    /// Bumped on each login, so concurrent callers that all saw the same
    /// expired session log in once, not once each.
    generation: u64,
}

/// Counters for status and tests.
#[derive(Debug, Default)]
pub struct RestStats {
    pub requests: AtomicU64,
    pub logins: AtomicU64,
    pub rate_limited: AtomicU64,
    pub relogins: AtomicU64,
    pub pings: AtomicU64,
}

pub struct RestClient {
    transport: Box<dyn Transport>,
    config: RestConfig,
    credentials: CapitalCredentials,
    session: Mutex<Option<Session>>,
    /// Held from "is a login needed?" to the new session being in place, so
    /// callers that find the session dead together (the stream, the broker
    /// worker, the feed) log in once: single flight.
    login_gate: Mutex<()>,
    general: Limiter,
    trading: Limiter,
    login_limit: Limiter,
    generation: AtomicU64,
    /// The 429 backoff's jitter (seeded under the simulation: one seed, one run).
    jitter: std::sync::Mutex<StdRng>,
    last_used: Mutex<tokio::time::Instant>,
    pub stats: RestStats,
}

/// Every request carries the API key: plain HTTP only to this machine (the
/// mock), HTTPS anywhere else.
fn check_base_url(base: &str) -> Result<(), CapitalError> {
    let refuse = |why: &str| CapitalError::BaseUrl { url: base.to_owned(), why: why.to_owned() };
    let url = reqwest::Url::parse(base).map_err(|e| refuse(&e.to_string()))?;
    let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(refuse("plain http would send the API key and tokens in clear to another machine; use https")),
        other => Err(refuse(&format!("scheme `{other}` (https, or http to 127.0.0.1 only)"))),
    }
}

fn even_quota(per_sec: u32) -> Quota {
    Quota::with_period(Duration::from_secs(1) / per_sec.max(1)).expect("non-zero period")
}

impl RestClient {
    pub fn new(config: RestConfig, credentials: CapitalCredentials) -> Result<Self, CapitalError> {
        check_base_url(&config.base_url)?;
        let http = Http::new(&config.base_url, Duration::from_millis(config.timeout_ms)).map_err(|source| CapitalError::Http { endpoint: "client".into(), source })?;
        Ok(Self::with_transport(config, credentials, Box::new(http), StdRng::from_entropy()))
    }

    /// A client whose requests go through `transport` (the simulation's
    /// in-process mock), with the backoff's jitter drawn from `jitter`.
    /// `config.base_url` is not used; `config.timeout_ms` is the transport's to keep.
    pub fn in_process(config: RestConfig, credentials: CapitalCredentials, transport: Box<dyn Transport>, jitter_seed: u64) -> Self {
        Self::with_transport(config, credentials, transport, StdRng::seed_from_u64(jitter_seed))
    }

    fn with_transport(config: RestConfig, credentials: CapitalCredentials, transport: Box<dyn Transport>, jitter: StdRng) -> Self {
        let trading = Quota::with_period(Duration::from_millis(config.trading_interval_ms.max(1))).expect("non-zero period");
        Self {
            transport,
            general: transport::limiter(even_quota(config.requests_per_sec)),
            trading: transport::limiter(trading),
            login_limit: transport::limiter(Quota::per_second(NonZeroU32::MIN)),
            jitter: std::sync::Mutex::new(jitter),
            config,
            credentials,
            session: Mutex::new(None),
            login_gate: Mutex::new(()),
            generation: AtomicU64::new(0),
            last_used: Mutex::new(tokio::time::Instant::now()),
            stats: RestStats::default(),
        }
    }

    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    /// Logs in (again), replacing any session. Returns the account summary.
    pub async fn login(&self) -> Result<SessionResponse, CapitalError> {
        transport::until_ready(&self.login_limit).await;
        let c = &self.credentials;
        let password = if self.config.encrypt_password {
            let key: EncryptionKey = self.call_raw(Method::GET, "/session/encryptionKey", None::<&()>, None, &[]).await?.1;
            Zeroizing::new(encrypt_password(&c.password, &key)?)
        } else {
            Zeroizing::new(c.password.clone())
        };
        let body = SessionRequest { identifier: c.identifier.clone(), password: password.to_string(), encrypted_password: self.config.encrypt_password };
        let (headers, response): (HeaderMap, SessionResponse) = self.call_raw(Method::POST, "/session", Some(&body), None, &[]).await?;
        drop(Zeroizing::new(body.password));
        let tokens = tokens_from(&headers)
            .ok_or_else(|| CapitalError::Protocol { endpoint: "POST /session".into(), why: "no CST or X-SECURITY-TOKEN header in the reply".into() })?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.session.lock().await = Some(Session { tokens, streaming_host: response.streaming_host.clone(), generation });
        *self.last_used.lock().await = tokio::time::Instant::now();
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(account = %response.current_account_id, account_type = %response.account_type, "logged in to Capital.com");
        Ok(response)
    }

    /// The current tokens and streaming host, logging in first if needed.
    pub async fn session(&self) -> Result<(Tokens, String), CapitalError> {
        loop {
            if let Some(s) = &*self.session.lock().await {
                return Ok((s.tokens.clone(), s.streaming_host.clone()));
            }
            self.ensure_session().await?;
        }
    }

    /// Logs in if there is no session, once however many callers find none.
    async fn ensure_session(&self) -> Result<(), CapitalError> {
        let _gate = self.login_gate.lock().await;
        if self.session.lock().await.is_some() {
            return Ok(());
        }
        self.login().await.map(drop)
    }

    /// Logs in again unless another caller already did since `seen`. The
    /// gate makes the check and the login one step: a caller that waited on
    /// it finds the new generation and returns without logging in.
    async fn relogin(&self, seen: u64) -> Result<(), CapitalError> {
        let _gate = self.login_gate.lock().await;
        let current = self.session.lock().await.as_ref().map(|s| s.generation);
        if current.is_some_and(|g| g != seen) {
            return Ok(());
        }
        self.stats.relogins.fetch_add(1, Ordering::Relaxed);
        tracing::info!("Capital.com session expired; logging in again");
        self.login().await.map(drop)
    }

    /// The stream reported a dead session: log in again (once for all callers).
    pub async fn renew_session(&self, seen: &Tokens) -> Result<(), CapitalError> {
        let generation = {
            let guard = self.session.lock().await;
            match guard.as_ref() {
                Some(s) if *s.tokens.cst == *seen.cst => s.generation,
                Some(_) => return Ok(()),
                None => 0,
            }
        };
        self.relogin(generation).await
    }

    /// An authenticated call: rate-limited, retried on 429, re-logged-in
    /// once when the session has expired.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        query: &[(&str, String)],
        kind: CallKind,
    ) -> Result<T, CapitalError> {
        let mut relogged = false;
        loop {
            let current = self.session.lock().await.as_ref().map(|s| (s.tokens.clone(), s.generation));
            let Some((tokens, generation)) = current else {
                self.ensure_session().await?;
                continue;
            };
            if kind == CallKind::Trading {
                transport::until_ready(&self.trading).await;
            }
            match self.call_raw::<B, T>(method.clone(), path, body, Some(&tokens), query).await {
                Ok((headers, value)) => {
                    // Tokens are echoed on every response; keep the newest.
                    if let Some(fresh) = tokens_from(&headers) {
                        let mut guard = self.session.lock().await;
                        if let Some(s) = guard.as_mut().filter(|s| s.generation == generation) {
                            s.tokens = fresh;
                        }
                    }
                    *self.last_used.lock().await = tokio::time::Instant::now();
                    return Ok(value);
                }
                Err(CapitalError::Api { code, .. }) if code.is_session_expired() && !relogged => {
                    relogged = true;
                    self.relogin(generation).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One HTTP exchange with the rate limits and 429 retries; no session logic.
    async fn call_raw<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        tokens: Option<&Tokens>,
        query: &[(&str, String)],
    ) -> Result<(HeaderMap, T), CapitalError> {
        let endpoint = format!("{method} {path}");
        let mut attempt = 0u32;
        loop {
            transport::until_ready(&self.general).await;
            let mut headers = HeaderMap::new();
            headers.insert("X-CAP-API-KEY", sensitive(&self.credentials.api_key));
            if let Some(t) = tokens {
                headers.insert("CST", sensitive(&t.cst));
                headers.insert("X-SECURITY-TOKEN", sensitive(&t.security_token));
            }
            let body = body.map(|b| serde_json::to_vec(b).map_err(|e| CapitalError::Protocol { endpoint: endpoint.clone(), why: format!("the request does not serialise: {e}") })).transpose()?;
            if body.is_some() {
                headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            let request = HttpRequest { method: method.clone(), path_and_query: transport::with_query(&format!("/api/v1{path}"), query), headers, body };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = self.transport.send(request).await.map_err(|e| match e {
                TransportError::Timeout => CapitalError::Timeout { endpoint: endpoint.clone(), timeout: Duration::from_millis(self.config.timeout_ms) },
                TransportError::Failed(why) => CapitalError::Transport { endpoint: endpoint.clone(), why },
            })?;
            let (status, headers, bytes) = (response.status, response.headers, response.body);
            if status.is_success() {
                let value = serde_json::from_slice(&bytes).map_err(|e| CapitalError::Protocol { endpoint: endpoint.clone(), why: e.to_string() })?;
                return Ok((headers, value));
            }
            let code = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| ApiCode::parse(&b.error_code))
                .unwrap_or_else(|_| ApiCode::Other(format!("no errorCode in a {} reply", status.as_u16())));
            if status == StatusCode::TOO_MANY_REQUESTS || code == ApiCode::TooManyRequests {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                if attempt > self.config.max_retries {
                    return Err(CapitalError::RateLimited { endpoint, attempts: attempt });
                }
                let wait = retry_after(&headers).unwrap_or_else(|| self.backoff(attempt));
                tracing::debug!(endpoint = %endpoint, attempt, wait_ms = wait.as_millis() as u64, "rate-limited (429); backing off");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(CapitalError::Api { endpoint, status: status.as_u16(), code });
        }
    }

    /// Exponential backoff with full jitter: uniform in [base*2^(n-1) / 2, base*2^(n-1)], capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.config.backoff_ms.saturating_mul(1 << (attempt - 1).min(16)).min(self.config.backoff_max_ms).max(1);
        Duration::from_millis(self.jitter.lock().unwrap_or_else(|e| e.into_inner()).gen_range(ceiling / 2..=ceiling))
    }

    pub async fn ping(&self) -> Result<(), CapitalError> {
        self.stats.pings.fetch_add(1, Ordering::Relaxed);
        let s: Status = self.call(Method::GET, "/ping", None::<&()>, &[], CallKind::General).await?;
        if s.status == "OK" { Ok(()) } else { Err(CapitalError::Protocol { endpoint: "GET /ping".into(), why: format!("status {}", s.status) }) }
    }

    /// Server time, ms since the epoch (no session needed).
    pub async fn server_time(&self) -> Result<i64, CapitalError> {
        Ok(self.call_raw::<(), wire::ServerTime>(Method::GET, "/time", None, None, &[]).await?.1.server_time)
    }

    /// Bars of `epic` at `resolution` opened in `[from, to]` (ms), oldest first, at most `max` (≤ 1000).
    pub async fn prices(&self, epic: &str, resolution: &str, from_ms: i64, to_ms: i64, max: u32) -> Result<Prices, CapitalError> {
        let query = [
            ("resolution", resolution.to_owned()),
            ("max", max.to_string()),
            ("from", wire::format_query_time(from_ms)),
            ("to", wire::format_query_time(to_ms)),
        ];
        self.call(Method::GET, &format!("/prices/{epic}"), None::<&()>, &query, CallKind::General).await
    }

    pub async fn market(&self, epic: &str) -> Result<wire::MarketDetails, CapitalError> {
        self.call(Method::GET, &format!("/markets/{epic}"), None::<&()>, &[], CallKind::General).await
    }

    // ---- Dealing ------------------------------------------------------------

    /// `POST /positions`: a market deal. The reference only says it was received: see [`RestClient::confirm`].
    pub async fn open_position(&self, request: &wire::DealRequest) -> Result<String, CapitalError> {
        let r: wire::DealReference = self.call(Method::POST, "/positions", Some(request), &[], CallKind::Trading).await?;
        Ok(r.deal_reference)
    }

    /// `POST /workingorders`: a limit or stop order (`level` and `order_type` set).
    pub async fn create_working_order(&self, request: &wire::DealRequest) -> Result<String, CapitalError> {
        let r: wire::DealReference = self.call(Method::POST, "/workingorders", Some(request), &[], CallKind::Trading).await?;
        Ok(r.deal_reference)
    }

    /// `GET /confirms/{dealReference}`: what became of a deal.
    pub async fn confirm(&self, deal_reference: &str) -> Result<wire::Confirm, CapitalError> {
        self.call(Method::GET, &format!("/confirms/{deal_reference}"), None::<&()>, &[], CallKind::General).await
    }

    /// `GET /session`: the account in use and its time zone.
    pub async fn session_details(&self) -> Result<wire::SessionDetails, CapitalError> {
        self.call(Method::GET, "/session", None::<&()>, &[], CallKind::General).await
    }

    pub async fn positions(&self) -> Result<wire::Positions, CapitalError> {
        self.call(Method::GET, "/positions", None::<&()>, &[], CallKind::General).await
    }

    pub async fn working_orders(&self) -> Result<wire::WorkingOrders, CapitalError> {
        self.call(Method::GET, "/workingorders", None::<&()>, &[], CallKind::General).await
    }

    /// `DELETE /positions/{dealId}`: closes the whole position; returns its `p_` reference.
    pub async fn close_position(&self, deal_id: &str) -> Result<String, CapitalError> {
        let r: wire::DealReference = self.call(Method::DELETE, &format!("/positions/{deal_id}"), None::<&()>, &[], CallKind::General).await?;
        Ok(r.deal_reference)
    }

    /// `PUT /positions/{dealId}`: stop and profit levels.
    pub async fn amend_position(&self, deal_id: &str, amend: &wire::AmendRequest) -> Result<String, CapitalError> {
        let r: wire::DealReference = self.call(Method::PUT, &format!("/positions/{deal_id}"), Some(amend), &[], CallKind::General).await?;
        Ok(r.deal_reference)
    }

    /// `PUT /workingorders/{dealId}`: level and good-till date.
    pub async fn amend_working_order(&self, deal_id: &str, amend: &wire::AmendRequest) -> Result<String, CapitalError> {
        let r: wire::DealReference = self.call(Method::PUT, &format!("/workingorders/{deal_id}"), Some(amend), &[], CallKind::General).await?;
        Ok(r.deal_reference)
    }

    pub async fn delete_working_order(&self, deal_id: &str) -> Result<String, CapitalError> {
        let r: wire::DealReference = self.call(Method::DELETE, &format!("/workingorders/{deal_id}"), None::<&()>, &[], CallKind::General).await?;
        Ok(r.deal_reference)
    }

    pub async fn preferences(&self) -> Result<wire::Preferences, CapitalError> {
        self.call(Method::GET, "/accounts/preferences", None::<&()>, &[], CallKind::General).await
    }

    /// The accounts of the login, with their balances (`GET /accounts`).
    pub async fn accounts(&self) -> Result<Vec<wire::Account>, CapitalError> {
        let r: wire::Accounts = self.call(Method::GET, "/accounts", None::<&()>, &[], CallKind::General).await?;
        Ok(r.accounts)
    }

    /// Cash movements of the last `period_secs` seconds (server time, at most a day).
    pub async fn transactions_last(&self, period_secs: i64) -> Result<Vec<wire::Transaction>, CapitalError> {
        let query = [("lastPeriod", period_secs.to_string())];
        let r: wire::Transactions = self.call(Method::GET, "/history/transactions", None::<&()>, &query, CallKind::General).await?;
        Ok(r.transactions)
    }

    /// Detailed activities of the last `period_secs` seconds (server time, at most a day).
    pub async fn activity_last(&self, period_secs: i64) -> Result<Vec<wire::Activity>, CapitalError> {
        let query = [("lastPeriod", period_secs.to_string()), ("detailed", "true".to_owned())];
        let r: wire::Activities = self.call(Method::GET, "/history/activity", None::<&()>, &query, CallKind::General).await?;
        Ok(r.activities)
    }

    /// Detailed activities from `from_ms` to now (server time; at most one day back).
    pub async fn activity_since(&self, from_ms: i64) -> Result<Vec<wire::Activity>, CapitalError> {
        let query = [("from", wire::format_query_time(from_ms)), ("detailed", "true".to_owned())];
        let r: wire::Activities = self.call(Method::GET, "/history/activity", None::<&()>, &query, CallKind::General).await?;
        Ok(r.activities)
    }

    /// Detailed activities from `from_ms` to `to_ms` (server time; at most a
    /// day apart, however long ago), of one deal if `deal_id` is given.
    pub async fn activity_between(&self, from_ms: i64, to_ms: i64, deal_id: Option<&str>) -> Result<Vec<wire::Activity>, CapitalError> {
        let mut query = vec![("from", wire::format_query_time(from_ms)), ("to", wire::format_query_time(to_ms)), ("detailed", "true".to_owned())];
        if let Some(id) = deal_id {
            query.push(("dealId", id.to_owned()));
        }
        let r: wire::Activities = self.call(Method::GET, "/history/activity", None::<&()>, &query, CallKind::General).await?;
        Ok(r.activities)
    }

    pub async fn logout(&self) -> Result<(), CapitalError> {
        if self.session.lock().await.is_none() {
            return Ok(());
        }
        let _: Status = self.call(Method::DELETE, "/session", None::<&()>, &[], CallKind::General).await?;
        *self.session.lock().await = None;
        Ok(())
    }

    /// Pings whenever the session has been idle for `keep_alive_secs`, until dropped.
    pub fn keep_alive(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let client = Arc::downgrade(self);
        let idle = Duration::from_secs(self.config.keep_alive_secs.max(1));
        tokio::spawn(async move {
            loop {
                let Some(c) = client.upgrade() else { return };
                let due = *c.last_used.lock().await + idle;
                drop(c);
                tokio::time::sleep_until(due).await;
                let Some(c) = client.upgrade() else { return };
                if *c.last_used.lock().await + idle <= tokio::time::Instant::now() + Duration::from_millis(5)
                    && let Err(e) = c.ping().await
                {
                    tracing::warn!(error = %e, "keep-alive ping failed");
                    // Do not spin on a dead connection.
                    *c.last_used.lock().await = tokio::time::Instant::now();
                }
            }
        })
    }
}

fn sensitive(value: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    v.set_sensitive(true);
    v
}

fn tokens_from(headers: &HeaderMap) -> Option<Tokens> {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty()).map(|s| Zeroizing::new(s.to_owned()));
    Some(Tokens { cst: get("CST")?, security_token: get("X-SECURITY-TOKEN")? })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers.get("Retry-After")?.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(60.0)))
}

/// `base64(RSA-PKCS#1 v1.5(base64(password + "|" + timeStamp)))` with the
/// server's SPKI DER key, as the API's documentation and official samples do.
pub fn encrypt_password(password: &str, key: &EncryptionKey) -> Result<String, CapitalError> {
    use rsa::pkcs8::DecodePublicKey;
    let der = B64.decode(key.encryption_key.trim()).map_err(|e| CapitalError::Encryption(format!("the encryption key is not base64: {e}")))?;
    let public = rsa::RsaPublicKey::from_public_key_der(&der).map_err(|e| CapitalError::Encryption(format!("the encryption key is not an RSA SPKI key: {e}")))?;
    // Both the joined text and its base64 hold the password: both are zeroised.
    let joined = Zeroizing::new(format!("{password}|{}", key.time_stamp));
    let plain = Zeroizing::new(B64.encode(joined.as_bytes()));
    let sealed = public
        .encrypt(&mut rand::thread_rng(), rsa::Pkcs1v15Encrypt, plain.as_bytes())
        .map_err(|e| CapitalError::Encryption(format!("RSA encryption failed: {e}")))?;
    Ok(B64.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_goes_in_clear_only_to_this_machine() {
        for ok in ["https://demo-api-capital.backend-capital.com", "http://127.0.0.1:18080", "http://localhost:1", "http://[::1]:8080"] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [("http://demo-api-capital.backend-capital.com", "in clear"), ("http://10.0.0.5:18080", "in clear"), ("ftp://127.0.0.1", "scheme"), ("not a url", "")] {
            let e = check_base_url(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(why), "{e}");
        }
        let credentials = crate::CapitalCredentials { api_key: "k".into(), identifier: "i".into(), password: "p".into() };
        let config = RestConfig { base_url: "http://192.0.2.1".into(), ..RestConfig::default() };
        assert!(matches!(RestClient::new(config, credentials), Err(CapitalError::BaseUrl { .. })));
    }
}
