//! The dashboard's picture of the host: built from the engine's board ticks
//! (the journal from a cursor, the status, the books), held here so browser
//! queries (trades by filter and page, TCA, orders) never reach the event
//! loop. The journal is read once, in order: trades through the same
//! [`TradeLog`] the reports use, so a row here is the row `stratbox report
//! trades` prints.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};
use stratbox_sdk::accounting::NetPosition;
use stratbox_contract::Timestamp;
use stratbox_engine::board::{BoardTick, PositionRow, ProtectionRow};
use stratbox_trading::report::{self, AlarmRow, Filter, TcaRow, TradeLog, TradeRow};
use stratbox_trading::{Entry, JournalEvent, OrderKind, RiskConfig, SideName, TifName};

/// Market nanoseconds in a year, for annualising (calendar time: the
/// equity points' mean spacing in market time says how many a year holds).
const YEAR_NANOS: f64 = 365.25 * 86_400.0 * 1e9;

/// At most this many points of a series in a snapshot (the newest kept, older thinned).
pub const SNAPSHOT_POINTS: usize = 5_000;
/// Rows of each list in a snapshot (trades, orders, alarms); the rest is paged over REST.
pub const SNAPSHOT_ROWS: usize = 500;
/// At most this many rows of a list in one delta (the page shows the newest; a
/// replay flat out changes thousands of orders between two frames).
pub const DELTA_ROWS: usize = 200;
/// New trades a delta carries (the page keeps the count; the table pages over REST).
pub const DELTA_TRADES: usize = 50;

/// One order as the Orders view shows it: what was asked, each state it went
/// through with its market time, and how it filled.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRecord {
    pub client_id: String,
    pub time: Timestamp,
    pub plugin: String,
    pub symbol: String,
    pub side: SideName,
    pub quantity: f64,
    pub order_type: OrderKind,
    pub time_in_force: TifName,
    pub decision_price: Option<f64>,
    pub arrival_mid: Option<f64>,
    pub filled: f64,
    pub average_fill: Option<f64>,
    pub fees: f64,
    /// Average fill against the decision price, bps, positive when it cost.
    pub slippage_bps: Option<f64>,
    pub state: &'static str,
    pub working: bool,
    pub reason: Option<String>,
    pub history: Vec<(Timestamp, &'static str)>,
}

impl OrderRecord {
    fn to(&mut self, time: Timestamp, state: &'static str, working: bool) {
        self.state = state;
        self.working = working;
        self.history.push((time, state));
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct EquityPoint {
    pub time: Timestamp,
    pub equity: f64,
    pub drawdown: f64,
    pub realised: f64,
    pub unrealised: f64,
    pub gross_exposure: f64,
}

/// Running moments of the equity points' returns (Welford), and their spacing.
#[derive(Debug, Default, Clone, Copy)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
    span_nanos: f64,
}

impl Moments {
    fn add(&mut self, r: f64, dt: f64) {
        self.n += 1;
        let d = r - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (r - self.mean);
        self.span_nanos += dt;
    }

    /// Annualised by the points' mean spacing; `None` under 10 returns.
    fn sharpe(&self) -> Option<f64> {
        if self.n < 10 || self.span_nanos <= 0.0 {
            return None;
        }
        let sd = (self.m2 / (self.n - 1) as f64).sqrt();
        let per_year = YEAR_NANOS / (self.span_nanos / self.n as f64);
        (sd > 0.0).then(|| self.mean / sd * per_year.sqrt())
    }
}

/// Closing fills that made or lost money, per plugin.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct WinLoss {
    pub wins: u64,
    pub closing_fills: u64,
}

/// What changed in one tick, as indices into the board's lists.
#[derive(Debug, Default)]
pub struct Changes {
    trades_from: usize,
    equity_from: usize,
    benchmark_from: usize,
    alarms_from: usize,
    orders: Vec<usize>,
    pub bars: Vec<(String, Vec<stratbox_contract::Bar>)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.bars.is_empty()
    }
}

/// The trades query of the Trades view.
#[derive(Debug, Clone, Default)]
pub struct TradeQuery {
    pub filter: Filter,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Serialize)]
