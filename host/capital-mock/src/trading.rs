//! The mock's dealing endpoints: `/positions`, `/workingorders`, `/confirms`,
//! `/accounts/preferences` and `/history/activity` (rules in [`super::dealing`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::dealing::{DealRecord, MockWorkingOrder};
use super::{Reply, Shared, error, gate, ok};
use stratbox_capital::ApiCode;
use stratbox_capital::wire::{self, AmendRequest, DealReference, DealRequest, Preferences};

/// Largest deal the mock's markets take (their `maxDealSize`).
const MAX_DEAL_SIZE: f64 = 10_000.0;

pub(super) fn bad(code: ApiCode) -> axum::response::Response {
    error(StatusCode::BAD_REQUEST, code)
}

/// The checks every opening request goes through; returns (epic index, buy).
fn check_deal(shared: &Shared, r: &DealRequest) -> Result<(usize, bool), axum::response::Response> {
    if r.epic.is_empty() {
        return Err(bad(ApiCode::NullEpic));
    }
    let &epic = shared.index.get(&r.epic).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundEpic))?;
    let buy = match r.direction.as_str() {
        "BUY" => true,
        "SELL" => false,
        _ => return Err(bad(ApiCode::Other("error.invalid.direction".into()))),
    };
    if !(r.size.is_finite() && r.size > 0.0) {
        return Err(bad(ApiCode::InvalidSize));
    }
    if r.size > MAX_DEAL_SIZE {
        return Err(bad(ApiCode::InvalidSizeMax));
    }
    if r.trailing_stop && r.stop_distance.is_none() || r.guaranteed_stop && (r.trailing_stop || r.stop_level.is_none() && r.stop_distance.is_none()) {
        return Err(bad(ApiCode::StopPrice));
    }
    Ok((epic, buy))
}

fn too_fast() -> axum::response::Response {
    error(StatusCode::TOO_MANY_REQUESTS, ApiCode::TooManyRequests)
}

/// A dealing request was carried out: the faults that hit its reply (a 502
/// from the gateway, or a reply held back past the client's timeout).
async fn after_deal(shared: &Shared, reply: Reply) -> Reply {
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering;
    let n = shared.stats.dealing_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let faults = &shared.config.faults;
    let every = |k: Option<u64>| k.is_some_and(|k| k > 0 && n.is_multiple_of(k));
    if every(faults.executed_then_502_every) {
        shared.stats.executed_then_502.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(request = n, "fault: the deal is done, the gateway answers 502");
        return Err((StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>").into_response());
    }
    if every(faults.lost_reply_every) {
        shared.stats.lost_replies.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(request = n, ms = faults.lost_reply_ms, "fault: the deal is done, its reply is held back");
        tokio::time::sleep(std::time::Duration::from_millis(faults.lost_reply_ms)).await;
    }
    reply
}

pub(super) async fn open_position(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(r): Json<DealRequest>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let (epic, buy) = check_deal(&shared, &r)?;
    let now = shared.now_ms();
    let reference = {
        // One lock from the rate check to the stored confirm: a deal happens whole or not at all.
        let mut d = shared.dealing.lock().expect("dealing lock");
        if !d.opening_allowed() {
            return Err(too_fast());
        }
        let reference = d.next_order_reference();
        let order_id = d.next_deal_id();
        let confirm = d.deal(now, epic, buy, r.size, &reference, &order_id, None, "USER");
        let filled = if confirm.accepted() { confirm.size } else { 0.0 };
        d.deals.push(DealRecord { deal_reference: reference.clone(), epic: r.epic, direction: r.direction, size: r.size, kind: "MARKET".into(), accepted: confirm.accepted(), filled });
        reference
    };
    after_deal(&shared, Ok(ok(tokens, &DealReference { deal_reference: reference }))).await
}

pub(super) async fn confirm(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(reference): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let d = shared.dealing.lock().expect("dealing lock");
    let c = d.confirms.get(&reference).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundDealReference))?;
    Ok(ok(tokens, c))
}

