//! Reports from the execution journal: trades, P&L and transaction-cost
//! analysis, per plugin and instrument, with filters.
//!
//! - trades: every fill, with its slippage against the decision price (the
//!   last price when the intent became an order) and against the arrival mid
//!   (the market's mid when the order reached the broker), in basis points,
//!   positive when it cost (paid more on a buy, got less on a sell);
//! - pnl: the fills replayed through the same netting as the ledger (fees
//!   and financing in), position and average price left;
//! - tca: notional traded; fees; slippage against decision prices (which
//!   includes the spread crossed: the decision price is the last trade or mid),
//!   split where the arrival is known into delay (decision to arrival: the
//!   market moving while the order travelled) and execution (arrival mid to
//!   fill: the spread and the broker's slippage); financing; the total, in
//!   currency and in basis points of the notional.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use stratbox_sdk::accounting::NetPosition;

use super::journal::{Entry, JournalEvent, SideName};
use stratbox_market::Timestamp;

/// Which fills count.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub plugin: Option<String>,
    pub symbol: Option<String>,
    pub side: Option<SideName>,
    /// Market time, inclusive from, exclusive to.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeRow {
    pub time: Timestamp,
    pub plugin: String,
    pub symbol: String,
    pub side: SideName,
    pub quantity: f64,
    pub price: f64,
    pub fee: f64,
    pub client_id: String,
    pub decision_price: Option<f64>,
    pub slippage_bps: Option<f64>,
    pub arrival_mid: Option<f64>,
    pub arrival_slippage_bps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PnlRow {
    pub plugin: String,
    pub symbol: String,
    pub fills: u64,
    pub bought: f64,
    pub sold: f64,
    pub position: f64,
    pub average_price: f64,
    /// Net of fees and financing.
    pub realised_pnl: f64,
    pub fees: f64,
    pub financing: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcaRow {
    pub plugin: String,
    pub symbol: String,
    pub fills: u64,
    pub notional: f64,
    pub fees: f64,
    pub slippage: f64,
    /// Of the slippage, on fills whose arrival is known: decision to arrival, arrival to fill.
    pub delay: f64,
    pub execution: f64,
    pub financing: f64,
    pub total: f64,
    pub fees_bps: f64,
    pub slippage_bps: f64,
    pub delay_bps: f64,
    pub execution_bps: f64,
    pub total_bps: f64,
}

/// An alarm, or a trading-state change (a breaker trip, a loss limit, the
/// operator), as `stratbox report alarms` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmRow {
    /// Market time.
    pub time: Timestamp,
    /// `alarm` or `state`.
    pub kind: &'static str,
    /// The detector that raised the alarm, or the scope of the state (`global` or a plugin).
    pub source: String,
    /// The alarm's level, or the state set.
    pub level: String,
    /// The alarm's instrument; empty for market-wide alarms and states.
    pub symbol: String,
    pub reason: String,
}

/// Alarms and trading-state changes; `filter.plugin` matches the detector
/// or the state's scope, `filter.side` is ignored.
pub fn alarms(entries: &[Entry], filter: &Filter) -> Vec<AlarmRow> {
    let rows = entries.iter().filter_map(|e| match &e.event {
        JournalEvent::Alarm { detector, level, symbol, reason } => Some(AlarmRow {
            time: e.time,
            kind: "alarm",
            source: detector.clone(),
            level: level.clone(),
            symbol: symbol.clone().unwrap_or_default(),
            reason: reason.clone(),
        }),
        JournalEvent::TradingState { plugin, state, reason, .. } => Some(AlarmRow {
            time: e.time,
            kind: "state",
            source: plugin.clone().unwrap_or_else(|| "global".into()),
            level: format!("{state:?}").to_lowercase(),
            symbol: String::new(),
            reason: reason.clone(),
        }),
        _ => None,
    });
    rows.filter(|r| {
        filter.plugin.as_deref().is_none_or(|p| p == r.source)
            && filter.symbol.as_deref().is_none_or(|s| s == r.symbol)
            && filter.from.is_none_or(|t| r.time >= t)
            && filter.to.is_none_or(|t| r.time < t)
    })
    .collect()
}

