//! The risk engine: every order a plugin's intent turns into is checked here
//! before it reaches a broker, and nothing else can send one.
//!
//! Checks, in order (the first failure is the reason, counted by rule and plugin):
//! 1. trading state: global and the plugin's own (active, reduce-only,
//!    halted); reduce-only lets through only orders that shrink the position
//!    without flipping it; halted lets through nothing but exits, which only
//!    reduce (stop-policy exits and the operator's flatten);
//! 2. per order: instrument allowed, market open (trading hours), quantity
//!    and notional caps, limit and stop prices within a band around the last
//!    price;
//! 3. portfolio: position per instrument (notional), the plugin's gross and
//!    net exposure, concentration in one instrument, open orders;
//! 4. throttles: orders per second per plugin and in all, and a duplicate
//!    (same plugin, instrument, side, quantity and type) within a window.
//!
//! Before all of them: while an earlier order of the plugin in the instrument
//! is in doubt at a remote broker, only exits pass (a target strategy must
//! not re-order into a double position).
//!
//! Every position check takes the worst case of the whole book: the filled
//! position plus every working and in-flight order of the plugin, all buys
//! filling or all sells filling. An order "reduces" only if it shrinks the
//! position even when every other order on the same side fills too.
//!
//! State changes come from losses (a daily loss limit, global and per
//! plugin, and the maximum drawdown from peak equity, 10% by default), from
//! the circuit breaker (an anomaly detector's critical alarm, or the
//! reference instrument falling `drop` intraday), from the portfolio's
//! one-day VaR over its limit ([`var`], reduce-only), from de-leveraging, a
//! failed reconciliation or journal, and from the operator. Each is a
//! [`Cause`] that holds and ends on its own (a breaker halt ending does not
//! lift a daily-loss reduce-only); the strictest cause in force decides.
//! Each has a reason and a time, and raises an [`Alert`].

mod alerts;

pub use alerts::{AlertConfig, AlertSink, AlertStats};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use stratbox_market::{InstrumentId, NANOS_PER_SEC, Timestamp};
use stratbox_contract::{AlarmLevel, OrderType, Side};

/// What plugins may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TradingState {
    Active,
    ReduceOnly,
    Halted,
}

/// Why a trading state is in force. Causes are independent: each is set
/// and cleared on its own, and the strictest one in force applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Set by hand (`stratbox halt`-like commands); older journals' states read as this.
    #[default]
    Operator,
    /// The operator's emergency flatten.
    Flatten,
    /// A de-leveraging in progress (reduce-only until the operator resumes).
    Deleverage,
    DailyLoss,
    Drawdown,
    /// Ends by itself at its `until`.
    CircuitBreaker,
    /// The broker's account did not match the journal (or could not be read):
    /// lifted by a reconciliation that agrees, not by a plain resume.
    Reconciliation,
    /// The execution journal could not be written.
    Journal,
    /// The portfolio's one-day VaR over its limit (`[risk.var_limit]`).
    Var,
}

/// A trading state with why and since when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateRecord {
    pub state: TradingState,
    pub reason: String,
    pub since: Timestamp,
    /// A circuit-breaker halt ends by itself at this time.
    pub until: Option<Timestamp>,
    /// What set it (none while active).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

impl StateRecord {
    fn active(reason: &str, since: Timestamp) -> Self {
        Self { state: TradingState::Active, reason: reason.into(), since, until: None, cause: None }
    }
}

/// The causes in force in one scope (global or a plugin), and what the scope
/// shows when none is.
#[derive(Debug, Clone)]
struct Scope {
    causes: BTreeMap<Cause, StateRecord>,
    idle: StateRecord,
}

impl Scope {
    fn new(since: Timestamp) -> Self {
        Self { causes: BTreeMap::new(), idle: StateRecord::active("start", since) }
    }

    /// The strictest cause in force (the earliest of equals), else active.
    fn effective(&self) -> &StateRecord {
        self.causes.values().fold(None::<&StateRecord>, |best, r| match best {
            Some(b) if (b.state, std::cmp::Reverse(b.since)) >= (r.state, std::cmp::Reverse(r.since)) => Some(b),
            _ => Some(r),
        }).unwrap_or(&self.idle)
    }

