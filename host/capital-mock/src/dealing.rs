//! The mock's dealing desk: positions, working orders, confirms, the
//! activity history and the account's hedging preference, following
//! section 5 of `capital-com-api.md`.
//!
//! Choices where the reference is silent or UNCONFIRMED (kept in ARCHITECTURE.md):
//! - market deals fill at the last *published* quote (buy at the offer, sell at the bid),
//!   with no slippage (demo behaviour);
//! - netting (`hedgingMode: false`) closes opposite positions oldest first, then opens
//!   what is left; hedging always opens a new position;
//! - a deal on a closed market, or before the epic's first quote, is received (200 and a
//!   reference) and rejected in its confirm, `rejectReason: MARKET_CLOSED`;
//! - opening calls closer than 100 ms are refused with 429 `error.too-many.requests`;
//! - activities: each position a deal opens or closes is a `POSITION` activity whose
//!   `details.dealReference` is the deal's reference; a working order's creation,
//!   execution, expiry and cancellation are `WORKING_ORDER` activities with the
//!   order's own reference (`ACCEPTED`, `EXECUTED`, `EXPIRED`, `CANCELLED`);
//! - limit orders trigger when the price reaches their level and stop orders when it
//!   crosses it; both fill at that quote's price;
//! - the account's cash: a deposit of 10,000 USD; each (partial) close realises
//!   `(exit - entry) x size` (sign by direction) into the balance, as a `TRADE`
//!   transaction; `profitLoss` is the open positions' P&L at the last quotes;
//!   margin is 5% of their notional (leverage 20, as positions report), and
//!   `available` is balance + P&L - margin; no fees or overnight financing.

use std::collections::HashMap;
// tokio's clock: real time in a normal runtime, virtual under the simulation's paused one.
use tokio::time::Instant;

use rand::Rng;
use serde::Serialize;

use stratbox_capital::wire::{self, AccountInfo, Activity, ActivityDetails, AffectedDeal, Confirm, Transaction};

const EPS: f64 = 1e-9;
/// The account's opening deposit, USD.
pub(super) const DEPOSIT: f64 = 10_000.0;
/// Margin per unit of notional (positions report leverage 20).
const MARGIN: f64 = 0.05;

#[derive(Debug, Clone)]
pub(super) struct MockPosition {
    pub deal_id: String,
    pub working_order_id: Option<String>,
    pub epic: usize,
    pub buy: bool,
    pub size: f64,
    pub level: f64,
    pub created_ms: i64,
    pub stop_level: Option<f64>,
    pub profit_level: Option<f64>,
}

#[derive(Debug, Clone)]
pub(super) struct MockWorkingOrder {
    pub deal_id: String,
    pub reference: String,
    pub epic: usize,
    pub buy: bool,
    pub size: f64,
    pub level: f64,
    pub limit: bool,
    pub good_till_ms: Option<i64>,
    pub created_ms: i64,
}

/// Every dealing request the mock accepted (for tests: the broker's side of the story).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealRecord {
    pub deal_reference: String,
    pub epic: String,
    pub direction: String,
    pub size: f64,
    /// `MARKET`, `LIMIT`, `STOP`, `CLOSE` (a position deleted).
    pub kind: String,
    pub accepted: bool,
    /// How much of it has been dealt (a working order: once executed).
    pub filled: f64,
}

/// What a test can read of the account.
#[derive(Debug, Clone, Serialize)]
pub struct DealingSnapshot {
    pub hedging: bool,
    /// Net size per epic (buys positive), epics with no position left out.
    pub net: HashMap<String, f64>,
    pub positions: usize,
    pub working_orders: usize,
    /// Each working order: (epic, signed size, deal reference).
    pub working: Vec<(String, f64, String)>,
    pub deals: Vec<DealRecord>,
    pub fills: u64,
}