/// The fills of `entries` that pass `filter`, with what the reports need.
pub fn trades(entries: &[Entry], filter: &Filter) -> Vec<TradeRow> {
    let mut log = TradeLog::default();
    entries.iter().filter_map(|e| log.ingest(e)).filter(|r| passes(&r.plugin, &r.symbol, r.side, r.time, filter)).collect()
}

/// Reads the journal one entry at a time into trade rows: what a fill's row
/// needs from earlier entries (the universe, decision prices, arrivals) is
/// kept here, so a reader that follows a running journal (the dashboard)
/// builds the same rows as [`trades`] over the whole of it.
#[derive(Debug, Default)]
pub struct TradeLog {
    symbols: Vec<String>,
    decisions: HashMap<String, Option<f64>>,
    arrivals: HashMap<String, f64>,
}

impl TradeLog {
    /// The row of `e` if it is a fill.
    pub fn ingest(&mut self, e: &Entry) -> Option<TradeRow> {
        match &e.event {
            JournalEvent::Instruments { symbols } => self.symbols = symbols.clone(),
            JournalEvent::Order { client_id, decision_price, .. } => {
                self.decisions.insert(client_id.clone(), *decision_price);
            }
            JournalEvent::Arrival { client_id, mid } => {
                self.arrivals.insert(client_id.clone(), *mid);
            }
            JournalEvent::Fill { client_id, plugin, instrument, side, quantity, price, fee, .. } => {
                let decision = self.decisions.get(client_id.as_str()).copied().flatten();
                let arrival = self.arrivals.get(client_id.as_str()).copied();
                // Basis points of `reference`, positive when the fill cost.
                let bps = |reference: f64| {
                    let sign = if *side == SideName::Buy { 1.0 } else { -1.0 };
                    sign * (price - reference) / reference * 1e4
                };
                return Some(TradeRow {
                    time: e.time,
                    plugin: plugin.clone(),
                    symbol: self.symbol(*instrument),
                    side: *side,
                    quantity: *quantity,
                    price: *price,
                    fee: *fee,
                    client_id: client_id.clone(),
                    decision_price: decision,
                    slippage_bps: decision.filter(|d| *d > 0.0).map(bps),
                    arrival_mid: arrival,
                    arrival_slippage_bps: arrival.filter(|a| *a > 0.0).map(bps),
                });
            }
            _ => {}
        }
        None
    }

    /// The symbol of `instrument` in the universe read so far.
    pub fn symbol(&self, instrument: stratbox_market::InstrumentId) -> String {
        self.symbols.get(instrument as usize).cloned().unwrap_or_else(|| format!("#{instrument}"))
    }
}

fn passes(plugin: &str, symbol: &str, side: SideName, time: Timestamp, f: &Filter) -> bool {
    f.plugin.as_deref().is_none_or(|p| p == plugin)
        && f.symbol.as_deref().is_none_or(|s| s == symbol)
        && f.side.is_none_or(|s| s == side)
        && f.from.is_none_or(|t| time >= t)
        && f.to.is_none_or(|t| time < t)
}

/// Financing charged per (plugin, symbol), within the filter's plugin, symbol and time.
fn financing(entries: &[Entry], filter: &Filter) -> BTreeMap<(String, String), f64> {
    let mut symbols: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for e in entries {
        match &e.event {
            JournalEvent::Instruments { symbols: s } => symbols = s.clone(),
            JournalEvent::Financing { plugin, instrument, amount } => {
                let symbol = symbols.get(*instrument as usize).cloned().unwrap_or_else(|| format!("#{instrument}"));
                let in_time = filter.from.is_none_or(|t| e.time >= t) && filter.to.is_none_or(|t| e.time < t);
                if in_time && filter.plugin.as_deref().is_none_or(|p| p == plugin) && filter.symbol.as_deref().is_none_or(|s| s == symbol) {
                    *out.entry((plugin.clone(), symbol)).or_default() += amount;
                }
            }
            _ => {}
        }
    }
    out
}