    fn has(&self, cause: Cause) -> bool {
        self.causes.contains_key(&cause)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Account equity before any P&L, in the account currency.
    pub capital: f64,
    /// Symbols plugins may trade (empty: all).
    pub allowed: Vec<String>,
    /// Refuse orders outside the instrument's trading hours, when known.
    pub require_open_market: bool,
    pub max_order_quantity: f64,
    pub max_order_notional: f64,
    /// Limit and stop prices within this fraction of the last price.
    pub price_band: f64,
    /// Per plugin and instrument, notional after the order.
    pub max_position_notional: f64,
    /// Per plugin, after the order.
    pub max_gross_exposure: f64,
    pub max_net_exposure: f64,
    /// Largest position in one instrument as a share of account equity.
    pub max_concentration: f64,
    pub max_open_orders: usize,
    pub orders_per_sec_per_plugin: u32,
    pub orders_per_sec: u32,
    /// An identical order from the same plugin within this window is a duplicate (market time, ms).
    pub duplicate_window_ms: u64,
    /// Loss in a UTC day (account currency) that moves everyone to reduce-only.
    pub daily_loss_limit: Option<f64>,
    /// The same for one plugin's own P&L.
    pub plugin_daily_loss_limit: Option<f64>,
    /// Drawdown from peak equity (fraction) that halts trading.
    pub max_drawdown: f64,
    pub circuit_breaker: CircuitBreakerConfig,
    /// Reduce-only while the portfolio's one-day VaR is over a share of equity (`None`: no limit).
    pub var_limit: Option<VarLimitConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Halt on an anomaly detector's alarm at this level or above (`None`: never).
    pub alarm_level: Option<AlarmLevelName>,
    /// The reference instrument of the market-move rule (`None`: no rule).
    pub reference: Option<String>,
    /// Intraday fall of the reference, from its first price of the UTC day, that halts.
    pub drop: f64,
    /// How long a circuit-breaker halt lasts, market seconds.
    pub halt_secs: u64,
}

/// Alarm levels as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmLevelName {
    Elevated,
    Severe,
    Critical,
}

/// An alarm level as logs, the journal and reports name it.
pub fn level_name(level: AlarmLevel) -> &'static str {
    match level {
        AlarmLevel::Normal => "normal",
        AlarmLevel::Elevated => "elevated",
        AlarmLevel::Severe => "severe",
        AlarmLevel::Critical => "critical",
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self { alarm_level: Some(AlarmLevelName::Critical), reference: None, drop: 0.07, halt_secs: 900 }
    }
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            capital: 100_000.0,
            allowed: Vec::new(),
            require_open_market: true,
            max_order_quantity: 1_000_000.0,
            max_order_notional: 250_000.0,
            price_band: 0.10,
            max_position_notional: 500_000.0,
            max_gross_exposure: 2_000_000.0,
            max_net_exposure: 1_000_000.0,
            max_concentration: 0.5,
            max_open_orders: 200,
            orders_per_sec_per_plugin: 50,
            orders_per_sec: 200,
            duplicate_window_ms: 0,
            daily_loss_limit: None,
            plugin_daily_loss_limit: None,
            max_drawdown: 0.10,
            circuit_breaker: CircuitBreakerConfig::default(),
            var_limit: None,
        }
    }
}

/// Which rule refused an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RiskRule {
    Halted,
    ReduceOnly,
    InstrumentNotAllowed,
    MarketClosed,
    NoPrice,
    OrderQuantity,
    OrderNotional,
    PriceBand,
    PositionLimit,
    GrossExposure,
    NetExposure,
    Concentration,
    OpenOrders,
    PluginThrottle,
    GlobalThrottle,
    Duplicate,
    /// An earlier order of the plugin in the instrument is in doubt at the broker.
    InDoubt,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReject {
    pub rule: RiskRule,
    pub detail: String,
}

impl std::fmt::Display for RiskReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.rule, self.detail)
    }
}

/// An order about to be sent, with what the engine needs to judge it.
#[derive(Debug, Clone)]
pub struct OrderCheck<'a> {
    pub plugin: &'a str,
    pub instrument: InstrumentId,
    pub symbol: &'a str,
    pub side: Side,
    pub quantity: f64,
    pub order_type: OrderType,
    /// The plugin's signed position in the instrument now.
    pub position: f64,
    /// Last traded or mid price of the instrument (`None`: never seen).
    pub last_price: Option<f64>,
    /// `None` when the instrument's hours are unknown.
    pub market_open: Option<bool>,
    /// Quantity still to fill of the plugin's working and in-flight orders in
    /// this instrument: (buying, selling), both positive.
    pub working: (f64, f64),
    /// The plugin's book in every other instrument (positions and working
    /// orders), summed at its worst.
    pub others: BookTotals,
    pub open_orders: usize,
    /// An exit (stop policy, operator flatten): allowed whenever it reduces.
    pub exit: bool,
    /// Why an earlier order of the plugin in this instrument is in doubt (a
    /// remote broker gave no clear answer): nothing but exits until it is resolved.
    pub in_doubt: Option<&'a str>,
    pub now: Timestamp,
}