pub struct TradePage<'a> {
    /// Rows matching the filter.
    pub total: usize,
    pub offset: usize,
    /// Newest first.
    pub rows: Vec<&'a TradeRow>,
}

pub struct Board {
    risk: RiskConfig,
    pub next_seq: u64,
    pub symbols: Vec<String>,
    log: TradeLog,
    pub trades: Vec<TradeRow>,
    financing: BTreeMap<(String, String), f64>,
    orders: Vec<OrderRecord>,
    order_index: HashMap<String, usize>,
    equity: Vec<EquityPoint>,
    peak: f64,
    moments: Moments,
    benchmark: Vec<(Timestamp, f64)>,
    first_closes: Vec<Option<f64>>,
    alarms: Vec<AlarmRow>,
    closing: HashMap<(String, String), NetPosition>,
    win_loss: BTreeMap<String, WinLoss>,
    /// The newest tick's parts, as they are sent.
    pub status: Value,
    pub plugins: Value,
    pub positions: Vec<PositionRow>,
    pub protections: Vec<ProtectionRow>,
    pub market_time: Timestamp,
    pub event_done_ms: Option<i64>,
    pub deleverage: Value,
    pub bar_secs: Option<u32>,
    /// The newest bar start sent per charted instrument.
    pub bars_sent: HashMap<u32, Timestamp>,
}

impl Board {
    pub fn new(risk: RiskConfig) -> Self {
        Self {
            risk,
            next_seq: 0,
            symbols: Vec::new(),
            log: TradeLog::default(),
            trades: Vec::new(),
            financing: BTreeMap::new(),
            orders: Vec::new(),
            order_index: HashMap::new(),
            equity: Vec::new(),
            peak: f64::MIN,
            moments: Moments::default(),
            benchmark: Vec::new(),
            first_closes: Vec::new(),
            alarms: Vec::new(),
            closing: HashMap::new(),
            win_loss: BTreeMap::new(),
            status: Value::Null,
            plugins: Value::Array(Vec::new()),
            positions: Vec::new(),
            protections: Vec::new(),
            market_time: 0,
            event_done_ms: None,
            deleverage: Value::Null,
            bar_secs: None,
            bars_sent: HashMap::new(),
        }
    }

    fn symbol(&self, instrument: u32) -> String {
        self.symbols.get(instrument as usize).cloned().unwrap_or_else(|| format!("#{instrument}"))
    }

    /// Takes in one tick; returns what changed.
    pub fn ingest(&mut self, tick: BoardTick) -> Changes {
        let mut changes = Changes {
            trades_from: self.trades.len(),
            equity_from: self.equity.len(),
            benchmark_from: self.benchmark.len(),
            alarms_from: self.alarms.len(),
            ..Changes::default()
        };
        self.symbols = tick.symbols;
        self.journal(&tick.journal, &mut changes);
        self.market_time = tick.status.market_time;
        self.status = serde_json::to_value(&tick.status).unwrap_or(Value::Null);
        self.plugins = serde_json::to_value(&tick.plugins).unwrap_or(Value::Null);
        self.positions = tick.positions;
        self.protections = tick.protections;
        self.event_done_ms = tick.event_done_ms;
        self.deleverage = serde_json::to_value(&tick.deleverage).unwrap_or(Value::Null);
        self.bar_secs = tick.bar_secs;
        self.benchmark_point(&tick.closes);
        for (instrument, bars) in tick.bars {
            if let Some(last) = bars.last() {
                self.bars_sent.insert(instrument, last.start);
                changes.bars.push((self.symbol(instrument), bars));
            }
        }
        changes
    }

    /// The universe bought equally at each instrument's first close, worth the capital then.
    fn benchmark_point(&mut self, closes: &[Option<f64>]) {
        self.first_closes.resize(closes.len(), None);
        let mut sum = 0.0;
        let mut n = 0usize;
        for (first, close) in self.first_closes.iter_mut().zip(closes) {
            if let Some(c) = close.filter(|c| *c > 0.0) {
                let f = *first.get_or_insert(c);
                sum += c / f;
                n += 1;
            }
        }
        let newer = self.benchmark.last().is_none_or(|(t, _)| self.market_time > *t);
        if n > 0 && newer {
            self.benchmark.push((self.market_time, self.risk.capital * sum / n as f64));
        }
    }

