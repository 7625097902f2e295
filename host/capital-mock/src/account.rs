//! The mock's account and browsing endpoints: `/accounts`, `/accounts/topUp`,
//! `PUT /session`, `/history/transactions`, `/marketnavigation`,
//! `/clientsentiment` and the `/watchlists` family, with the reference's
//! shapes and error codes (sections 2, 4, 5 and 6 of `capital-com-api.md`).
//!
//! Choices where the reference is silent (kept in ARCHITECTURE.md):
//! - one account (`PUT /session` accepts its id and refuses any other);
//! - a top-up outside +-400,000 is 400 `error.invalid.amount`; the balance
//!   never goes past the demo cap of 100,000 (the excess is not credited);
//! - the navigation tree groups the epics by instrument type, one level deep;
//! - client sentiment is a fixed split per epic, drawn from its name;
//! - there is one system watchlist ("Most traded"), neither editable nor deleteable.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::trading::{bad, history_window};
use super::{ACCOUNT_ID, Reply, Shared, error, gate, ok};
use stratbox_capital::ApiCode;
use stratbox_capital::wire::{self, Account, AccountSwitched, Accounts, MarketList, Navigation, NavigationNode, Sentiment, Sentiments, Status};

/// Largest top-up, either way, and the demo balance's ceiling.
const MAX_TOP_UP: f64 = 400_000.0;
const DEMO_BALANCE_CAP: f64 = 100_000.0;
/// Most nodes or markets one navigation call returns (and its default).
const MAX_NAVIGATION: usize = 500;

fn not_found(code: ApiCode) -> axum::response::Response {
    error(StatusCode::NOT_FOUND, code)
}

pub(super) async fn accounts(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let balance = shared.dealing.lock().expect("dealing lock").account();
    let account = Account {
        account_id: ACCOUNT_ID.into(),
        account_name: "USD".into(),
        status: "ENABLED".into(),
        account_type: "CFD".into(),
        preferred: true,
        balance,
        currency: "USD".into(),
        symbol: "$".into(),
    };
    Ok(ok(tokens, &Accounts { accounts: vec![account] }))
}

pub(super) async fn top_up(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(r): Json<wire::TopUp>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    if !(r.amount.is_finite() && r.amount.abs() <= MAX_TOP_UP) {
        return Err(bad(ApiCode::Other("error.invalid.amount".into())));
    }
    let now = shared.now_ms();
    let mut d = shared.dealing.lock().expect("dealing lock");
    let balance = d.balance();
    // Up to the cap, down to nothing: never past either.
    let credited = if r.amount >= 0.0 { r.amount.min((DEMO_BALANCE_CAP - balance).max(0.0)) } else { r.amount.max(-balance.max(0.0)) };
    if credited != 0.0 {
        d.deposit += credited;
        let kind = if credited > 0.0 { "DEPOSIT" } else { "WITHDRAWAL" };
        d.transact(now, kind, "Demo top-up", None, credited);
    }
    Ok(ok(tokens, &wire::TopUpResult { successful: true }))
}