/// One instrument of a plugin's book as the exposure checks see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    pub instrument: InstrumentId,
    /// Signed filled position.
    pub quantity: f64,
    pub mark: f64,
    /// Still to fill of working and in-flight buys and sells (both positive).
    pub buying: f64,
    pub selling: f64,
}

impl Exposure {
    /// The position if every buy fills, and if every sell fills.
    fn extremes(&self) -> (f64, f64) {
        (self.quantity + self.buying, self.quantity - self.selling)
    }

    /// What it adds to a book's totals: its larger side's notional, and its
    /// notional if every buy fills and if every sell fills.
    pub fn contribution(&self) -> BookTotals {
        let (l, s) = self.extremes();
        BookTotals { gross: l.abs().max(s.abs()) * self.mark, net_long: l * self.mark, net_short: s * self.mark }
    }
}

/// A book's exposure at its worst: gross (each instrument's larger side),
/// and net if every buy fills (`net_long`) and if every sell fills.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BookTotals {
    pub gross: f64,
    pub net_long: f64,
    pub net_short: f64,
}

impl BookTotals {
    pub fn of<'a>(book: impl IntoIterator<Item = &'a Exposure>) -> Self {
        book.into_iter().fold(Self::default(), |t, e| t.plus(e.contribution()))
    }

    pub fn plus(self, o: Self) -> Self {
        Self { gross: self.gross + o.gross, net_long: self.net_long + o.net_long, net_short: self.net_short + o.net_short }
    }

    pub fn minus(self, o: Self) -> Self {
        Self { gross: self.gross - o.gross, net_long: self.net_long - o.net_long, net_short: self.net_short - o.net_short }
    }
}

/// A state change or a breach, for logs and webhooks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub time: Timestamp,
    /// `global` or a plugin's name.
    pub scope: String,
    pub kind: String,
    pub message: String,
    /// The trading state it set, when it is a state change (the cause's own
    /// state; `kind` names the state in force after it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TradingState>,
    /// What set or cleared that state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

/// The loss limits' baselines (see [`RiskEngine::baselines`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    pub peak_equity: f64,
    /// Days since the epoch (UTC); `i64::MIN` before the first P&L.
    pub day: i64,
    pub day_start_equity: f64,
    /// Plugins with a day start (a new one changes the baselines too).
    #[serde(default)]
    pub plugins: usize,
    /// The circuit breaker's reference instrument: (day, its first price that day).
    #[serde(default)]
    pub reference_open: Option<(i64, f64)>,
}

/// Counters for status and reports.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RiskStats {
    pub checked: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<RiskRule, u64>,
    pub rejected_by_plugin: BTreeMap<String, u64>,
}

/// What `stratbox status` shows of risk.
#[derive(Debug, Clone, Serialize)]
pub struct RiskView {
    /// The state in force for everyone (the strictest global cause).
    pub global: StateRecord,
    /// Per plugin, its own strictest cause (only plugins that had one).
    pub plugins: BTreeMap<String, StateRecord>,
    /// Every cause in force, by scope (`global` or the plugin).
    pub causes: Vec<(String, StateRecord)>,
    pub equity: f64,
    pub peak_equity: f64,
    pub drawdown: f64,
    pub day_pnl: f64,
    /// The portfolio's one-day VaR, when a limit is configured and history allows.
    pub var: Option<VarView>,
    pub stats: RiskStats,
}

pub struct RiskEngine {
    config: RiskConfig,
    global: Scope,
    plugins: HashMap<Arc<str>, Scope>,
    recent_orders: VecDeque<Timestamp>,
    recent_by_plugin: HashMap<Arc<str>, VecDeque<Timestamp>>,
    last_orders: HashMap<Arc<str>, VecDeque<RecentOrder>>,
    equity: f64,
    peak_equity: f64,
    day: i64,
    day_start_equity: f64,
    plugin_day_start: HashMap<Arc<str>, f64>,
    reference_open: Option<(i64, f64)>,
    var: Option<PortfolioVar>,
    alerts: Vec<Alert>,
    pub stats: RiskStats,
}