    /// Journal entries, in order.
    fn journal(&mut self, entries: &[Entry], changes: &mut Changes) {
        for e in entries {
            self.next_seq = e.seq + 1;
            self.entry(e, changes);
        }
        changes.orders.sort_unstable();
        changes.orders.dedup();
    }

    fn order_mut(&mut self, client_id: &str, changes: &mut Changes) -> Option<&mut OrderRecord> {
        let i = *self.order_index.get(client_id)?;
        changes.orders.push(i);
        self.orders.get_mut(i)
    }

    fn entry(&mut self, e: &Entry, changes: &mut Changes) {
        let row = self.log.ingest(e);
        match &e.event {
            JournalEvent::Instruments { symbols } => self.symbols = symbols.clone(),
            JournalEvent::Order { client_id, plugin, instrument, side, quantity, order_type, time_in_force, decision_price, .. } => {
                let record = OrderRecord {
                    client_id: client_id.clone(),
                    time: e.time,
                    plugin: plugin.clone(),
                    symbol: self.symbol(*instrument),
                    side: *side,
                    quantity: *quantity,
                    order_type: *order_type,
                    time_in_force: *time_in_force,
                    decision_price: *decision_price,
                    arrival_mid: None,
                    filled: 0.0,
                    average_fill: None,
                    fees: 0.0,
                    slippage_bps: None,
                    state: "new",
                    working: true,
                    reason: None,
                    history: vec![(e.time, "new")],
                };
                self.order_index.insert(client_id.clone(), self.orders.len());
                changes.orders.push(self.orders.len());
                self.orders.push(record);
            }
            JournalEvent::Risk { client_id, accepted, reason } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    if *accepted {
                        o.to(e.time, "accepted", true);
                    } else {
                        o.to(e.time, "refused", false);
                        o.reason = reason.clone();
                    }
                }
            }
            JournalEvent::Sent { client_id, .. } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    o.to(e.time, "sent", true);
                }
            }
            JournalEvent::Acknowledged { client_id, .. } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    o.to(e.time, "working", true);
                }
            }
            JournalEvent::BrokerRejected { client_id, reason } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    o.to(e.time, "rejected", false);
                    o.reason = Some(reason.clone());
                }
            }
            JournalEvent::Cancelled { client_id } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    o.to(e.time, "cancelled", false);
                }
            }
            JournalEvent::Expired { client_id } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    o.to(e.time, "expired", false);
                }
            }
            JournalEvent::Arrival { client_id, mid } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    o.arrival_mid = Some(*mid);
                }
            }
            JournalEvent::Fill { client_id, quantity, price, fee, .. } => {
                if let Some(o) = self.order_mut(client_id, changes) {
                    let before = o.filled * o.average_fill.unwrap_or(0.0);
                    o.filled += quantity;
                    o.fees += fee;
                    let average = (before + quantity * price) / o.filled;
                    o.average_fill = Some(average);
                    let sign = if o.side == SideName::Buy { 1.0 } else { -1.0 };
                    o.slippage_bps = o.decision_price.filter(|d| *d > 0.0).map(|d| sign * (average - d) / d * 1e4);
                    let done = o.filled >= o.quantity - 1e-9;
                    o.to(e.time, if done { "filled" } else { "partially-filled" }, !done);
                }
            }
            JournalEvent::Financing { plugin, instrument, amount } => {
                let key = (plugin.clone(), self.symbol(*instrument));
                *self.financing.entry(key).or_default() += amount;
            }
            JournalEvent::Equity { equity, realised, unrealised, gross_exposure } => {
                if let Some(prev) = self.equity.last()
                    && prev.equity > 0.0
                    && e.time > prev.time
                {
                    self.moments.add(equity / prev.equity - 1.0, (e.time - prev.time) as f64);
                }
                self.peak = self.peak.max(*equity);
                let drawdown = if self.peak > 0.0 { (self.peak - equity) / self.peak } else { 0.0 };
                self.equity.push(EquityPoint { time: e.time, equity: *equity, drawdown, realised: *realised, unrealised: *unrealised, gross_exposure: *gross_exposure });
            }
            JournalEvent::Alarm { .. } | JournalEvent::TradingState { .. } => {
                self.alarms.extend(report::alarms(std::slice::from_ref(e), &Filter::default()));
            }
            // The order path's own bookkeeping for restarts: nothing to show.
            JournalEvent::BrokerRef { .. } | JournalEvent::BrokerClose { .. } | JournalEvent::CancelRequested { .. } | JournalEvent::Deleverage { .. } | JournalEvent::RiskBaselines { .. } | JournalEvent::Protection { .. } => {}
        }
        if let Some(t) = row {
            self.count_close(&t);
            self.trades.push(t);
        }
    }

    /// A fill that reduces a position closes part of it: a win when that made money (fees in).
    fn count_close(&mut self, t: &TradeRow) {
        let p = self.closing.entry((t.plugin.clone(), t.symbol.clone())).or_default();
        let signed = if t.side == SideName::Buy { t.quantity } else { -t.quantity };
        let reduces = p.quantity != 0.0 && p.quantity.signum() != signed.signum();
        let before = p.realised_pnl;
        p.apply_fill(signed, t.price, t.fee);
        if reduces {
            let w = self.win_loss.entry(t.plugin.clone()).or_default();
            w.closing_fills += 1;
            if p.realised_pnl > before {
                w.wins += 1;
            }
        }
    }

    /// Trades matching `q`, newest first, one page.
    pub fn trades(&self, q: &TradeQuery) -> TradePage<'_> {
        let f = &q.filter;
        let matching = self.trades.iter().rev().filter(|r| {
            f.plugin.as_deref().is_none_or(|p| p == r.plugin)
                && f.symbol.as_deref().is_none_or(|s| s == r.symbol)
                && f.side.is_none_or(|s| s == r.side)
                && f.from.is_none_or(|t| r.time >= t)
                && f.to.is_none_or(|t| r.time < t)
        });
        let mut total = 0;
        let mut rows = Vec::with_capacity(q.limit);
        for r in matching {
            if total >= q.offset && rows.len() < q.limit {
                rows.push(r);
            }
            total += 1;
        }
        TradePage { total, offset: q.offset, rows }
    }

    /// Every trade matching `filter`, oldest first (the CSV export).
    pub fn all_trades<'a>(&'a self, f: &'a Filter) -> impl Iterator<Item = &'a TradeRow> + 'a {
        self.trades.iter().filter(move |r| {
            f.plugin.as_deref().is_none_or(|p| p == r.plugin)
                && f.symbol.as_deref().is_none_or(|s| s == r.symbol)
                && f.side.is_none_or(|s| s == r.side)
                && f.from.is_none_or(|t| r.time >= t)
                && f.to.is_none_or(|t| r.time < t)
        })
    }

    /// Transaction costs per plugin and instrument of the trades matching `filter`.
    pub fn tca(&self, filter: &Filter) -> Vec<TcaRow> {
        report::tca_of(self.all_trades(filter), &self.financing)
    }

    /// Orders, newest first: the working ones, or all, one page.
    pub fn orders(&self, plugin: Option<&str>, working_only: bool, offset: usize, limit: usize) -> (usize, Vec<&OrderRecord>) {
        let it = self.orders.iter().rev().filter(|o| plugin.is_none_or(|p| p == o.plugin) && (!working_only || o.working));
        let mut total = 0;
        let mut rows = Vec::new();
        for o in it {
            if total >= offset && rows.len() < limit {
                rows.push(o);
            }
            total += 1;
        }
        (total, rows)
    }

    fn thinned<T: Copy>(points: &[T]) -> Vec<T> {
        Self::thinned_to(points, SNAPSHOT_POINTS)
    }

    /// At most about `most` of `points`, evenly spaced, the last always kept.
    fn thinned_to<T: Copy>(points: &[T], most: usize) -> Vec<T> {
        if points.len() <= most {
            return points.to_vec();
        }
        let step = points.len().div_ceil(most);
        let mut v: Vec<T> = points.iter().step_by(step).copied().collect();
        v.push(*points.last().expect("not empty"));
        v
    }

    /// Headline figures of the Overview.
    fn kpis(&self) -> Value {
        let last = self.equity.last();
        let equity = self.status.pointer("/risk/equity").and_then(Value::as_f64).or(last.map(|p| p.equity));
        let (realised, unrealised) = self.plugins.as_array().map_or((0.0, 0.0), |ps| {
            ps.iter().fold((0.0, 0.0), |(r, u), p| {
                (r + p.pointer("/book/realised_pnl").and_then(Value::as_f64).unwrap_or(0.0), u + p.pointer("/book/unrealised_pnl").and_then(Value::as_f64).unwrap_or(0.0))
            })
        });
        let all = self.win_loss.values().fold(WinLoss::default(), |a, w| WinLoss { wins: a.wins + w.wins, closing_fills: a.closing_fills + w.closing_fills });
        let win_rate = |w: &WinLoss| (w.closing_fills > 0).then(|| w.wins as f64 / w.closing_fills as f64);
        let per_plugin: BTreeMap<&String, Value> = self.win_loss.iter().map(|(p, w)| (p, json!({ "win_rate": win_rate(w), "closing_fills": w.closing_fills }))).collect();
        json!({
            "equity": equity,
            "day_pnl": self.status.pointer("/risk/day_pnl"),
            "drawdown": self.status.pointer("/risk/drawdown"),
            "realised": realised,
            "unrealised": unrealised,
            "sharpe": self.moments.sharpe(),
            "win_rate": win_rate(&all),
            "closing_fills": all.closing_fills,
            "by_plugin": per_plugin,
            "trades": self.trades.len(),
        })
    }

    /// Exposure, concentration and every limit's use, in the Risk view's terms.
    fn risk(&self) -> Value {
        let equity = self.status.pointer("/risk/equity").and_then(Value::as_f64).unwrap_or(self.risk.capital);
        let mut gross = 0.0;
        let mut net = 0.0;
        let mut by_instrument: HashMap<u32, f64> = HashMap::new();
        let mut by_plugin: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for p in &self.positions {
            let notional = p.quantity * p.mark;
            gross += notional.abs();
            net += notional;
            *by_instrument.entry(p.instrument).or_default() += notional;
            let e = by_plugin.entry(&p.plugin).or_default();
            e.0 += notional.abs();
            e.1 += notional;
        }
        let (top, top_notional) = by_instrument.iter().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).map_or((None, 0.0), |(i, n)| (Some(self.symbol(*i)), n.abs()));
        let concentration = if equity > 0.0 { top_notional / equity } else { 0.0 };
        let r = &self.risk;
        let share = |used: f64, limit: f64| if limit > 0.0 && limit.is_finite() { Some(used / limit) } else { None };
        let worst_plugin_gross = by_plugin.values().map(|v| v.0).fold(0.0, f64::max);
        let worst_plugin_net = by_plugin.values().map(|v| v.1.abs()).fold(0.0, f64::max);
        let drawdown = self.status.pointer("/risk/drawdown").and_then(Value::as_f64).unwrap_or(0.0);
        let day_pnl = self.status.pointer("/risk/day_pnl").and_then(Value::as_f64).unwrap_or(0.0);
        let open_orders = self.orders.iter().filter(|o| o.working).count();
        let var = self.status.pointer("/risk/var");
        let mut limits = vec![
            json!({ "limit": "max_drawdown", "used": drawdown, "of": r.max_drawdown, "share": share(drawdown, r.max_drawdown) }),
            json!({ "limit": "max_gross_exposure (per plugin)", "used": worst_plugin_gross, "of": r.max_gross_exposure, "share": share(worst_plugin_gross, r.max_gross_exposure) }),
            json!({ "limit": "max_net_exposure (per plugin)", "used": worst_plugin_net, "of": r.max_net_exposure, "share": share(worst_plugin_net, r.max_net_exposure) }),
            json!({ "limit": "max_concentration", "used": concentration, "of": r.max_concentration, "share": share(concentration, r.max_concentration) }),
            json!({ "limit": "max_open_orders", "used": open_orders, "of": r.max_open_orders, "share": share(open_orders as f64, r.max_open_orders as f64) }),
        ];
        if let Some(limit) = r.daily_loss_limit {
            let loss = (-day_pnl).max(0.0);
            limits.push(json!({ "limit": "daily_loss_limit", "used": loss, "of": limit, "share": share(loss, limit) }));
        }
        if let (Some(v), Some(cfg)) = (var, &r.var_limit) {
            let fraction = v.get("fraction").and_then(Value::as_f64).unwrap_or(0.0);
            limits.push(json!({ "limit": "var_limit", "used": fraction, "of": cfg.max_fraction, "share": share(fraction, cfg.max_fraction) }));
        }
        let mut alarms_by: BTreeMap<&str, u64> = BTreeMap::new();
        for a in self.alarms.iter().filter(|a| a.kind == "alarm") {
            *alarms_by.entry(&a.source).or_default() += 1;
        }
        json!({
            "equity": equity,
            "gross": gross,
            "net": net,
            "gross_share": if equity > 0.0 { gross / equity } else { 0.0 },
            "concentration": concentration,
            "largest": top,
            "by_plugin": by_plugin.iter().map(|(p, (g, n))| json!({ "plugin": p, "gross": g, "net": n })).collect::<Vec<_>>(),
            "limits": limits,
            "alarms_by_detector": alarms_by,
        })
    }

    fn order_rows(&self, idx: &[usize]) -> Vec<&OrderRecord> {
        idx.iter().filter_map(|&i| self.orders.get(i)).collect()
    }

    /// Everything a page needs on connect.
    pub fn snapshot(&self, seq: u64) -> Value {
        let recent = self.orders.len().saturating_sub(SNAPSHOT_ROWS);
        let mut orders: Vec<usize> = (recent..self.orders.len()).collect();
        orders.extend((0..recent).filter(|&i| self.orders[i].working));
        orders.sort_unstable();
        let trades_from = self.trades.len().saturating_sub(SNAPSHOT_ROWS);
        let alarms_from = self.alarms.len().saturating_sub(SNAPSHOT_ROWS);
        json!({
            "type": "snapshot",
            "seq": seq,
            "market_time": self.market_time,
            "event_done_ms": self.event_done_ms,
            "capital": self.risk.capital,
            "symbols": self.symbols,
            "bar_secs": self.bar_secs,
            "topics": {
                "status": self.status,
                "plugins": self.plugins,
                "positions": self.positions,
                "protections": self.protections,
                "kpis": self.kpis(),
                "risk": self.risk(),
                "deleverage": self.deleverage,
                "trades": { "rows": &self.trades[trades_from..], "total": self.trades.len() },
                "orders": self.order_rows(&orders),
                "equity": Self::thinned(&self.equity),
                "benchmark": Self::thinned(&self.benchmark),
                "alarms": &self.alarms[alarms_from..],
            }
        })
    }

    /// What changed since the previous frame.
    pub fn delta(&self, seq: u64, c: &Changes, first_unseen_ms: Option<i64>) -> Value {
        let mut topics = serde_json::Map::new();
        topics.insert("status".into(), self.status.clone());
        topics.insert("plugins".into(), self.plugins.clone());
        topics.insert("positions".into(), json!(self.positions));
        topics.insert("protections".into(), json!(self.protections));
        topics.insert("kpis".into(), self.kpis());
        topics.insert("risk".into(), self.risk());
        topics.insert("deleverage".into(), self.deleverage.clone());
        if self.trades.len() > c.trades_from {
            let from = c.trades_from.max(self.trades.len().saturating_sub(DELTA_TRADES));
            topics.insert("trades".into(), json!({ "rows": &self.trades[from..], "total": self.trades.len() }));
        }
        if !c.orders.is_empty() {
            // The working ones among the changed, and the newest changed.
            let mut rows: Vec<usize> = c.orders.iter().copied().filter(|&i| self.orders[i].working).collect();
            rows.drain(..rows.len().saturating_sub(DELTA_ROWS));
            rows.extend(&c.orders[c.orders.len().saturating_sub(DELTA_ROWS)..]);
            rows.sort_unstable();
            rows.dedup();
            topics.insert("orders".into(), json!(self.order_rows(&rows)));
        }
        if self.equity.len() > c.equity_from {
            topics.insert("equity".into(), json!(Self::thinned_to(&self.equity[c.equity_from..], SNAPSHOT_POINTS / 10)));
        }
        if self.benchmark.len() > c.benchmark_from {
            topics.insert("benchmark".into(), json!(&self.benchmark[c.benchmark_from..]));
        }
        if self.alarms.len() > c.alarms_from {
            let from = c.alarms_from.max(self.alarms.len().saturating_sub(DELTA_ROWS));
            topics.insert("alarms".into(), json!(&self.alarms[from..]));
        }
        if !c.bars.is_empty() {
            topics.insert("bars".into(), json!(c.bars.iter().map(|(s, b)| (s.clone(), b.iter().map(bar_json).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>()));
        }
        json!({
            "type": "delta",
            "seq": seq,
            "market_time": self.market_time,
            "event_done_ms": self.event_done_ms,
            "first_unseen_ms": first_unseen_ms,
            "topics": topics,
        })
    }
}

/// A bar as the chart takes it.
pub fn bar_json(b: &stratbox_contract::Bar) -> Value {
    json!({ "start": b.start, "open": b.open, "high": b.high, "low": b.low, "close": b.close, "volume": b.volume })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, side: SideName, quantity: f64, decision: f64) -> JournalEvent {
        JournalEvent::Order {
            client_id: id.into(),
            plugin: "sma".into(),
            instrument: 1,
            side,
            quantity,
            order_type: OrderKind::Market,
            time_in_force: TifName::Gtc,
            tag: 0,
            decision_price: Some(decision),
        }
    }

    fn fill(id: &str, side: SideName, quantity: f64, price: f64) -> JournalEvent {
        JournalEvent::Fill { client_id: id.into(), broker_id: 1, plugin: "sma".into(), instrument: 1, side, quantity, price, fee: 0.5 }
    }

    fn entries() -> Vec<Entry> {
        let accept = |id: &str| JournalEvent::Risk { client_id: id.into(), accepted: true, reason: None };
        let events = vec![
            JournalEvent::Instruments { symbols: vec!["AAPL".into(), "MSFT".into()] },
            order("a", SideName::Buy, 10.0, 100.0),
            accept("a"),
            JournalEvent::Arrival { client_id: "a".into(), mid: 100.05 },
            fill("a", SideName::Buy, 4.0, 100.1),
            fill("a", SideName::Buy, 6.0, 100.2),
            order("b", SideName::Sell, 10.0, 110.0),
            accept("b"),
            fill("b", SideName::Sell, 10.0, 110.0),
            order("c", SideName::Buy, 5.0, 100.0),
            JournalEvent::Risk { client_id: "c".into(), accepted: false, reason: Some("halted: circuit breaker".into()) },
            order("d", SideName::Buy, 10.0, 100.0),
            accept("d"),
            fill("d", SideName::Buy, 10.0, 100.0),
            order("e", SideName::Sell, 10.0, 90.0),
            accept("e"),
            fill("e", SideName::Sell, 10.0, 90.0),
            JournalEvent::Financing { plugin: "sma".into(), instrument: 1, amount: 0.25 },
            JournalEvent::Equity { equity: 1000.0, realised: 0.0, unrealised: 0.0, gross_exposure: 0.0 },
            JournalEvent::Equity { equity: 900.0, realised: 0.0, unrealised: 0.0, gross_exposure: 0.0 },
            JournalEvent::Equity { equity: 950.0, realised: 0.0, unrealised: 0.0, gross_exposure: 0.0 },
        ];
        events.into_iter().enumerate().map(|(k, event)| Entry { seq: k as u64, time: (k as i64 + 1) * 1_000_000_000, event }).collect()
    }

    fn board() -> (Board, Changes) {
        let mut b = Board::new(RiskConfig::default());
        let mut c = Changes::default();
        b.journal(&entries(), &mut c);
        (b, c)
    }

    #[test]
    fn orders_carry_their_state_history_fills_and_slippage() {
        let (b, c) = board();
        assert_eq!(c.orders, vec![0, 1, 2, 3, 4], "every order changed");
        let a = &b.orders[0];
        assert_eq!(a.history.iter().map(|(_, s)| *s).collect::<Vec<_>>(), ["new", "accepted", "partially-filled", "filled"]);
        assert!(!a.working && a.symbol == "MSFT" && a.arrival_mid == Some(100.05));
        let avg = (4.0 * 100.1 + 6.0 * 100.2) / 10.0;
        assert!((a.average_fill.unwrap() - avg).abs() < 1e-12);
        assert!((a.slippage_bps.unwrap() - (avg - 100.0) / 100.0 * 1e4).abs() < 1e-9);
        let refused = &b.orders[2];
        assert_eq!((refused.state, refused.working, refused.reason.as_deref()), ("refused", false, Some("halted: circuit breaker")));
        let (working, rows) = b.orders(None, true, 0, 10);
        assert_eq!((working, rows.len()), (0, 0));
        let (all, rows) = b.orders(Some("sma"), false, 1, 2);
        assert_eq!((all, rows.iter().map(|o| o.client_id.as_str()).collect::<Vec<_>>()), (5, vec!["d", "c"]), "newest first, paged");
    }

    #[test]
    fn trades_and_tca_are_the_reports_own_and_page_newest_first() {
        let (b, _) = board();
        let all = report::trades(&entries(), &Filter::default());
        assert_eq!(b.trades, all, "the same rows as `stratbox report trades`");
        assert_eq!(b.tca(&Filter::default()), report::tca(&entries(), &Filter::default()));
        let page = b.trades(&TradeQuery { filter: Filter::default(), offset: 1, limit: 2 });
        assert_eq!(page.total, 5);
        assert_eq!(page.rows.iter().map(|r| r.client_id.as_str()).collect::<Vec<_>>(), ["d", "b"]);
        let buys = Filter { side: Some(SideName::Buy), from: Some(5_000_000_000), ..Filter::default() };
        let page = b.trades(&TradeQuery { filter: buys.clone(), offset: 0, limit: 10 });
        assert_eq!(page.total, 3);
        assert!(page.rows.iter().all(|r| r.side == SideName::Buy && r.time >= 5_000_000_000));
        assert_eq!(b.all_trades(&buys).count(), 3);
        let none = Filter { symbol: Some("AAPL".into()), ..Filter::default() };
        assert_eq!(b.trades(&TradeQuery { filter: none, offset: 0, limit: 10 }).total, 0);
    }

    #[test]
    fn wins_drawdown_and_the_snapshot() {
        let (b, _) = board();
        // Two round trips: +98.5 (a win, fees in) and -100 (a loss).
        let w = b.win_loss["sma"];
        assert_eq!((w.wins, w.closing_fills), (1, 2));
        assert_eq!(b.equity.len(), 3);
        assert!((b.equity[1].drawdown - 0.1).abs() < 1e-12 && (b.equity[2].drawdown - 0.05).abs() < 1e-12);
        assert_eq!(b.moments.sharpe(), None, "under 10 returns");
        let snap = b.snapshot(7);
        assert_eq!(snap["seq"], 7);
        assert_eq!(snap["topics"]["kpis"]["win_rate"], 0.5);
        assert_eq!(snap["topics"]["trades"]["total"], 5);
        assert_eq!(snap["topics"]["orders"].as_array().unwrap().len(), 5);
        assert_eq!(snap["topics"]["equity"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_series_past_the_snapshot_size_is_thinned_keeping_its_last_point() {
        let v: Vec<u32> = (0..12_345).collect();
        let t = Board::thinned(&v);
        assert!(t.len() <= SNAPSHOT_POINTS + 1 && t[0] == 0 && *t.last().unwrap() == 12_344);
    }
}