pub(super) async fn positions(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let now = shared.now_ms();
    let d = shared.dealing.lock().expect("dealing lock");
    let positions = d.positions.iter().map(|p| d.position_view(p, now)).collect();
    Ok(ok(tokens, &wire::Positions { positions }))
}

pub(super) async fn position(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(deal_id): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let now = shared.now_ms();
    let d = shared.dealing.lock().expect("dealing lock");
    let p = d.positions.iter().find(|p| p.deal_id == deal_id).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundDealId))?;
    Ok(ok(tokens, &d.position_view(p, now)))
}

pub(super) async fn amend_position(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(deal_id): Path<String>, Json(r): Json<AmendRequest>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let now = shared.now_ms();
    let mut d = shared.dealing.lock().expect("dealing lock");
    let k = d.positions.iter().position(|p| p.deal_id == deal_id).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundDealId))?;
    let p = d.positions[k].clone();
    let exit = d.price(p.epic, !p.buy).unwrap_or(p.level);
    // A stop must be on the losing side of the price, a target on the winning side.
    if let Some(s) = r.stop_level
        && (if p.buy { s >= exit } else { s <= exit })
    {
        return Err(bad(if p.buy { ApiCode::StopLossMax(Some(exit)) } else { ApiCode::StopLossMin(Some(exit)) }));
    }
    if let Some(t) = r.profit_level
        && (if p.buy { t <= exit } else { t >= exit })
    {
        return Err(bad(if p.buy { ApiCode::TakeProfitMin(Some(exit)) } else { ApiCode::TakeProfitMax(Some(exit)) }));
    }
    let reference = format!("p_{deal_id}");
    {
        let p = &mut d.positions[k];
        p.stop_level = r.stop_level.or(p.stop_level);
        p.profit_level = r.profit_level.or(p.profit_level);
    }
    d.record_activity(now, p.epic, &deal_id, "USER", "EDIT_STOP_AND_LIMIT", "ACCEPTED", &reference, p.size, p.buy, p.level);
    let c = d.confirm(now, p.epic, &reference, &deal_id, p.buy, p.size).settled("AMENDED", p.level, "AMENDED");
    d.confirms.insert(reference.clone(), c);
    Ok(ok(tokens, &DealReference { deal_reference: reference }))
}

pub(super) async fn close_position(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(deal_id): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let now = shared.now_ms();
    let mut d = shared.dealing.lock().expect("dealing lock");
    let k = d.positions.iter().position(|p| p.deal_id == deal_id).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundDealId))?;
    let epic = d.positions[k].epic;
    if d.price(epic, true).is_none() {
        // Nothing to close against: refused in the confirm, the position stays.
        let p = d.positions[k].clone();
        let reference = format!("p_{deal_id}");
        let mut c = d.confirm(now, epic, &reference, &deal_id, !p.buy, p.size);
        (c.deal_status, c.reject_reason) = ("REJECTED".into(), Some("MARKET_CLOSED".into()));
        d.confirms.insert(reference.clone(), c);
        return Ok(ok(tokens, &DealReference { deal_reference: reference }));
    }
    let c = d.close(now, k, "USER");
    let record = DealRecord { deal_reference: c.deal_reference.clone(), epic: c.epic.clone(), direction: c.direction.clone(), size: c.size, kind: "CLOSE".into(), accepted: true, filled: c.size };
    d.deals.push(record);
    Ok(ok(tokens, &DealReference { deal_reference: c.deal_reference }))
}

pub(super) async fn working_orders(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let now = shared.now_ms();
    let d = shared.dealing.lock().expect("dealing lock");
    let working_orders = d.working.iter().map(|w| d.working_view(w, now)).collect();
    Ok(ok(tokens, &wire::WorkingOrders { working_orders }))
}