pub(super) async fn switch(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(r): Json<wire::SwitchAccount>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    if r.account_id != ACCOUNT_ID {
        return Err(bad(ApiCode::InvalidAccountId));
    }
    if let Some((cst, _)) = &tokens
        && let Some(s) = shared.sessions.lock().expect("sessions lock").get_mut(cst)
    {
        s.account_id = r.account_id;
    }
    let body = AccountSwitched { trailing_stops_enabled: false, dealing_enabled: true, has_active_demo_accounts: true, has_active_live_accounts: false };
    Ok(ok(tokens, &body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TransactionQuery {
    from: Option<String>,
    to: Option<String>,
    last_period: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub(super) async fn transactions(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<TransactionQuery>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let (from, to) = history_window(q.from.as_deref(), q.to.as_deref(), q.last_period, shared.now_ms())?;
    let d = shared.dealing.lock().expect("dealing lock");
    let transactions = d
        .transactions
        .iter()
        .filter(|(t, x)| *t >= from && *t < to + 1000 && q.kind.as_ref().is_none_or(|k| &x.transaction_type == k))
        .map(|(_, x)| x.clone())
        .collect();
    Ok(ok(tokens, &wire::Transactions { transactions }))
}

/// What kind of market an epic is (`instrumentType`).
pub(super) fn instrument_type(epic: &str) -> &'static str {
    match group(epic) {
        "currencies" => "CURRENCIES",
        "indices" => "INDICES",
        "commodities" => "COMMODITIES",
        "cryptocurrencies" => "CRYPTOCURRENCIES",
        _ => "SHARES",
    }
}

/// The navigation group of an epic, from what kind of market it is.
fn group(epic: &str) -> &'static str {
    const CURRENCIES: &[&str] = &["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "EURGBP", "EURJPY"];
    const INDICES: &[&str] = &["US500", "US100", "US30", "DE40", "UK100", "J225"];
    const COMMODITIES: &[&str] = &["GOLD", "SILVER", "OIL_CRUDE", "OIL_BRENT", "NATURALGAS", "COPPER"];
    const CRYPTO: &[&str] = &["BTCUSD", "ETHUSD", "LTCUSD", "XRPUSD"];
    match epic {
        e if CURRENCIES.contains(&e) => "currencies",
        e if INDICES.contains(&e) => "indices",
        e if COMMODITIES.contains(&e) => "commodities",
        e if CRYPTO.contains(&e) => "cryptocurrencies",
        _ => "shares",
    }
}

const GROUPS: [&str; 5] = ["shares", "indices", "currencies", "commodities", "cryptocurrencies"];

fn node_id(group: &str) -> String {
    format!("hierarchy_v1.{group}_group")
}

fn limit(q: &LimitQuery) -> Result<usize, axum::response::Response> {
    match q.limit {
        None => Ok(MAX_NAVIGATION),
        Some(n) if (1..=MAX_NAVIGATION).contains(&n) => Ok(n),
        Some(_) => Err(bad(ApiCode::InvalidLimit)),
    }
}

#[derive(Deserialize)]
pub(super) struct LimitQuery {
    limit: Option<usize>,
}

pub(super) async fn navigation(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let nodes = GROUPS
        .iter()
        .filter(|g| shared.config.epics.iter().any(|e| group(e) == **g))
        .map(|g| NavigationNode { id: node_id(g), name: format!("{g}_group") })
        .collect();
    Ok(ok(tokens, &Navigation { nodes, markets: None }))
}

pub(super) async fn navigation_node(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(node): Path<String>, Query(q): Query<LimitQuery>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let limit = limit(&q)?;
    let Some(g) = GROUPS.iter().find(|g| node_id(g) == node) else {
        return Err(not_found(ApiCode::Other("error.not-found.nodeId".into())));
    };
    let now = shared.now_ms();
    let d = shared.dealing.lock().expect("dealing lock");
    let markets = d.epics().iter().enumerate().filter(|(_, e)| group(e) == *g).take(limit).map(|(i, _)| d.market_summary(i, now)).collect();
    Ok(ok(tokens, &Navigation { nodes: Vec::new(), markets: Some(markets) }))
}

/// A fixed long/short split per epic, drawn from its name.
fn split(epic: &str) -> Sentiment {
    let h = epic.bytes().fold(2_166_136_261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16_777_619));
    let long = 20.0 + f64::from(h % 6_001) / 100.0;
    Sentiment { market_id: epic.into(), long_position_percentage: long, short_position_percentage: ((100.0 - long) * 100.0).round() / 100.0 }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SentimentQuery {
    market_ids: Option<String>,
}

pub(super) async fn sentiments(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<SentimentQuery>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let ids: Vec<&str> = q.market_ids.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if ids.is_empty() {
        return Err(bad(ApiCode::NullEpic));
    }
    if ids.iter().any(|id| !shared.index.contains_key(*id)) {
        return Err(not_found(ApiCode::NotFoundEpic));
    }
    Ok(ok(tokens, &Sentiments { client_sentiments: ids.into_iter().map(split).collect() }))
}

pub(super) async fn sentiment(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(market): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    if !shared.index.contains_key(&market) {
        return Err(not_found(ApiCode::NotFoundEpic));
    }
    Ok(ok(tokens, &split(&market)))
}

struct MockWatchlist {
    id: String,
    name: String,
    system: bool,
    epics: Vec<usize>,
}

/// The account's watchlists.
pub(super) struct Watchlists {
    lists: Vec<MockWatchlist>,
    next_id: u64,
}

impl Watchlists {
    pub(super) fn new(epics: &[String]) -> Self {
        let system = MockWatchlist { id: "123456".into(), name: "Most traded".into(), system: true, epics: (0..epics.len().min(10)).collect() };
        Self { lists: vec![system], next_id: 123_457 }
    }

    fn find(&mut self, id: &str, code: ApiCode) -> Result<&mut MockWatchlist, axum::response::Response> {
        self.lists.iter_mut().find(|w| w.id == id).ok_or_else(|| not_found(code))
    }
}

pub(super) async fn watchlists(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let w = shared.watchlists.lock().expect("watchlists lock");
    let lists = w
        .lists
        .iter()
        .map(|l| wire::Watchlist { id: l.id.clone(), name: l.name.clone(), editable: !l.system, deleteable: !l.system, default_system_watchlist: l.system })
        .collect();
    Ok(ok(tokens, &wire::Watchlists { watchlists: lists }))
}

pub(super) async fn create_watchlist(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(r): Json<wire::NewWatchlist>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    if r.name.trim().is_empty() || r.name.len() > 20 {
        return Err(bad(ApiCode::WatchlistName));
    }
    let known: Vec<usize> = r.epics.iter().filter_map(|e| shared.index.get(e).copied()).collect();
    let status = if known.len() == r.epics.len() { "SUCCESS" } else { "SUCCESS_NOT_ALL_INSTRUMENTS_ADDED" };
    let mut w = shared.watchlists.lock().expect("watchlists lock");
    let id = w.next_id.to_string();
    w.next_id += 1;
    w.lists.push(MockWatchlist { id: id.clone(), name: r.name, system: false, epics: known });
    Ok(ok(tokens, &wire::WatchlistCreated { watchlist_id: id, status: status.into() }))
}

pub(super) async fn watchlist(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let epics = shared.watchlists.lock().expect("watchlists lock").find(&id, ApiCode::InvalidWatchlist)?.epics.clone();
    let now = shared.now_ms();
    let d = shared.dealing.lock().expect("dealing lock");
    Ok(ok(tokens, &MarketList { markets: epics.into_iter().map(|i| d.market_summary(i, now)).collect() }))
}

pub(super) async fn add_to_watchlist(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>, Json(r): Json<wire::WatchlistEpic>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let &epic = shared.index.get(&r.epic).ok_or_else(|| not_found(ApiCode::NotFoundEpic))?;
    let mut w = shared.watchlists.lock().expect("watchlists lock");
    let list = w.find(&id, ApiCode::NotFoundWatchlist)?;
    if list.system {
        return Err(bad(ApiCode::InvalidWatchlist));
    }
    if !list.epics.contains(&epic) {
        list.epics.push(epic);
    }
    Ok(ok(tokens, &Status { status: "SUCCESS".into() }))
}

pub(super) async fn remove_from_watchlist(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path((id, epic)): Path<(String, String)>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let mut w = shared.watchlists.lock().expect("watchlists lock");
    let list = w.find(&id, ApiCode::NotFoundWatchlist)?;
    let at = shared.index.get(&epic).and_then(|i| list.epics.iter().position(|e| e == i)).ok_or_else(|| not_found(ApiCode::NotFoundEpic))?;
    if list.system {
        return Err(bad(ApiCode::InvalidWatchlist));
    }
    list.epics.remove(at);
    Ok(ok(tokens, &Status { status: "SUCCESS".into() }))
}

pub(super) async fn delete_watchlist(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let mut w = shared.watchlists.lock().expect("watchlists lock");
    let list = w.find(&id, ApiCode::NotFoundWatchlist)?;
    if list.system {
        return Err(bad(ApiCode::InvalidWatchlist));
    }
    w.lists.retain(|l| l.id != id);
    Ok(ok(tokens, &Status { status: "SUCCESS".into() }))
}