const SEC: i64 = NANOS_PER_SEC;

/// A plugin's entry, allocating its key only the first time (this runs per order).
fn slot<'a, T: Default>(map: &'a mut HashMap<Arc<str>, T>, plugin: &str) -> &'a mut T {
    slot_with(map, plugin, T::default)
}

fn slot_with<'a, T>(map: &'a mut HashMap<Arc<str>, T>, plugin: &str, make: impl FnOnce() -> T) -> &'a mut T {
    if !map.contains_key(plugin) {
        map.insert(Arc::from(plugin), make());
    }
    map.get_mut(plugin).expect("just inserted")
}

/// A state as messages name it.
pub fn state_name(state: TradingState) -> &'static str {
    match state {
        TradingState::Active => "active",
        TradingState::ReduceOnly => "reduce-only",
        TradingState::Halted => "halted",
    }
}

/// What duplicate detection remembers of an order: when, instrument, side,
/// quantity (as bits, compared exactly), type.
type RecentOrder = (Timestamp, InstrumentId, Side, u64, OrderType);

fn day_of(t: Timestamp) -> i64 {
    t.div_euclid(86_400 * SEC)
}

fn signed(side: Side, q: f64) -> f64 {
    if side == Side::Buy { q } else { -q }
}

impl RiskEngine {
    pub fn new(config: RiskConfig) -> Self {
        let capital = config.capital;
        let var = config.var_limit.clone().map(PortfolioVar::new);
        Self {
            config,
            global: Scope::new(0),
            plugins: HashMap::new(),
            recent_orders: VecDeque::new(),
            recent_by_plugin: HashMap::new(),
            last_orders: HashMap::new(),
            equity: capital,
            peak_equity: capital,
            day: i64::MIN,
            day_start_equity: capital,
            plugin_day_start: HashMap::new(),
            reference_open: None,
            var,
            alerts: Vec::new(),
            stats: RiskStats::default(),
        }
    }

    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    /// The state that applies to `plugin`: the stricter of global and its own.
    pub fn state_of(&self, plugin: &str) -> &StateRecord {
        let global = self.global.effective();
        match self.plugins.get(plugin).map(Scope::effective) {
            Some(p) if p.state > global.state => p,
            _ => global,
        }
    }

    /// Checks one order; `Ok` means it may be sent (and it counts toward the throttles).
    pub fn check(&mut self, o: &OrderCheck<'_>) -> Result<(), RiskReject> {
        self.stats.checked += 1;
        match self.evaluate(o) {
            Ok(()) => {
                self.stats.accepted += 1;
                self.recent_orders.push_back(o.now);
                slot(&mut self.recent_by_plugin, o.plugin).push_back(o.now);
                if self.config.duplicate_window_ms > 0 {
                    slot(&mut self.last_orders, o.plugin).push_back((o.now, o.instrument, o.side, o.quantity.to_bits(), o.order_type));
                }
                Ok(())
            }
            Err(reject) => {
                *self.stats.rejected.entry(reject.rule).or_default() += 1;
                *self.stats.rejected_by_plugin.entry(o.plugin.to_owned()).or_default() += 1;
                Err(reject)
            }
        }
    }