fn good_till(text: Option<&str>, now: i64) -> Result<Option<i64>, axum::response::Response> {
    let Some(text) = text else { return Ok(None) };
    let t = wire::parse_wire_time(text).ok_or_else(|| bad(ApiCode::Other("error.invalid.goodTillDate".into())))?;
    if t <= now {
        return Err(bad(ApiCode::GoodTillDateNotInFuture));
    }
    Ok(Some(t))
}

pub(super) async fn create_working_order(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(r): Json<DealRequest>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let (epic, buy) = check_deal(&shared, &r)?;
    let limit = match r.order_type.as_deref() {
        Some("LIMIT") => true,
        Some("STOP") => false,
        _ => return Err(bad(ApiCode::Other("error.invalid.type".into()))),
    };
    let level = r.level.filter(|l| l.is_finite() && *l > 0.0).ok_or_else(|| bad(ApiCode::Other("error.invalid.level".into())))?;
    let now = shared.now_ms();
    let good_till_ms = good_till(r.good_till_date.as_deref(), now)?;
    let reference = {
        let mut d = shared.dealing.lock().expect("dealing lock");
        if !d.opening_allowed() {
            return Err(too_fast());
        }
        let reference = d.next_order_reference();
        let deal_id = d.next_deal_id();
        let kind = if limit { "LIMIT" } else { "STOP" };
        d.deals.push(DealRecord { deal_reference: reference.clone(), epic: r.epic.clone(), direction: r.direction.clone(), size: r.size, kind: kind.into(), accepted: true, filled: 0.0 });
        d.working.push(MockWorkingOrder { deal_id: deal_id.clone(), reference: reference.clone(), epic, buy, size: r.size, level, limit, good_till_ms, created_ms: now });
        d.record_activity(now, epic, &deal_id, "USER", "WORKING_ORDER", "ACCEPTED", &reference, r.size, buy, level);
        let c = d.confirm(now, epic, &reference, &deal_id, buy, r.size).settled("OPEN", level, "OPENED");
        d.confirms.insert(reference.clone(), c);
        reference
    };
    // A working order already at its level triggers on the next quote, not in this call.
    after_deal(&shared, Ok(ok(tokens, &DealReference { deal_reference: reference }))).await
}

pub(super) async fn amend_working_order(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(deal_id): Path<String>, Json(r): Json<AmendRequest>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let now = shared.now_ms();
    let good_till_ms = good_till(r.good_till_date.as_deref(), now)?;
    if r.level.is_some_and(|l| !(l.is_finite() && l > 0.0)) {
        return Err(bad(ApiCode::Other("error.invalid.level".into())));
    }
    let mut d = shared.dealing.lock().expect("dealing lock");
    let k = d.working.iter().position(|w| w.deal_id == deal_id).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundDealId))?;
    let w = {
        let w = &mut d.working[k];
        w.level = r.level.unwrap_or(w.level);
        w.good_till_ms = good_till_ms.or(w.good_till_ms);
        w.clone()
    };
    let reference = d.next_order_reference();
    d.record_activity(now, w.epic, &deal_id, "USER", "WORKING_ORDER", "MODIFIED", &w.reference, w.size, w.buy, w.level);
    let c = d.confirm(now, w.epic, &reference, &deal_id, w.buy, w.size).settled("AMENDED", w.level, "AMENDED");
    d.confirms.insert(reference.clone(), c);
    Ok(ok(tokens, &DealReference { deal_reference: reference }))
}

pub(super) async fn delete_working_order(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(deal_id): Path<String>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let now = shared.now_ms();
    let mut d = shared.dealing.lock().expect("dealing lock");
    let k = d.working.iter().position(|w| w.deal_id == deal_id).ok_or_else(|| error(StatusCode::NOT_FOUND, ApiCode::NotFoundDealId))?;
    let w = d.working.remove(k);
    let reference = d.next_order_reference();
    d.record_activity(now, w.epic, &deal_id, "USER", "WORKING_ORDER", "CANCELLED", &w.reference, w.size, w.buy, w.level);
    let c = d.confirm(now, w.epic, &reference, &deal_id, w.buy, w.size).settled("DELETED", w.level, "DELETED");
    d.confirms.insert(reference.clone(), c);
    Ok(ok(tokens, &DealReference { deal_reference: reference }))
}