pub(super) struct Dealing {
    pub hedging: bool,
    /// Working orders, stops and targets stop triggering (a test's quiet end).
    pub frozen: bool,
    epics: Vec<String>,
    closed: Vec<bool>,
    timezone_offset_ms: i64,
    seq: u64,
    pub positions: Vec<MockPosition>,
    pub working: Vec<MockWorkingOrder>,
    pub confirms: HashMap<String, Confirm>,
    pub activity: Vec<(i64, Activity)>,
    /// When each activity happened, in wall time (for the lag fault).
    pub activity_at: Vec<Instant>,
    /// Last published (bid, ask) per epic.
    quotes: Vec<Option<(f64, f64)>>,
    last_opening: Option<Instant>,
    /// Draws order references (seeded in process: one seed, one run).
    pub references: rand::rngs::StdRng,
    pub deals: Vec<DealRecord>,
    pub fills: u64,
    /// Cash paid in (the deposit and top-ups) and realised P&L, USD.
    pub deposit: f64,
    pub realised: f64,
    pub transactions: Vec<(i64, Transaction)>,
}

pub(super) fn direction(buy: bool) -> &'static str {
    if buy { "BUY" } else { "SELL" }
}

impl Dealing {
    pub fn new(epics: Vec<String>, closed: Vec<bool>, timezone_offset_hours: i32) -> Self {
        let n = epics.len();
        Self {
            hedging: false,
            frozen: false,
            epics,
            closed,
            timezone_offset_ms: i64::from(timezone_offset_hours) * 3_600_000,
            seq: 0,
            positions: Vec::new(),
            working: Vec::new(),
            confirms: HashMap::new(),
            activity: Vec::new(),
            activity_at: Vec::new(),
            quotes: vec![None; n],
            last_opening: None,
            references: rand::SeedableRng::from_entropy(),
            deals: Vec::new(),
            fills: 0,
            deposit: DEPOSIT,
            realised: 0.0,
            transactions: Vec::new(),
        }
    }

    /// Books a transaction (a deposit, top-up or closed trade).
    pub fn transact(&mut self, now_ms: i64, kind: &str, note: &str, instrument: Option<usize>, amount: f64) {
        let (date, date_utc) = self.times(now_ms);
        self.seq += 1;
        let t = Transaction {
            date,
            date_utc,
            instrument_name: instrument.map(|e| self.epics[e].clone()),
            transaction_type: kind.into(),
            note: note.into(),
            reference: format!("{:08}", self.seq),
            size: format!("{amount:.2}"),
            currency: "USD".into(),
            status: "PROCESSED".into(),
        };
        self.transactions.push((now_ms, t));
    }

    /// Realises the P&L of closing `size` of a position opened at `entry`.
    fn realise(&mut self, now_ms: i64, epic: usize, long: bool, entry: f64, exit: f64, size: f64) {
        let pnl = if long { exit - entry } else { entry - exit } * size;
        self.realised += pnl;
        self.transact(now_ms, "TRADE", "Trade closed", Some(epic), pnl);
    }

    /// Cash: deposits plus realised P&L.
    pub fn balance(&self) -> f64 {
        self.deposit + self.realised
    }

    /// The account's balance as `GET /accounts` and logins report it.
    pub fn account(&self) -> AccountInfo {
        let (mut upl, mut margin) = (0.0, 0.0);
        for p in &self.positions {
            let exit = self.price(p.epic, !p.buy).unwrap_or(p.level);
            upl += if p.buy { exit - p.level } else { p.level - exit } * p.size;
            margin += MARGIN * p.size * exit;
        }
        let balance = self.balance();
        let round = |x: f64| (x * 100.0).round() / 100.0;
        AccountInfo { balance: round(balance), deposit: round(self.deposit), profit_loss: round(upl), available: round(balance + upl - margin) }
    }

    /// A new deal id in Capital.com's shape (`00018509-0001-54c4-0000-000080430164`).
    pub fn next_deal_id(&mut self) -> String {
        self.seq += 1;
        format!("006011e7-0001-54c4-0000-{:012x}", 0x8056_0000 + self.seq)
    }