    fn evaluate(&mut self, o: &OrderCheck<'_>) -> Result<(), RiskReject> {
        let c = &self.config;
        let reject = |rule, detail: String| Err(RiskReject { rule, detail });
        // The worst cases once this order and every other working one fill:
        // all the buys (`long`) or all the sells (`short`).
        let (buying, selling) = o.working;
        let order = signed(o.side, o.quantity);
        let (long, short) = (o.position + buying + order.max(0.0), o.position - selling + order.min(0.0));
        // Reduces: shrinks the position and cannot flip it, whatever else on its side fills.
        let reduces = o.quantity > 0.0
            && match o.side {
                Side::Sell => o.position > 0.0 && short >= -1e-9,
                Side::Buy => o.position < 0.0 && long <= 1e-9,
            };
        let after = if o.side == Side::Buy { long } else { short };
        let pending = if o.side == Side::Buy { buying } else { selling };
        // Exits too: one sized while an order is in doubt closes past flat if that order never happened.
        if let Some(why) = o.in_doubt {
            return reject(RiskRule::InDoubt, format!("{why}: no new order in {} until it is resolved", o.symbol));
        }
        let state = self.state_of(o.plugin);
        match state.state {
            TradingState::Halted if !(o.exit && reduces) => {
                let why = if o.exit { format!(" (an exit may only reduce: the position {} would reach {after} with {pending} more working on that side)", o.position) } else { String::new() };
                return reject(RiskRule::Halted, format!("trading is halted: {}{why}", state.reason));
            }
            TradingState::ReduceOnly if !reduces => {
                return reject(
                    RiskRule::ReduceOnly,
                    format!("reduce-only ({}): the order would take the position from {} to {after} (with {pending} more working on that side)", state.reason, o.position),
                );
            }
            _ => {}
        }
        if o.quantity > c.max_order_quantity {
            return reject(RiskRule::OrderQuantity, format!("quantity {} is above the maximum {}", o.quantity, c.max_order_quantity));
        }
        // Exits are sized by the position they close (the order path splits
        // them under the quantity cap); the rules below are for new risk: an
        // instrument dropped from the allowed list, or a closed market, must
        // not keep a position open.
        if o.exit && reduces {
            return Ok(());
        }
        if !c.allowed.is_empty() && !c.allowed.iter().any(|s| s == o.symbol) {
            return reject(RiskRule::InstrumentNotAllowed, format!("{} is not in the allowed instruments", o.symbol));
        }
        if c.require_open_market && o.market_open == Some(false) {
            return reject(RiskRule::MarketClosed, format!("the market for {} is closed", o.symbol));
        }
        let Some(last) = o.last_price else {
            return reject(RiskRule::NoPrice, format!("no price yet for {}: notional and band cannot be checked", o.symbol));
        };
        let notional = o.quantity * last;
        if notional > c.max_order_notional {
            return reject(RiskRule::OrderNotional, format!("notional {notional:.2} is above the maximum {:.2}", c.max_order_notional));
        }
        if let OrderType::Limit(p) | OrderType::Stop(p) = o.order_type
            && (p - last).abs() > c.price_band * last
        {
            return reject(RiskRule::PriceBand, format!("price {p} is more than {:.1}% from the last price {last}", c.price_band * 100.0));
        }
        if !reduces {
            // Working orders count at their worst: the larger side of each instrument.
            let this = long.abs().max(short.abs()) * last;
            if this > c.max_position_notional {
                return reject(RiskRule::PositionLimit, format!("the position could reach {this:.2} in notional with the working orders, above {:.2}", c.max_position_notional));
            }
            let (gross, net_long, net_short) = (o.others.gross + this, o.others.net_long + long * last, o.others.net_short + short * last);
            if gross > c.max_gross_exposure {
                return reject(RiskRule::GrossExposure, format!("gross exposure could reach {gross:.2} with the working orders, above {:.2}", c.max_gross_exposure));
            }
            let net = if net_long.abs() >= net_short.abs() { net_long } else { net_short };
            if net.abs() > c.max_net_exposure {
                return reject(RiskRule::NetExposure, format!("net exposure could reach {net:.2} with the working orders, above {:.2}", c.max_net_exposure));
            }
            if this > c.max_concentration * self.equity {
                return reject(
                    RiskRule::Concentration,
                    format!("{} would be {:.0}% of equity {:.2}, above {:.0}%", o.symbol, 100.0 * this / self.equity, self.equity, 100.0 * c.max_concentration),
                );
            }
        }
        if o.open_orders >= c.max_open_orders {
            return reject(RiskRule::OpenOrders, format!("{} orders already working (maximum {})", o.open_orders, c.max_open_orders));
        }
        let window = |q: &mut VecDeque<Timestamp>| {
            while q.front().is_some_and(|t| o.now - t >= SEC) {
                q.pop_front();
            }
            q.len()
        };
        let mine = self.recent_by_plugin.get_mut(o.plugin).map_or(0, window);
        if mine >= c.orders_per_sec_per_plugin as usize {
            return reject(RiskRule::PluginThrottle, format!("{mine} orders in the last second (maximum {} per plugin)", c.orders_per_sec_per_plugin));
        }
        let all = window(&mut self.recent_orders);
        if all >= c.orders_per_sec as usize {
            return reject(RiskRule::GlobalThrottle, format!("{all} orders in the last second from all plugins (maximum {})", c.orders_per_sec));
        }
        if c.duplicate_window_ms > 0 {
            let span = stratbox_contract::util::ms_to_nanos(c.duplicate_window_ms);
            if let Some(last) = self.last_orders.get_mut(o.plugin) {
                while last.front().is_some_and(|(t, ..)| o.now - t >= span) {
                    last.pop_front();
                }
                if last.iter().any(|&(_, i, s, q, t)| i == o.instrument && s == o.side && q == o.quantity.to_bits() && t == o.order_type) {
                    return reject(RiskRule::Duplicate, format!("the same order was sent less than {} ms ago", c.duplicate_window_ms));
                }
            }
        }
        Ok(())
    }