/// P&L per (plugin, symbol) of the filtered fills.
pub fn pnl(entries: &[Entry], filter: &Filter) -> Vec<PnlRow> {
    let mut by: BTreeMap<(String, String), (NetPosition, PnlRow)> = BTreeMap::new();
    for t in trades(entries, filter) {
        let (pos, row) = by.entry((t.plugin.clone(), t.symbol.clone())).or_insert_with(|| {
            (NetPosition::default(), PnlRow { plugin: t.plugin.clone(), symbol: t.symbol.clone(), fills: 0, bought: 0.0, sold: 0.0, position: 0.0, average_price: 0.0, realised_pnl: 0.0, fees: 0.0, financing: 0.0 })
        });
        let signed = if t.side == SideName::Buy { t.quantity } else { -t.quantity };
        pos.apply_fill(signed, t.price, t.fee);
        row.fills += 1;
        if signed > 0.0 { row.bought += t.quantity } else { row.sold += t.quantity }
        row.fees += t.fee;
    }
    let charges = financing(entries, filter);
    by.into_iter()
        .map(|(key, (pos, mut row))| {
            row.financing = charges.get(&key).copied().unwrap_or(0.0);
            row.position = pos.quantity;
            row.average_price = pos.average_price;
            row.realised_pnl = pos.realised_pnl - row.financing;
            row
        })
        .collect()
}

/// A point of the equity curve, with the drawdown from the peak so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EquityRow {
    pub time: Timestamp,
    pub equity: f64,
    pub realised_pnl: f64,
    pub unrealised_pnl: f64,
    pub gross_exposure: f64,
    pub drawdown: f64,
}

/// The equity curve in the time range of `filter` (its plugin, symbol and side do not apply: equity is the account's).
pub fn equity(entries: &[Entry], filter: &Filter) -> Vec<EquityRow> {
    let mut peak = f64::MIN;
    entries
        .iter()
        .filter_map(|e| match e.event {
            JournalEvent::Equity { equity, realised, unrealised, gross_exposure } => Some((e.time, equity, realised, unrealised, gross_exposure)),
            _ => None,
        })
        .filter(|(t, ..)| filter.from.is_none_or(|f| *t >= f) && filter.to.is_none_or(|to| *t < to))
        .map(|(time, equity, realised_pnl, unrealised_pnl, gross_exposure)| {
            peak = peak.max(equity);
            let drawdown = if peak > 0.0 { (peak - equity) / peak } else { 0.0 };
            EquityRow { time, equity, realised_pnl, unrealised_pnl, gross_exposure, drawdown }
        })
        .collect()
}

/// Transaction costs per (plugin, symbol) of the filtered fills.
pub fn tca(entries: &[Entry], filter: &Filter) -> Vec<TcaRow> {
    tca_of(&trades(entries, filter), &financing(entries, filter))
}

