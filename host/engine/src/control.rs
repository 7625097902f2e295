//! The local control API: a small HTTP/JSON service on loopback that lets the
//! `stratbox` CLI list, load, unload and swap plugins in a running host, and
//! flatten, resume or de-leverage it. The dashboard serves the same routes
//! ([`control_routes`]) under `/api/control`, behind its own session.
//!
//! Every request carries `Authorization: Bearer <token>`. The host writes its
//! address and a fresh random token to `<data_dir>/control.json` (mode 0600)
//! at start and removes it at exit; the CLI reads it from there.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | /v1/status | | run counters |
//! | GET | /v1/plugins | | every plugin, with health and reason |
//! | POST | /v1/plugins | `{"path", "name"?, "params"?, "limits"?, "on_fault"?, "protects"?}` | the new plugin |
//! | DELETE | /v1/plugins/{name} | | the removed plugin |
//! | POST | /v1/plugins/{name}/swap | `{"path", "params"?, "limits"?}` | held time, state bytes, versions |
//! | POST | /v1/shutdown | | |
//!
//! Compilation and `init` of a new build happen on the API's threads; the
//! event loop only performs the final hand-over between two events.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::config::{OrderPolicy, ParamInput, PluginSpec, RestartPolicy};
use stratbox_trading::RiskView;
use crate::runner::{Command, StatusView};
use stratbox_trading::{ADOPTED, AdoptReport, DeleveragePlan, FlattenReport};
use stratbox_sandbox::LimitOverrides;
use stratbox_sandbox::{PluginFactory, SwapReport};
use crate::PluginView;

pub const CONTROL_FILE: &str = "control.json";

/// Connections served at once; more are closed at accept (the CLI and a dashboard need a few).
pub const MAX_CONNECTIONS: usize = 32;
/// A request's headers must arrive within this (a slow client cannot hold a connection open).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// And its body within this.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// No connection lives longer (a plugin load compiles, so this is generous).
pub const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The next connection with a slot of `slots` held for it (a connection past
/// the limit is closed at once), or `None` once `stop` fires. `server` names
/// the server in the log.
pub async fn accept_within(
    listener: &tokio::net::TcpListener,
    slots: &Arc<tokio::sync::Semaphore>,
    stop: &mut oneshot::Receiver<()>,
    server: &str,
) -> Option<(tokio::net::TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut *stop => return None,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "{server}: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => return Some((stream, peer, slot)),
            Err(_) => tracing::warn!(%peer, "{server}: too many connections; closing this one"),
        }
    }
}

/// Serves `app` until `stop`, with at most [`MAX_CONNECTIONS`] connections,
/// each with a header timeout and a lifetime bound.
async fn serve_bounded(listener: tokio::net::TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    while let Some((stream, peer, slot)) = accept_within(&listener, &slots, &mut stop, "control API").await {
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "control API connection ended"),
                Err(_) => tracing::debug!(%peer, "control API connection closed after its lifetime"),
                Ok(Ok(())) => {}
            }
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control API: cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("control API address `{0}` is not a loopback address; the control API only listens on 127.0.0.1 or ::1")]
    NotLoopback(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("no running host found: {path} is missing ({source}); start one with `stratbox run`, or pass --data-dir")]
    NoHost { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a control file: {source}")]
    BadFile { path: PathBuf, source: serde_json::Error },
    #[error("cannot reach the host at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the host refused: {0}")]
    Refused(String),
}

/// What the CLI needs to reach a host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlEndpoint {
    pub url: String,
    pub token: String,
}

/// Body of `POST /v1/plugins` and `.../swap`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    pub path: PathBuf,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, ParamInput>,
    #[serde(default)]
    pub limits: LimitOverrides,
    #[serde(default)]
    pub on_fault: OrderPolicy,
    #[serde(default)]
    pub protects: Vec<String>,
}

impl LoadRequest {
    fn into_spec(self) -> PluginSpec {
        PluginSpec {
            name: self.name,
            path: self.path,
            params: self.params,
            limits: self.limits,
            on_fault: self.on_fault,
            restart: RestartPolicy::default(),
            protects: self.protects,
        }
    }
}