    fn scope_mut(&mut self, scope: Option<&str>, now: Timestamp) -> &mut Scope {
        match scope {
            None => &mut self.global,
            Some(p) => slot_with(&mut self.plugins, p, || Scope::new(now)),
        }
    }

    /// Sets `cause` in `scope` to `state` (active: the cause ends), with an
    /// alert naming the cause's change and the state in force after it.
    fn set(&mut self, scope: Option<&str>, cause: Cause, state: TradingState, reason: String, now: Timestamp, until: Option<Timestamp>) {
        let s = self.scope_mut(scope, now);
        if state == TradingState::Active {
            if s.causes.remove(&cause).is_none() {
                return;
            }
            if s.causes.is_empty() {
                s.idle = StateRecord::active(&reason, now);
            }
        } else {
            if s.causes.get(&cause).is_some_and(|r| r.state == state && r.reason == reason && r.until == until) {
                return;
            }
            s.causes.insert(cause, StateRecord { state, reason: reason.clone(), since: now, until, cause: Some(cause) });
        }
        let in_force = s.effective().clone();
        let label = scope.unwrap_or("global").to_owned();
        let message = if state == TradingState::Active && in_force.state != TradingState::Active {
            format!("{reason}; still {} ({:?}): {}", state_name(in_force.state), in_force.cause.unwrap_or_default(), in_force.reason)
        } else {
            reason
        };
        tracing::warn!(market_time = %stratbox_market::format_time(now), scope = %label, ?cause, state = ?state, in_force = ?in_force.state, reason = %message, "trading state changed");
        self.alerts.push(Alert { time: now, scope: label, kind: format!("{:?}", in_force.state).to_lowercase(), message, state: Some(state), cause: Some(cause) });
    }

    /// Sets a state for `cause` (active: that cause ends).
    pub fn set_cause(&mut self, plugin: Option<&str>, cause: Cause, state: TradingState, reason: &str, now: Timestamp) {
        self.set(plugin, cause, state, reason.to_owned(), now, None);
    }

    /// The operator (or a test) sets a state. Active is a resume: it ends
    /// every cause in the scope (a running circuit-breaker halt too) except a
    /// failed reconciliation, which only a reconciliation that agrees lifts.
    pub fn set_state(&mut self, plugin: Option<&str>, state: TradingState, reason: &str, now: Timestamp) {
        if state != TradingState::Active {
            return self.set(plugin, Cause::Operator, state, reason.to_owned(), now, None);
        }
        let causes: Vec<Cause> = self.scope_mut(plugin, now).causes.keys().copied().filter(|c| *c != Cause::Reconciliation).collect();
        for cause in causes {
            self.set(plugin, cause, TradingState::Active, reason.to_owned(), now, None);
        }
    }

    /// Puts back a cause's state from the journal after a restart, without an alert.
    pub fn restore_state(&mut self, plugin: Option<&str>, cause: Cause, state: TradingState, reason: &str, since: Timestamp, until: Option<Timestamp>) {
        let s = self.scope_mut(plugin, since);
        if state == TradingState::Active {
            s.causes.remove(&cause);
            if s.causes.is_empty() {
                s.idle = StateRecord::active(reason, since);
            }
        } else {
            s.causes.insert(cause, StateRecord { state, reason: reason.to_owned(), since, until, cause: Some(cause) });
        }
    }

    /// When `cause` in `scope` ends by itself, if it does.
    pub fn until_of(&self, plugin: Option<&str>, cause: Cause) -> Option<Timestamp> {
        let scope = match plugin {
            None => Some(&self.global),
            Some(p) => self.plugins.get(p),
        };
        scope.and_then(|s| s.causes.get(&cause)).and_then(|r| r.until)
    }

    /// Whether `cause` is in force globally.
    pub fn holds(&self, cause: Cause) -> bool {
        self.global.has(cause)
    }