pub(super) async fn preferences(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let hedging = shared.dealing.lock().expect("dealing lock").hedging;
    let leverages = serde_json::json!({ "SHARES": { "current": 5, "available": [1, 2, 3, 5] } });
    Ok(ok(tokens, &Preferences { hedging_mode: hedging, leverages: Some(leverages) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PreferencesChange {
    hedging_mode: Option<bool>,
    leverages: Option<serde_json::Value>,
}

pub(super) async fn set_preferences(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(r): Json<PreferencesChange>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    if r.leverages.as_ref().is_some_and(|l| l.get("SHARES").and_then(|v| v.as_u64()).is_some_and(|v| ![1, 2, 3, 5].contains(&v))) {
        return Err(bad(ApiCode::InvalidLeverage));
    }
    let mut d = shared.dealing.lock().expect("dealing lock");
    if let Some(h) = r.hedging_mode {
        d.hedging = h;
    }
    Ok(ok(tokens, &wire::Status { status: "SUCCESS".into() }))
}

/// The window (ms) of a history query: `from` (and `to`, default now) as
/// wire times, else the last `lastPeriod` seconds (default 600, at most a day).
pub(super) fn history_window(from: Option<&str>, to: Option<&str>, last_period: Option<i64>, now: i64) -> Result<(i64, i64), axum::response::Response> {
    let parse = |t: Option<&str>, code: ApiCode| t.map(|t| wire::parse_wire_time(t).ok_or_else(|| bad(code))).transpose();
    let (from, to) = match (parse(from, ApiCode::InvalidFrom)?, parse(to, ApiCode::InvalidTo)?) {
        (Some(f), to) => (f, to.unwrap_or(now)),
        (None, Some(_)) => return Err(bad(ApiCode::InvalidFrom)),
        (None, None) => {
            let period = last_period.unwrap_or(600);
            if !(1..=86_400).contains(&period) {
                return Err(bad(ApiCode::Other("error.invalid.lastPeriod".into())));
            }
            (now - period * 1000, now)
        }
    };
    if to < from {
        return Err(bad(ApiCode::InvalidDateRange));
    }
    Ok((from, to))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ActivityQuery {
    from: Option<String>,
    to: Option<String>,
    last_period: Option<i64>,
    detailed: Option<bool>,
    deal_id: Option<String>,
}

pub(super) async fn activity(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<ActivityQuery>) -> Reply {
    let tokens = gate(&shared, &headers, true).await?;
    let (from, to) = history_window(q.from.as_deref(), q.to.as_deref(), q.last_period, shared.now_ms())?;
    if to - from > 86_400_000 {
        return Err(bad(ApiCode::InvalidDateRange));
    }
    let d = shared.dealing.lock().expect("dealing lock");
    // With the lag fault, what happened in the last `lag` wall ms is not shown yet.
    let lag = Some(shared.activity_lag_ms.load(std::sync::atomic::Ordering::Relaxed)).filter(|ms| *ms > 0).map(std::time::Duration::from_millis);
    let shown = |k: usize| lag.is_none_or(|lag| d.activity_at.get(k).is_none_or(|at| at.elapsed() >= lag));
    let activities = d
        .activity
        .iter()
        .enumerate()
        .filter(|(k, _)| shown(*k))
        .map(|(_, x)| x)
        // `to` has whole seconds: the rest of its second is in the range.
        .filter(|(t, a)| *t >= from && *t < to + 1000 && q.deal_id.as_ref().is_none_or(|id| &a.deal_id == id))
        .map(|(_, a)| {
            let mut a = a.clone();
            if !q.detailed.unwrap_or(false) {
                a.details = None;
            }
            a
        })
        .collect();
    Ok(ok(tokens, &wire::Activities { activities }))
}