struct Ctl {
    factory: Arc<PluginFactory>,
    commands: Sender<Command>,
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl Ctl {
    /// Sends a command to the event loop and waits for its answer.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let gone = || ApiError(StatusCode::SERVICE_UNAVAILABLE, "the host is shutting down".into());
        self.commands.send(make(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

fn refused(message: String) -> ApiError {
    let code = if message.starts_with("no plugin named") {
        StatusCode::NOT_FOUND
    } else if message.contains("already loaded") || message.contains("is quarantined") {
        StatusCode::CONFLICT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ApiError(code, message)
}

/// Whether `request` carries `Authorization: Bearer <token>`, compared in
/// constant time so timing says nothing about the token.
fn bearer_matches(request: &Request, token: &str) -> bool {
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    presented.is_some_and(|p| bool::from(subtle::ConstantTimeEq::ct_eq(p.as_bytes(), token.as_bytes())))
}

fn unauthorised() -> Response {
    ApiError(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (see control.json)".into()).into_response()
}

/// The control API's routes (`/v1/...`), without authentication: the control
/// server puts the bearer token in front of them, the dashboard its session.
pub fn control_routes(factory: Arc<PluginFactory>, commands: Sender<Command>) -> Router {
    let ctl = Arc::new(Ctl { factory, commands });
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/plugins", get(list).post(load))
        .route("/v1/plugins/{name}", delete(unload))
        .route("/v1/plugins/{name}/swap", post(swap))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/flatten", post(flatten))
        .route("/v1/resume", post(resume))
        .route("/v1/adopt", post(adopt))
        .route("/v1/deleverage", post(deleverage))
        .route("/v1/journal", get(journal))
        // A client that starts a body must finish it.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .with_state(ctl)
}

async fn status(State(ctl): State<Arc<Ctl>>) -> Result<Json<StatusView>, ApiError> {
    ctl.ask(Command::Status).await.map(Json)
}

async fn list(State(ctl): State<Arc<Ctl>>) -> Result<Json<Vec<PluginView>>, ApiError> {
    ctl.ask(Command::List).await.map(Json)
}

async fn start(ctl: &Arc<Ctl>, spec: PluginSpec) -> Result<stratbox_sandbox::Started, ApiError> {
    let factory = ctl.factory.clone();
    tokio::task::spawn_blocking(move || factory.load(spec))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

async fn load(State(ctl): State<Arc<Ctl>>, Json(req): Json<LoadRequest>) -> Result<Json<PluginView>, ApiError> {
    let started = start(&ctl, req.into_spec()).await?;
    ctl.ask(|tx| Command::Install(Box::new(started), tx)).await?.map(Json).map_err(refused)
}

async fn unload(State(ctl): State<Arc<Ctl>>, UrlPath(name): UrlPath<String>) -> Result<Json<PluginView>, ApiError> {
    ctl.ask(|tx| Command::Unload(name, tx)).await?.map(Json).map_err(refused)
}

async fn swap(State(ctl): State<Arc<Ctl>>, UrlPath(name): UrlPath<String>, Json(req): Json<LoadRequest>) -> Result<Json<SwapReport>, ApiError> {
    let mut spec = req.into_spec();
    spec.name = Some(name.clone());
    let started = start(&ctl, spec).await?;
    ctl.ask(|tx| Command::Swap(name, Box::new(started), tx)).await?.map(Json).map_err(refused)
}

async fn flatten(State(ctl): State<Arc<Ctl>>) -> Result<Json<FlattenReport>, ApiError> {
    ctl.ask(Command::Flatten).await.map(Json)
}

async fn resume(State(ctl): State<Arc<Ctl>>) -> Result<Json<RiskView>, ApiError> {
    ctl.ask(Command::Resume).await.map(Json)
}

/// `POST /v1/adopt`: the book positions found at the broker go into.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdoptRequest {
    /// The book (default `adopted`); not a loaded plugin's.
    pub into: Option<String>,
}

async fn adopt(State(ctl): State<Arc<Ctl>>, Json(r): Json<AdoptRequest>) -> Result<Json<AdoptReport>, ApiError> {
    let into = r.into.unwrap_or_else(|| ADOPTED.to_owned());
    ctl.ask(|reply| Command::Adopt { into, reply }).await?.map(Json).map_err(refused)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleverageRequest {
    pub fraction: f64,
    pub steps: u32,
    pub every_secs: u64,
}

async fn deleverage(State(ctl): State<Arc<Ctl>>, Json(r): Json<DeleverageRequest>) -> Result<Json<DeleveragePlan>, ApiError> {
    ctl.ask(|reply| Command::Deleverage { fraction: r.fraction, steps: r.steps, every_secs: r.every_secs, reply }).await?.map(Json).map_err(refused)
}

/// A page of the execution journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalPage {
    pub entries: Vec<stratbox_trading::Entry>,
    /// Where the next page starts, if there may be one.
    pub next: Option<u64>,
}

#[derive(Deserialize)]
struct PageQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// Entries go out in pages so one request never holds the event loop for long.
const JOURNAL_PAGE: usize = 20_000;

async fn journal(State(ctl): State<Arc<Ctl>>, axum::extract::Query(q): axum::extract::Query<PageQuery>) -> Result<Json<JournalPage>, ApiError> {
    let limit = q.limit.unwrap_or(JOURNAL_PAGE).clamp(1, JOURNAL_PAGE);
    let entries = ctl.ask(|reply| Command::Journal { from: q.from.unwrap_or(0), limit, reply }).await?.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let next = (entries.len() == limit).then(|| entries.last().map_or(0, |e| e.seq + 1));
    Ok(Json(JournalPage { entries, next }))
}

async fn shutdown(State(ctl): State<Arc<Ctl>>) -> Result<StatusCode, ApiError> {
    let gone = || ApiError(StatusCode::SERVICE_UNAVAILABLE, "the host is shutting down".into());
    ctl.commands.send(Command::Shutdown).map_err(|_| gone())?;
    Ok(StatusCode::ACCEPTED)
}

/// A server on a thread of its own (the control API, the dashboard): dropping
/// it stops the server, waits for its thread and removes the file that told
/// clients where it is.
pub struct ServerThread {
    file: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// `shutdown` stops the server running on `thread`; `file` advertised it.
    pub fn new(file: PathBuf, shutdown: oneshot::Sender<()>, thread: std::thread::JoinHandle<()>) -> Self {
        Self { file, shutdown: Some(shutdown), thread: Some(thread) }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running control API; dropping it stops the server and removes the control file.
pub struct ControlServer {
    pub addr: SocketAddr,
    /// The bearer token (also what the dashboard's login takes).
    pub token: String,
    _server: ServerThread,
}

impl ControlServer {
    /// Binds `listen` (loopback only), writes the control file into `data_dir`, serves.
    pub fn start(listen: &str, data_dir: &Path, factory: Arc<PluginFactory>, commands: Sender<Command>) -> Result<Self, ControlError> {
        let addr: SocketAddr = listen.parse().map_err(|_| ControlError::NotLoopback(listen.to_owned()))?;
        if !addr.ip().is_loopback() {
            return Err(ControlError::NotLoopback(listen.to_owned()));
        }
        let std_listener = std::net::TcpListener::bind(addr).map_err(|source| ControlError::Bind { addr: listen.to_owned(), source })?;
        std_listener.set_nonblocking(true).map_err(|source| ControlError::Bind { addr: listen.to_owned(), source })?;
        let addr = std_listener.local_addr().map_err(|source| ControlError::Bind { addr: listen.to_owned(), source })?;
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let file = data_dir.join(CONTROL_FILE);
        stratbox_contract::util::write_atomic(&file, &serde_json::to_vec_pretty(&ControlEndpoint { url: format!("http://{addr}"), token: token.clone() }).expect("serialisable"), true)
            .map_err(|source| ControlError::Write { path: file.clone(), source })?;

        let expected = token.clone();
        let app = control_routes(factory, commands).layer(axum::middleware::from_fn(move |request: Request, next: Next| {
            let token = expected.clone();
            async move { if bearer_matches(&request, &token) { next.run(request).await } else { unauthorised() } }
        }));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stratbox-control".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener from std");
                    serve_bounded(listener, app, stop_rx).await;
                });
            })
            .expect("spawning the control thread");
        tracing::info!(%addr, file = %file.display(), "control API listening");
        Ok(Self { addr, token, _server: ServerThread::new(file, stop_tx, thread) })
    }
}

/// How long `load` and `swap` wait for the host: a component not yet in the
/// compiled cache is compiled first (a Python one bundles CPython: 18 MB,
/// seconds in a release build, far longer in a debug one). Other requests
/// keep reqwest's 30 s.
pub const LOAD_TIMEOUT: std::time::Duration = CONNECTION_TIMEOUT;

/// Client side, used by `stratbox plugin list|load|unload|swap`.
pub struct ControlClient {
    endpoint: ControlEndpoint,
    http: reqwest::blocking::Client,
}

impl ControlClient {
    /// Finds the host running with `data_dir`.
    pub fn from_data_dir(data_dir: &Path) -> Result<Self, ControlError> {
        let path = data_dir.join(CONTROL_FILE);
        let text = std::fs::read(&path).map_err(|source| ControlError::NoHost { path: path.clone(), source })?;
        let endpoint = serde_json::from_slice(&text).map_err(|source| ControlError::BadFile { path, source })?;
        Ok(Self::new(endpoint))
    }

    pub fn new(endpoint: ControlEndpoint) -> Self {
        Self { endpoint, http: reqwest::blocking::Client::builder().no_proxy().build().expect("http client") }
    }

    fn send<T: serde::de::DeserializeOwned>(&self, req: reqwest::blocking::RequestBuilder) -> Result<T, ControlError> {
        let url = self.endpoint.url.clone();
        let resp = req.bearer_auth(&self.endpoint.token).send().map_err(|source| ControlError::Unreachable { url: url.clone(), source })?;
        let ok = resp.status().is_success();
        let body: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
        if !ok {
            let msg = body.get("error").and_then(|e| e.as_str()).map(str::to_owned).unwrap_or_else(|| body.to_string());
            return Err(ControlError::Refused(msg));
        }
        serde_json::from_value(body).map_err(|e| ControlError::Refused(format!("unexpected answer: {e}")))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.url)
    }

    pub fn status(&self) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.get(self.url("/v1/status")))
    }