    /// Equity update: total and per-plugin P&L (realised + unrealised) at `now`.
    /// Applies the daily loss limits and the drawdown limit.
    pub fn on_pnl(&mut self, total_pnl: f64, plugin_pnl: &[(Arc<str>, f64)], now: Timestamp) {
        let equity = self.config.capital + total_pnl;
        if day_of(now) != self.day {
            self.day = day_of(now);
            self.day_start_equity = equity;
            self.plugin_day_start = plugin_pnl.iter().cloned().collect();
        }
        self.equity = equity;
        self.peak_equity = self.peak_equity.max(equity);
        let drawdown = if self.peak_equity > 0.0 { (self.peak_equity - equity) / self.peak_equity } else { 0.0 };
        if drawdown >= self.config.max_drawdown && !self.global.has(Cause::Drawdown) {
            let reason = format!("drawdown {:.1}% from peak equity {:.2} reached the limit {:.1}%", drawdown * 100.0, self.peak_equity, self.config.max_drawdown * 100.0);
            self.set(None, Cause::Drawdown, TradingState::Halted, reason, now, None);
        }
        let day_loss = self.day_start_equity - equity;
        if let Some(limit) = self.config.daily_loss_limit
            && day_loss >= limit
            && !self.global.has(Cause::DailyLoss)
        {
            self.set(None, Cause::DailyLoss, TradingState::ReduceOnly, format!("daily loss {day_loss:.2} reached the limit {limit:.2}"), now, None);
        }
        if let Some(limit) = self.config.plugin_daily_loss_limit {
            for (plugin, pnl) in plugin_pnl {
                let start = *self.plugin_day_start.entry(plugin.clone()).or_insert(*pnl);
                let loss = start - pnl;
                if loss >= limit && self.plugins.get(plugin).is_none_or(|s| !s.has(Cause::DailyLoss)) {
                    self.set(Some(plugin), Cause::DailyLoss, TradingState::ReduceOnly, format!("the plugin's daily loss {loss:.2} reached the limit {limit:.2}"), now, None);
                }
            }
        }
    }

    /// An anomaly detector's alarm: halts everyone for `halt_secs` at or above the configured level.
    pub fn on_alarm(&mut self, detector: &str, level: AlarmLevel, reason: &str, now: Timestamp) {
        let rank = |l: AlarmLevel| match l {
            AlarmLevel::Normal => 0,
            AlarmLevel::Elevated => 1,
            AlarmLevel::Severe => 2,
            AlarmLevel::Critical => 3,
        };
        let Some(threshold) = self.config.circuit_breaker.alarm_level else { return };
        if rank(level) > threshold as u8 {
            self.halt_for(format!("circuit breaker: {} alarm from {detector}: {reason}", level_name(level)), now);
        }
    }

    /// A price of `symbol`: the market-move rule of the circuit breaker.
    pub fn on_price(&mut self, symbol: &str, price: f64, now: Timestamp) {
        if self.config.circuit_breaker.reference.as_deref() != Some(symbol) || price.is_nan() || price <= 0.0 {
            return;
        }
        let day = day_of(now);
        let open = match self.reference_open {
            Some((d, p)) if d == day => p,
            _ => {
                self.reference_open = Some((day, price));
                price
            }
        };
        let fall = (open - price) / open;
        if fall >= self.config.circuit_breaker.drop && !self.global.has(Cause::CircuitBreaker) {
            self.halt_for(format!("circuit breaker: {symbol} down {:.1}% intraday (from {open} to {price})", fall * 100.0), now);
        }
    }

    /// Whether a VaR limit is configured (the order path then feeds it prices and positions).
    pub fn var_enabled(&self) -> bool {
        self.var.is_some()
    }

    /// A price into the VaR limit's daily return history.
    pub fn on_var_price(&mut self, instrument: InstrumentId, price: f64, now: Timestamp) {
        if let Some(v) = &mut self.var {
            v.on_price(instrument, price, now);
        }
    }

