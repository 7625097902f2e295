//! The dashboard's HTTP side: the page and its assets, login, the stream's
//! ticket and socket, the paged queries (trades, orders, TCA, bars), the
//! research reports, and the control API's commands under `/api/control`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use stratbox_engine::board::{BarsQuery, BoardQuery};
use stratbox_trading::SideName;
use stratbox_trading::report::Filter;

use crate::auth::Access;
use crate::projection::{TradeQuery, bar_json};
use crate::stream::Hub;

pub struct App {
    pub access: Access,
    pub hub: Arc<Hub>,
    pub reports_dir: PathBuf,
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// Every request: a known `Host`; `/api/*` but login and the stream need a
/// session or the token; anything but a read needs the same `Origin` when it has one.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if app.access.known_host(headers).is_none() {
        return error(StatusCode::MISDIRECTED_REQUEST, "unknown Host: the dashboard answers to loopback names and its configured `hosts` only");
    }
    let path = request.uri().path();
    let open = matches!(path, "/api/login" | "/api/session" | "/api/stream") || !(path.starts_with("/api/") || path.starts_with("/reports/"));
    if !open && !app.access.authenticated(headers) {
        return error(StatusCode::UNAUTHORIZED, "not logged in: open the login link `stratbox run` printed, or log in with the token in control.json");
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && headers.contains_key(header::ORIGIN) && !app.access.same_origin(headers) {
        return error(StatusCode::FORBIDDEN, "cross-site request refused (its Origin is not this dashboard)");
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry("x-frame-options").or_insert(HeaderValue::from_static("DENY"));
    response
}

async fn index(headers: HeaderMap) -> Response {
    let mut r = crate::assets::serve("/", &headers);
    // Scripts only from here; the stream on the same origin. Inline styles are
    // allowed: the chart library sets them on the elements it creates.
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
    );
    r
}

async fn asset(UrlPath(file): UrlPath<String>, headers: HeaderMap) -> Response {
    crate::assets::serve(&format!("/assets/{file}"), &headers)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    code: Option<String>,
    token: Option<String>,
}

async fn login(State(app): State<Arc<App>>, Json(l): Json<Login>) -> Response {
    match app.access.login(l.code.as_deref(), l.token.as_deref()) {
        Some(id) => {
            let mut r = Json(json!({ "ok": true })).into_response();
            r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&app.access.session_cookie(&id)).expect("ascii"));
            r
        }
        None => error(StatusCode::UNAUTHORIZED, "that login link or token is not valid (a link works once, for 15 minutes)"),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.access.logout(&headers);
    let mut r = Json(json!({ "ok": true })).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("stratbox_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
    r
}

async fn session(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.access.authenticated(&headers) { Json(json!({ "ok": true })).into_response() } else { error(StatusCode::UNAUTHORIZED, "not logged in") }
}

async fn ticket(State(app): State<Arc<App>>) -> Response {
    Json(json!({ "ticket": app.access.ticket(), "expires_in_ms": crate::auth::TICKET_TTL.as_millis() as u64 })).into_response()
}

#[derive(Deserialize)]
struct StreamQuery {
    ticket: String,
}

async fn stream(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<StreamQuery>, ws: WebSocketUpgrade) -> Response {
    if !app.access.same_origin(&headers) {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("none");
        tracing::warn!(%origin, "dashboard: a stream from another origin was refused");
        return error(StatusCode::FORBIDDEN, format!("the stream is for this dashboard's own pages (Origin {origin} refused)"));
    }
    if !app.access.redeem(&q.ticket) {
        return error(StatusCode::UNAUTHORIZED, "the stream's ticket is unknown, used or expired: fetch a new one from /api/ticket");
    }
    let hub = app.hub.clone();
    ws.on_upgrade(move |socket| hub.serve_page(socket))
}