    pub fn list(&self) -> Result<Vec<serde_json::Value>, ControlError> {
        self.send(self.http.get(self.url("/v1/plugins")))
    }

    /// Loads a plugin; a relative path is made absolute first (the host's
    /// working directory may differ).
    pub fn load(&self, mut req: LoadRequest) -> Result<serde_json::Value, ControlError> {
        req.path = std::path::absolute(&req.path).unwrap_or(req.path);
        self.send(self.http.post(self.url("/v1/plugins")).json(&req).timeout(LOAD_TIMEOUT))
    }

    pub fn unload(&self, name: &str) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.delete(self.url(&format!("/v1/plugins/{name}"))))
    }

    pub fn swap(&self, name: &str, mut req: LoadRequest) -> Result<serde_json::Value, ControlError> {
        req.path = std::path::absolute(&req.path).unwrap_or(req.path);
        self.send(self.http.post(self.url(&format!("/v1/plugins/{name}/swap"))).json(&req).timeout(LOAD_TIMEOUT))
    }

    /// Emergency flatten: cancel every order, close every position, halt trading.
    pub fn flatten(&self) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.post(self.url("/v1/flatten")))
    }

    /// Sets trading back to active after a halt.
    pub fn resume(&self) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.post(self.url("/v1/resume")))
    }

    /// Takes what the broker's account holds and the journal does not into a book.
    pub fn adopt(&self, r: &AdoptRequest) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.post(self.url("/v1/adopt")).json(r))
    }

    /// Reduces every position by `fraction` in `steps`, `every_secs` apart.
    pub fn deleverage(&self, r: &DeleverageRequest) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.post(self.url("/v1/deleverage")).json(r))
    }

    /// The running host's whole execution journal, page by page.
    pub fn journal(&self) -> Result<Vec<stratbox_trading::Entry>, ControlError> {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let page: JournalPage = self.send(self.http.get(self.url("/v1/journal")).query(&[("from", from)]))?;
            all.extend(page.entries);
            match page.next {
                Some(next) => from = next,
                None => return Ok(all),
            }
        }
    }

    pub fn shutdown(&self) -> Result<(), ControlError> {
        let url = self.url("/v1/shutdown");
        let resp = self.http.post(&url).bearer_auth(&self.endpoint.token).send().map_err(|source| ControlError::Unreachable { url, source })?;
        if resp.status().is_success() { Ok(()) } else { Err(ControlError::Refused(resp.status().to_string())) }
    }
}