/// Transaction costs per (plugin, symbol) of `trades`, with the financing
/// charged per (plugin, symbol).
pub fn tca_of<'a>(trades: impl IntoIterator<Item = &'a TradeRow>, financing: &BTreeMap<(String, String), f64>) -> Vec<TcaRow> {
    let mut by: BTreeMap<(String, String), TcaRow> = BTreeMap::new();
    for t in trades {
        let row = by.entry((t.plugin.clone(), t.symbol.clone())).or_insert_with(|| TcaRow {
            plugin: t.plugin.clone(),
            symbol: t.symbol.clone(),
            fills: 0,
            notional: 0.0,
            fees: 0.0,
            slippage: 0.0,
            delay: 0.0,
            execution: 0.0,
            financing: 0.0,
            total: 0.0,
            fees_bps: 0.0,
            slippage_bps: 0.0,
            delay_bps: 0.0,
            execution_bps: 0.0,
            total_bps: 0.0,
        });
        row.fills += 1;
        row.notional += t.quantity * t.price;
        row.fees += t.fee;
        let sign = if t.side == SideName::Buy { 1.0 } else { -1.0 };
        if let Some(d) = t.decision_price {
            row.slippage += sign * (t.price - d) * t.quantity;
            if let Some(a) = t.arrival_mid {
                row.delay += sign * (a - d) * t.quantity;
                row.execution += sign * (t.price - a) * t.quantity;
            }
        }
    }
    by.into_iter()
        .map(|(key, mut row)| {
            row.financing = financing.get(&key).copied().unwrap_or(0.0);
            row.total = row.fees + row.slippage + row.financing;
            let bps = |x: f64| if row.notional > 0.0 { x / row.notional * 1e4 } else { 0.0 };
            (row.fees_bps, row.slippage_bps, row.total_bps) = (bps(row.fees), bps(row.slippage), bps(row.total));
            (row.delay_bps, row.execution_bps) = (bps(row.delay), bps(row.execution));
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::journal::{OrderKind, TifName};

    fn entries() -> Vec<Entry> {
        let order = |id: &str, side, decision| JournalEvent::Order {
            client_id: id.into(),
            plugin: "sma".into(),
            instrument: 1,
            side,
            quantity: 10.0,
            order_type: OrderKind::Market,
            time_in_force: TifName::Gtc,
            tag: 0,
            decision_price: Some(decision),
        };
        let fill = |id: &str, side, price| JournalEvent::Fill { client_id: id.into(), broker_id: 1, plugin: "sma".into(), instrument: 1, side, quantity: 10.0, price, fee: 0.5 };
        let events = vec![
            JournalEvent::Instruments { symbols: vec!["AAPL".into(), "MSFT".into()] },
            order("sma-1", SideName::Buy, 100.0),
            JournalEvent::Arrival { client_id: "sma-1".into(), mid: 100.04 },
            fill("sma-1", SideName::Buy, 100.1),
            JournalEvent::Financing { plugin: "sma".into(), instrument: 1, amount: 0.3 },
            order("sma-2", SideName::Sell, 110.0),
            fill("sma-2", SideName::Sell, 109.8),
        ];
        events.into_iter().enumerate().map(|(k, event)| Entry { seq: k as u64, time: k as i64 * 1_000, event }).collect()
    }

    #[test]
    fn trades_pnl_and_costs_add_up() {
        let e = entries();
        let t = trades(&e, &Filter::default());
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].symbol, "MSFT");
        assert!((t[0].slippage_bps.unwrap() - 10.0).abs() < 1e-9 && (t[1].slippage_bps.unwrap() - 200.0 / 11.0).abs() < 1e-9);
        // Against the arrival mid: 0.06 on 100.04; the second fill has no arrival.
        assert!((t[0].arrival_slippage_bps.unwrap() - 0.06 / 100.04 * 1e4).abs() < 1e-9 && t[1].arrival_slippage_bps.is_none());
        let p = &pnl(&e, &Filter::default())[0];
        // (109.8 - 100.1) x 10 - 2 fees of 0.5 - 0.3 financing.
        assert!((p.realised_pnl - (97.0 - 1.0 - 0.3)).abs() < 1e-9, "{p:?}");
        assert_eq!((p.position, p.fills, p.bought, p.sold), (0.0, 2, 10.0, 10.0));
        let c = &tca(&e, &Filter::default())[0];
        assert!((c.slippage - (1.0 + 2.0)).abs() < 1e-9 && (c.fees - 1.0).abs() < 1e-9 && (c.total - 4.3).abs() < 1e-9, "{c:?}");
        assert!((c.total_bps - 4.3 / 2099.0 * 1e4).abs() < 1e-9);
        // The first fill's 1.0 of slippage: 0.4 of delay, 0.6 of execution.
        assert!((c.delay - 0.4).abs() < 1e-9 && (c.execution - 0.6).abs() < 1e-9, "{c:?}");
        // Filters.
        assert_eq!(trades(&e, &Filter { side: Some(SideName::Sell), ..Filter::default() }).len(), 1);
        assert!(trades(&e, &Filter { symbol: Some("AAPL".into()), ..Filter::default() }).is_empty());
        assert_eq!(trades(&e, &Filter { from: Some(4_000), ..Filter::default() }).len(), 1);
        assert!(pnl(&e, &Filter { plugin: Some("other".into()), ..Filter::default() }).is_empty());
    }

    #[test]
    fn the_equity_curve_keeps_its_drawdown_from_the_peak() {
        let point = |t: i64, equity: f64| Entry { seq: t as u64, time: t, event: JournalEvent::Equity { equity, realised: equity - 100.0, unrealised: 0.0, gross_exposure: 5.0 } };
        let e = vec![point(0, 100.0), point(60, 120.0), point(120, 90.0), point(180, 130.0)];
        let curve = equity(&e, &Filter::default());
        assert_eq!(curve.iter().map(|r| r.equity).collect::<Vec<_>>(), [100.0, 120.0, 90.0, 130.0]);
        assert!((curve[2].drawdown - 0.25).abs() < 1e-12 && curve[3].drawdown == 0.0, "{curve:?}");
        assert_eq!(equity(&e, &Filter { from: Some(60), to: Some(180), ..Filter::default() }).len(), 2);
    }
}