/// Market time in ns from `YYYY-MM-DD` (UTC midnight) or a number of ns.
fn parse_time(name: &str, v: &str) -> Result<i64, Response> {
    if let Ok(ns) = v.parse::<i64>() {
        return Ok(ns);
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| t.and_utc().timestamp_nanos_opt())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("`{name}` is `{v}`: expected a date YYYY-MM-DD or nanoseconds since the epoch")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TradeParams {
    plugin: Option<String>,
    symbol: Option<String>,
    side: Option<String>,
    from: Option<String>,
    to: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

impl TradeParams {
    fn filter(&self) -> Result<Filter, Response> {
        let empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let side = match empty(&self.side).as_deref() {
            None => None,
            Some("buy") => Some(SideName::Buy),
            Some("sell") => Some(SideName::Sell),
            Some(other) => return Err(error(StatusCode::BAD_REQUEST, format!("`side` is `{other}`: expected buy or sell"))),
        };
        Ok(Filter {
            plugin: empty(&self.plugin),
            symbol: empty(&self.symbol),
            side,
            from: empty(&self.from).map(|v| parse_time("from", &v)).transpose()?,
            to: empty(&self.to).map(|v| parse_time("to", &v)).transpose()?,
        })
    }
}

/// Rows a page of trades or orders holds at most.
pub const MAX_PAGE: usize = 1_000;

fn timed(started: Instant, body: serde_json::Value) -> Response {
    let mut r = Json(body).into_response();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    r.headers_mut().insert("server-timing", HeaderValue::from_str(&format!("query;dur={ms:.3}")).expect("ascii"));
    r
}

async fn trades(State(app): State<Arc<App>>, Query(q): Query<TradeParams>) -> Response {
    let started = Instant::now();
    let filter = match q.filter() {
        Ok(f) => f,
        Err(r) => return r,
    };
    let board = app.hub.board.read().unwrap_or_else(|e| e.into_inner());
    let page = board.trades(&TradeQuery { filter, offset: q.offset.unwrap_or(0), limit: q.limit.unwrap_or(100).clamp(1, MAX_PAGE) });
    timed(started, json!(page))
}

async fn trades_csv(State(app): State<Arc<App>>, Query(q): Query<TradeParams>) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    let board = app.hub.board.read().unwrap_or_else(|e| e.into_inner());
    let header = ["time_utc", "time_ns", "plugin", "symbol", "side", "quantity", "price", "fee", "client_id", "decision_price", "slippage_bps", "arrival_mid", "arrival_slippage_bps"];
    let _ = out.write_record(header);
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for t in board.all_trades(&filter) {
        let side = if t.side == SideName::Buy { "buy" } else { "sell" };
        let _ = out.write_record([
            stratbox_market::format_time(t.time),
            t.time.to_string(),
            t.plugin.clone(),
            t.symbol.clone(),
            side.into(),
            t.quantity.to_string(),
            t.price.to_string(),
            t.fee.to_string(),
            t.client_id.clone(),
            opt(t.decision_price),
            opt(t.slippage_bps),
            opt(t.arrival_mid),
            opt(t.arrival_slippage_bps),
        ]);
    }
    drop(board);
    let body = out.into_inner().unwrap_or_default();
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    r.headers_mut().insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"trades.csv\""));
    r
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OrderParams {
    plugin: Option<String>,
    working: Option<bool>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn orders(State(app): State<Arc<App>>, Query(q): Query<OrderParams>) -> Response {
    let started = Instant::now();
    let board = app.hub.board.read().unwrap_or_else(|e| e.into_inner());
    let plugin = q.plugin.as_deref().filter(|p| !p.is_empty());
    let (total, rows) = board.orders(plugin, q.working.unwrap_or(false), q.offset.unwrap_or(0), q.limit.unwrap_or(200).clamp(1, MAX_PAGE));
    timed(started, json!({ "total": total, "rows": rows }))
}

async fn tca(State(app): State<Arc<App>>, Query(q): Query<TradeParams>) -> Response {
    let started = Instant::now();
    let filter = match q.filter() {
        Ok(f) => f,
        Err(r) => return r,
    };
    let board = app.hub.board.read().unwrap_or_else(|e| e.into_inner());
    timed(started, json!({ "rows": board.tca(&filter) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BarParams {
    symbol: String,
    limit: Option<usize>,
}

/// Bars the host keeps of one instrument (its history depth), oldest first.
async fn bars(State(app): State<Arc<App>>, Query(q): Query<BarParams>) -> Response {
    let instrument = {
        let board = app.hub.board.read().unwrap_or_else(|e| e.into_inner());
        board.symbols.iter().position(|s| *s == q.symbol)
    };
    let Some(instrument) = instrument else {
        return error(StatusCode::NOT_FOUND, format!("no instrument `{}` in this host's universe", q.symbol));
    };
    let query = BoardQuery { journal_from: u64::MAX, journal_limit: 0, bars: vec![BarsQuery { instrument: instrument as u32, after: i64::MIN, count: q.limit.unwrap_or(5_000).min(50_000) }], mark_seen: false };
    match app.hub.ask(query).await {
        Ok(tick) => {
            let bars: Vec<_> = tick.bars.first().map(|(_, b)| b.iter().map(bar_json).collect()).unwrap_or_default();
            Json(json!({ "symbol": q.symbol, "bar_secs": tick.bar_secs, "bars": bars })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// A name of one path segment that cannot leave its folder.
fn plain(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// The report folders in `reports_dir`: each with its pages, newest first.
async fn reports(State(app): State<Arc<App>>) -> Response {
    let mut out = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(&app.reports_dir) {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if !plain(&name) || !d.path().is_dir() {
                continue;
            }
            let mut pages: Vec<String> = std::fs::read_dir(d.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .filter(|f| plain(f) && (f.ends_with(".html") || f.ends_with(".json")))
                .collect();
            if pages.is_empty() {
                continue;
            }
            pages.sort();
            let modified = d.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
            out.push(json!({ "name": name, "pages": pages, "modified": modified }));
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r["modified"].as_u64()));
    Json(json!({ "dir": app.reports_dir, "reports": out })).into_response()
}

/// One file of a report, sandboxed: its scripts run without this origin (no session, no API).
async fn report_file(State(app): State<Arc<App>>, UrlPath((dir, file)): UrlPath<(String, String)>) -> Response {
    if !plain(&dir) || !plain(&file) {
        return error(StatusCode::BAD_REQUEST, "a report is named by its folder and file");
    }
    let path: &Path = &app.reports_dir.join(&dir).join(&file);
    match std::fs::read(path) {
        Ok(body) => {
            let mime = if file.ends_with(".html") { "text/html; charset=utf-8" } else if file.ends_with(".json") { "application/json" } else { "application/octet-stream" };
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            r.headers_mut().insert("content-security-policy", HeaderValue::from_static("sandbox allow-scripts"));
            r.headers_mut().insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
            r
        }
        Err(_) => error(StatusCode::NOT_FOUND, format!("no report file {dir}/{file}")),
    }
}

pub fn router(app: Arc<App>, control: Router) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/ticket", post(ticket))
        .route("/api/stream", get(stream))
        .route("/api/trades", get(trades))
        .route("/api/trades.csv", get(trades_csv))
        .route("/api/orders", get(orders))
        .route("/api/tca", get(tca))
        .route("/api/bars", get(bars))
        .route("/api/reports", get(reports))
        .route("/reports/{dir}/{file}", get(report_file))
        .with_state(app.clone())
        .nest("/api/control", control)
        .layer(axum::middleware::from_fn_with_state(app, guard))
}