    /// Re-estimates the portfolio's one-day VaR for the account's net
    /// `positions` and applies the limit: reduce-only over it, lifted once
    /// VaR is back under `resume_at` of it (or nothing is held).
    pub fn update_var(&mut self, positions: &HashMap<InstrumentId, f64>, mark: impl Fn(InstrumentId) -> Option<f64>, now: Timestamp) {
        let equity = self.equity;
        let Some(v) = &mut self.var else { return };
        let (limit, resume) = (v.config.max_fraction, v.config.max_fraction * v.config.resume_at);
        let estimate = v.estimate(positions, mark, equity, now);
        let held = self.global.has(Cause::Var);
        match estimate {
            Some(e) if e.fraction > limit && !held => {
                let reason = format!(
                    "one-day {:.0}% VaR {:.2} is {:.2}% of equity {:.2}, over the limit {:.2}% ({} days of history)",
                    e.confidence * 100.0,
                    e.var,
                    e.fraction * 100.0,
                    equity,
                    limit * 100.0,
                    e.days
                );
                self.set(None, Cause::Var, TradingState::ReduceOnly, reason, now, None);
            }
            Some(e) if held && e.fraction <= resume => {
                let reason = format!("one-day VaR back to {:.2}% of equity (resumes at {:.2}%)", e.fraction * 100.0, resume * 100.0);
                self.set(None, Cause::Var, TradingState::Active, reason, now, None);
            }
            None if held && positions.values().all(|q| *q == 0.0) => {
                self.set(None, Cause::Var, TradingState::Active, "nothing held: no value at risk".into(), now, None);
            }
            _ => {}
        }
    }

    /// A circuit-breaker halt for `halt_secs`; a new trip restarts the time.
    fn halt_for(&mut self, reason: String, now: Timestamp) {
        let until = now.saturating_add(stratbox_contract::util::secs_to_nanos(self.config.circuit_breaker.halt_secs));
        self.set(None, Cause::CircuitBreaker, TradingState::Halted, reason, now, Some(until));
    }

    /// Ends circuit-breaker halts whose time is up (the other causes hold).
    pub fn tick(&mut self, now: Timestamp) {
        if self.global.causes.get(&Cause::CircuitBreaker).and_then(|r| r.until).is_some_and(|u| now >= u) {
            self.set(None, Cause::CircuitBreaker, TradingState::Active, "the circuit-breaker halt ended".into(), now, None);
        }
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// What the loss limits measure from: the peak equity (drawdown), and
    /// the UTC day with its starting equity (daily loss).
    pub fn baselines(&self) -> Baselines {
        Baselines { peak_equity: self.peak_equity, day: self.day, day_start_equity: self.day_start_equity, plugins: self.plugin_day_start.len(), reference_open: self.reference_open }
    }

    /// Orders the throttles and the duplicate rule remember (each queue is
    /// pruned to its window at every check, so it holds at most its cap).
    pub fn queued(&self) -> usize {
        self.recent_orders.len() + self.recent_by_plugin.values().map(VecDeque::len).sum::<usize>() + self.last_orders.values().map(VecDeque::len).sum::<usize>()
    }

    /// Each plugin's P&L at the start of the day, by name.
    pub fn plugin_day_starts(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self.plugin_day_start.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Puts back the baselines journaled before a restart: the peak and the
    /// day's start carry on (a crash loop must not reset the daily loss or
    /// forget a drawdown).
    pub fn restore_baselines(&mut self, b: Baselines, plugin_day_start: &[(String, f64)]) {
        self.peak_equity = self.peak_equity.max(b.peak_equity);
        self.day = b.day;
        self.day_start_equity = b.day_start_equity;
        self.reference_open = b.reference_open;
        self.plugin_day_start = plugin_day_start.iter().map(|(k, v)| (Arc::from(k.as_str()), *v)).collect();
    }

    pub fn view(&self) -> RiskView {
        RiskView {
            global: self.global.effective().clone(),
            plugins: self.plugins.iter().map(|(k, v)| (k.to_string(), v.effective().clone())).collect(),
            causes: std::iter::once(("global", &self.global))
                .chain(self.plugins.iter().map(|(k, v)| (&**k, v)))
                .flat_map(|(scope, s)| s.causes.values().map(move |r| (scope.to_owned(), r.clone())))
                .collect(),
            equity: self.equity,
            peak_equity: self.peak_equity,
            drawdown: if self.peak_equity > 0.0 { (self.peak_equity - self.equity) / self.peak_equity } else { 0.0 },
            day_pnl: self.equity - self.day_start_equity,
            var: self.var.as_ref().and_then(|v| v.view()),
            stats: self.stats.clone(),
        }
    }
}

pub mod var;
pub use var::{PortfolioVar, VarLimitConfig, VarView};

#[cfg(test)]
mod tests;