    /// A new order reference, `o_` and a random UUID.
    pub fn next_order_reference(&mut self) -> String {
        let r = &mut self.references;
        format!("o_{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", r.r#gen::<u32>(), r.r#gen::<u16>(), r.gen_range(0..0x1000), r.gen_range(0..0x1000), r.r#gen::<u64>() & 0xffff_ffff_ffff)
    }

    /// Opening calls at most one per 100 ms; `false` refuses this one.
    pub fn opening_allowed(&mut self) -> bool {
        let now = Instant::now();
        if self.last_opening.is_some_and(|t| now.duration_since(t).as_millis() < 100) {
            return false;
        }
        self.last_opening = Some(now);
        true
    }

    /// The price a deal would get now, or `None` when the market is closed or has not quoted.
    pub fn price(&self, epic: usize, buy: bool) -> Option<f64> {
        if self.closed[epic] {
            return None;
        }
        self.quotes[epic].map(|(bid, ask)| if buy { ask } else { bid })
    }

    pub fn times(&self, ms: i64) -> (String, String) {
        (wire::format_time_ms(ms + self.timezone_offset_ms), wire::format_time_ms(ms))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record_activity(&mut self, now_ms: i64, epic: usize, deal_id: &str, source: &str, kind: &str, status: &str, reference: &str, size: f64, buy: bool, level: f64) {
        let (date, date_utc) = self.times(now_ms);
        let epic = self.epics[epic].clone();
        let details = ActivityDetails { deal_reference: reference.into(), market_name: epic.clone(), currency: "USD".into(), size, direction: direction(buy).into(), level, guaranteed_stop: false };
        let a = Activity { date, date_utc, epic, deal_id: deal_id.into(), source: source.into(), activity_type: kind.into(), status: status.into(), details: Some(details) };
        self.activity.push((now_ms, a));
        self.activity_at.push(Instant::now());
    }

    /// An accepted confirm with no affected deal yet (callers add them, and the status).
    pub fn confirm(&self, now_ms: i64, epic: usize, reference: &str, deal_id: &str, buy: bool, size: f64) -> Confirm {
        Confirm {
            date: self.times(now_ms).0,
            status: "OPEN".into(),
            deal_status: "ACCEPTED".into(),
            epic: self.epics[epic].clone(),
            deal_reference: reference.into(),
            deal_id: deal_id.into(),
            affected_deals: Vec::new(),
            level: 0.0,
            size,
            direction: direction(buy).into(),
            guaranteed_stop: false,
            trailing_stop: false,
            reject_reason: None,
        }
    }

    /// Fills `size` at the market: closes opposite positions first when netting,
    /// opens the rest. The confirm is stored under `reference`.
    #[allow(clippy::too_many_arguments)]
    pub fn deal(&mut self, now_ms: i64, epic: usize, buy: bool, size: f64, reference: &str, order_id: &str, working_order_id: Option<&str>, source: &str) -> Confirm {
        let Some(level) = self.price(epic, buy) else {
            let mut c = self.confirm(now_ms, epic, reference, order_id, buy, size);
            (c.deal_status, c.reject_reason) = ("REJECTED".into(), Some("MARKET_CLOSED".into()));
            self.confirms.insert(reference.into(), c.clone());
            return c;
        };
        let mut left = size;
        let mut affected = Vec::new();
        let mut touched = Vec::new();
        let mut closed = Vec::new();
        if !self.hedging {
            for p in self.positions.iter_mut().filter(|p| p.epic == epic && p.buy != buy) {
                if left <= EPS {
                    break;
                }
                let take = p.size.min(left);
                p.size -= take;
                left -= take;
                let status = if p.size <= EPS { "FULLY_CLOSED" } else { "PARTIALLY_CLOSED" };
                affected.push(AffectedDeal { deal_id: p.deal_id.clone(), status: status.into() });
                touched.push((p.deal_id.clone(), take));
                closed.push((p.buy, p.level, take));
            }
            self.positions.retain(|p| p.size > EPS);
        }
        for (long, entry, take) in closed {
            self.realise(now_ms, epic, long, entry, level, take);
        }
        if left > EPS {
            let deal_id = self.next_deal_id();
            self.positions.push(MockPosition {
                deal_id: deal_id.clone(),
                working_order_id: working_order_id.map(str::to_owned),
                epic,
                buy,
                size: left,
                level,
                created_ms: now_ms,
                stop_level: None,
                profit_level: None,
            });
            affected.push(AffectedDeal { deal_id: deal_id.clone(), status: "OPENED".into() });
            touched.push((deal_id, left));
        }
        for (deal_id, take) in touched {
            self.record_activity(now_ms, epic, &deal_id, source, "POSITION", "ACCEPTED", reference, take, buy, level);
        }
        let status = if affected.iter().any(|a| a.status == "OPENED") {
            "OPEN"
        } else if affected.iter().all(|a| a.status == "FULLY_CLOSED") {
            "CLOSED"
        } else {
            "PARTIALLY_CLOSED"
        };
        self.fills += 1;
        let c = Confirm {
            date: self.times(now_ms).0,
            status: status.into(),
            deal_status: "ACCEPTED".into(),
            epic: self.epics[epic].clone(),
            deal_reference: reference.into(),
            deal_id: order_id.into(),
            affected_deals: affected,
            level,
            size,
            direction: direction(buy).into(),
            guaranteed_stop: false,
            trailing_stop: false,
            reject_reason: None,
        };
        self.confirms.insert(reference.into(), c.clone());
        c
    }

    /// Closes a whole position at the market (`DELETE /positions/{dealId}`, stops, targets).
    pub fn close(&mut self, now_ms: i64, k: usize, source: &str) -> Confirm {
        let p = self.positions.remove(k);
        let reference = format!("p_{}", p.deal_id);
        let level = self.price(p.epic, !p.buy).unwrap_or(p.level);
        self.realise(now_ms, p.epic, p.buy, p.level, level, p.size);
        self.record_activity(now_ms, p.epic, &p.deal_id, source, "POSITION", "ACCEPTED", &reference, p.size, !p.buy, level);
        self.fills += 1;
        let c = Confirm {
            date: self.times(now_ms).0,
            status: "CLOSED".into(),
            deal_status: "ACCEPTED".into(),
            epic: self.epics[p.epic].clone(),
            deal_reference: reference.clone(),
            deal_id: p.deal_id.clone(),
            affected_deals: vec![AffectedDeal { deal_id: p.deal_id, status: "FULLY_CLOSED".into() }],
            level,
            size: p.size,
            direction: direction(!p.buy).into(),
            guaranteed_stop: false,
            trailing_stop: false,
            reject_reason: None,
        };
        self.confirms.insert(reference, c.clone());
        c
    }

    /// A published quote: triggers working orders, stops and targets, expires
    /// good-till-date orders.
    pub fn on_quote(&mut self, now_ms: i64, epic: usize, bid: f64, ask: f64) {
        self.quotes[epic] = Some((bid, ask));
        if self.closed[epic] || self.frozen {
            return;
        }
        let mut k = 0;
        while k < self.working.len() {
            let w = &self.working[k];
            if w.epic != epic {
                k += 1;
                continue;
            }
            if w.good_till_ms.is_some_and(|t| now_ms >= t) {
                let w = self.working.remove(k);
                self.record_activity(now_ms, epic, &w.deal_id, "SYSTEM", "WORKING_ORDER", "EXPIRED", &w.reference, w.size, w.buy, w.level);
                continue;
            }
            let price = if w.buy { ask } else { bid };
            // Limits trigger at their level or better; stops once the price crosses them.
            let hit = if w.limit == w.buy { price <= w.level } else { price >= w.level };
            if !hit {
                k += 1;
                continue;
            }
            let w = self.working.remove(k);
            self.record_activity(now_ms, epic, &w.deal_id, "SYSTEM", "WORKING_ORDER", "EXECUTED", &w.reference, w.size, w.buy, price);
            let position_reference = format!("p_{}", w.deal_id);
            if self.deal(now_ms, epic, w.buy, w.size, &position_reference, &w.deal_id, Some(&w.deal_id), "SYSTEM").accepted()
                && let Some(r) = self.deals.iter_mut().rev().find(|r| r.deal_reference == w.reference)
            {
                r.filled += w.size;
            }
        }
        let mut k = 0;
        while k < self.positions.len() {
            let p = &self.positions[k];
            let exit = if p.buy { bid } else { ask };
            let stopped = p.epic == epic && p.stop_level.is_some_and(|s| if p.buy { exit <= s } else { exit >= s });
            let taken = p.epic == epic && p.profit_level.is_some_and(|t| if p.buy { exit >= t } else { exit <= t });
            if stopped || taken {
                self.close(now_ms, k, if stopped { "SL" } else { "TP" });
            } else {
                k += 1;
            }
        }
    }

    /// The epics, in the mock's order.
    pub fn epics(&self) -> &[String] {
        &self.epics
    }

    pub fn market_summary(&self, epic: usize, now_ms: i64) -> wire::MarketSummary {
        let (bid, offer) = self.quotes[epic].unwrap_or((0.0, 0.0));
        let (update_time, update_time_utc) = self.times(now_ms);
        let name = &self.epics[epic];
        wire::MarketSummary {
            epic: name.clone(),
            symbol: name.clone(),
            instrument_name: name.clone(),
            instrument_type: super::account::instrument_type(name).into(),
            expiry: "-".into(),
            market_status: if self.closed[epic] { "CLOSED" } else { "TRADEABLE" }.into(),
            lot_size: 1.0,
            bid,
            offer,
            // The mock keeps no session statistics: the day's range is the current quote.
            high: offer,
            low: bid,
            net_change: 0.0,
            percentage_change: 0.0,
            update_time,
            update_time_utc,
            delay_time: 0,
            streaming_prices_available: true,
            scaling_factor: 1,
            market_modes: vec!["REGULAR".into()],
            pip_position: 2,
            tick_size: 0.01,
        }
    }

    pub fn position_view(&self, p: &MockPosition, now_ms: i64) -> wire::OpenPosition {
        let (created, created_utc) = self.times(p.created_ms);
        let upl = self.price(p.epic, !p.buy).map_or(0.0, |exit| if p.buy { exit - p.level } else { p.level - exit } * p.size);
        wire::OpenPosition {
            position: wire::PositionData {
                contract_size: 1.0,
                created_date: created,
                created_date_utc: created_utc,
                deal_id: p.deal_id.clone(),
                deal_reference: format!("p_{}", p.deal_id),
                working_order_id: p.working_order_id.clone(),
                size: p.size,
                leverage: 20.0,
                upl,
                direction: direction(p.buy).into(),
                level: p.level,
                currency: "USD".into(),
                guaranteed_stop: false,
                stop_level: p.stop_level,
                profit_level: p.profit_level,
            },
            market: self.market_summary(p.epic, now_ms),
        }
    }

    pub fn working_view(&self, w: &MockWorkingOrder, now_ms: i64) -> wire::WorkingOrder {
        let (created, created_utc) = self.times(w.created_ms);
        wire::WorkingOrder {
            working_order_data: wire::WorkingOrderData {
                deal_id: w.deal_id.clone(),
                direction: direction(w.buy).into(),
                epic: self.epics[w.epic].clone(),
                order_size: w.size,
                order_level: w.level,
                time_in_force: if w.good_till_ms.is_some() { "GOOD_TILL_DATE" } else { "GOOD_TILL_CANCELLED" }.into(),
                good_till_date_utc: w.good_till_ms.map(wire::format_time_ms),
                created_date: created,
                created_date_utc: created_utc,
                guaranteed_stop: false,
                order_type: if w.limit { "LIMIT" } else { "STOP" }.into(),
                currency_code: "USD".into(),
            },
            market_data: self.market_summary(w.epic, now_ms),
        }
    }

    pub fn snapshot(&self) -> DealingSnapshot {
        let mut net: HashMap<String, f64> = HashMap::new();
        for p in &self.positions {
            *net.entry(self.epics[p.epic].clone()).or_default() += if p.buy { p.size } else { -p.size };
        }
        let working = self.working.iter().map(|w| (self.epics[w.epic].clone(), if w.buy { w.size } else { -w.size }, w.reference.clone())).collect();
        DealingSnapshot { hedging: self.hedging, net, positions: self.positions.len(), working_orders: self.working.len(), working, deals: self.deals.clone(), fills: self.fills }
    }
}
