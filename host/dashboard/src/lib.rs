//! The live dashboard: the running host in a browser.
//!
//! A crate above the engine, served from the host process by axum on a
//! runtime of its own (two threads, at a lower CPU priority: nice 10), so
//! nothing it does runs on the event loop or wins a core from it: the loop only answers one board query per tick
//! ([`stream::TICK`] while a page is open, whatever the number of pages).
//!
//! - `projection.rs`: [`Board`], the dashboard's picture of the host, folded
//!   from the journal and the books; every browser query is answered here.
//! - `stream.rs`: the poller and the one WebSocket stream (snapshot, deltas
//!   with sequence numbers, heartbeats, resynchronisation).
//! - `api.rs`: the page, login, the stream's ticket, trades/orders/TCA/bars,
//!   reports, and the control API's commands under `/api/control`.
//! - `auth.rs`: sessions, tickets, the `Host` and `Origin` checks.
//! - `assets.rs`: the page and scripts embedded in the binary (hashed names, ETag, gzip).
//! - `tls.rs`: TLS (required beyond loopback).
//!
//! It never places an order itself: its commands are the control API's,
//! served by the event loop like the CLI's.

mod api;
mod assets;
mod auth;
pub mod projection;
pub mod stream;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use tokio::sync::oneshot;

use stratbox_engine::{Command, ServerThread};
use stratbox_engine::config::DashboardConfig;
use stratbox_sandbox::PluginFactory;
use stratbox_trading::{JournalReader, RiskConfig};

pub use auth::{SESSION_COOKIE, TICKET_TTL};
pub use projection::{Board, TradeQuery};
pub use tls::TlsError;

/// Where the dashboard writes its address and login link (mode 0600).
pub const DASHBOARD_FILE: &str = "dashboard.json";
/// Connections served at once (pages hold one socket each, plus their requests).
pub const MAX_CONNECTIONS: usize = 64;
/// A request's headers (or a TLS handshake) must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("dashboard: `listen = \"{0}\"` is not an address (e.g. 127.0.0.1:8765)")]
    Address(String),
    #[error("dashboard: cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("dashboard: cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// What the dashboard needs of the host.
pub struct HostHandle {
    pub data_dir: PathBuf,
    pub risk: RiskConfig,
    /// The control API's token (a login with it opens a session); `None`
    /// without a control API: then only the login link logs in.
    pub control_token: Option<String>,
    pub factory: Arc<PluginFactory>,
    pub commands: Sender<Command>,
    /// The journal read off the event loop (`OrderPath::journal_reader`);
    /// `None` (an in-memory journal): pages come with the board ticks.
    pub journal: Option<JournalReader>,
}

/// What `<data_dir>/dashboard.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DashboardEndpoint {
    pub url: String,
    /// Works once, within 15 minutes.
    pub login_url: Option<String>,
    pub tls_fingerprint_sha256: Option<String>,
}

/// A running dashboard; dropping it stops it and removes its file.
pub struct DashboardServer {
    pub addr: SocketAddr,
    pub endpoint: DashboardEndpoint,
    /// Set when a generated self-signed certificate is served.
    pub generated_cert: Option<PathBuf>,
    _server: ServerThread,
}

fn bind(listen: &str) -> Result<std::net::TcpListener, DashboardError> {
    let addr: SocketAddr = listen.parse().map_err(|_| DashboardError::Address(listen.to_owned()))?;
    let bound = match std::net::TcpListener::bind(addr) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {
            tracing::warn!(%addr, "dashboard: the port is in use; listening on a free one instead");
            std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))
        }
        other => other,
    };
    let listener = bound.map_err(|source| DashboardError::Bind { addr: listen.to_owned(), source })?;
    listener.set_nonblocking(true).map_err(|source| DashboardError::Bind { addr: listen.to_owned(), source })?;
    Ok(listener)
}

impl DashboardServer {
    pub fn start(config: &DashboardConfig, host: HostHandle) -> Result<Self, DashboardError> {
        let std_listener = bind(&config.listen)?;
        let addr = std_listener.local_addr().map_err(|source| DashboardError::Bind { addr: config.listen.clone(), source })?;
        let loopback = addr.ip().is_loopback();
        let tls = if !loopback || config.tls_cert.is_some() || config.tls_key.is_some() {
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            names.extend(config.hosts.iter().map(|h| h.rsplit_once(':').map_or(h.as_str(), |(n, _)| n).to_owned()));
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            Some(tls::load(config.tls_cert.as_deref(), config.tls_key.as_deref(), &host.data_dir, names)?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shown = if addr.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), addr.port()) } else { addr };
        let url = format!("{scheme}://{shown}/");
        let token = host.control_token.clone().unwrap_or_else(auth::random_hex);
        let mut hosts = config.hosts.clone();
        hosts.push(shown.to_string());
        let access = auth::Access::new(token, hosts, tls.is_some());
        let login_url = access.login_code().map(|c| format!("{url}#login={c}"));
        let endpoint = DashboardEndpoint { url: url.clone(), login_url, tls_fingerprint_sha256: tls.as_ref().map(|t| t.fingerprint.clone()) };
        let file = host.data_dir.join(DASHBOARD_FILE);
        stratbox_contract::util::write_atomic(&file, &serde_json::to_vec_pretty(&endpoint).expect("serialisable"), true)
            .map_err(|source| DashboardError::Write { path: file.clone(), source })?;

        let hub = stream::Hub::new(Board::new(host.risk.clone()), host.commands.clone(), host.journal.clone());
        let reports_dir = config.reports_dir.clone().unwrap_or_else(|| host.data_dir.join("reports"));
        let app = Arc::new(api::App { access, hub: hub.clone(), reports_dir });
        let control = stratbox_engine::control_routes(host.factory.clone(), host.commands.clone());
        let router = api::router(app, control);
        let generated_cert = tls.as_ref().filter(|t| t.generated).map(|t| t.cert_path.clone());
        let acceptor = tls.map(|t| t.acceptor);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stratbox-dashboard".into())
            .spawn(move || {
                // Below the event loop's priority: under contention for the cores the
                // loop wins, and the dashboard's frames come a little later instead.
                lower_priority();
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("stratbox-dashboard")
                    .on_thread_start(lower_priority)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    tokio::spawn(hub.run_poller());
                    let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener from std");
                    serve(listener, router, acceptor, stop_rx).await;
                });
            })
            .expect("spawning the dashboard thread");
        tracing::info!(%url, tls = scheme == "https", "dashboard listening");
        Ok(Self { addr, endpoint, generated_cert, _server: ServerThread::new(file, stop_tx, thread) })
    }
}

/// The calling thread's nice value to [`NICE`] (Linux: per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; they only change this thread's nice value.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, NICE) != 0 {
            tracing::debug!("dashboard: could not lower the thread's priority");
        }
    }
}

/// The dashboard threads' nice value (the event loop runs at 0).
pub const NICE: i32 = 10;

/// Accepts until `stop`: at most [`MAX_CONNECTIONS`], each with a header
/// (and handshake) timeout; connections may upgrade to a WebSocket.
async fn serve(listener: tokio::net::TcpListener, app: axum::Router, tls: Option<tokio_rustls::TlsAcceptor>, mut stop: oneshot::Receiver<()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    while let Some((stream, peer, slot)) = stratbox_engine::accept_within(&listener, &slots, &mut stop, "dashboard").await {
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => http.serve_connection(hyper_util::rt::TokioIo::new(s), service).with_upgrades().await,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "dashboard: TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "dashboard: TLS handshake timed out"),
                },
                None => http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).with_upgrades().await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "dashboard connection ended");
            }
        });
    }
}
