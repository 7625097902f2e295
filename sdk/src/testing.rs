//! Native test harness: run a plugin's logic with plain `cargo test`, no wasm.
//!
//! The harness resolves parameters the way the host does (declared defaults,
//! overrides checked against type and range), sets the market clock to each
//! event's time, keeps bar history, a private key-value store and positions
//! built from the fills you feed, and records log lines.
//!
//! ```
//! use stratbox_sdk::prelude::*;
//! use stratbox_sdk::testing::{bar, instrument, Harness};
//! # struct Noop;
//! # impl Plugin for Noop {
//! #     fn describe() -> PluginInfo { PluginInfo::new("noop", "0.1.0") }
//! #     fn init(_: &mut Ctx<'_>, _: &Init) -> Result<Self, String> { Ok(Noop) }
//! # }
//! # impl Strategy for Noop { fn on_bar(&mut self, _: &mut Ctx<'_>, _: &Bar, _: &mut Vec<Intent>) {} }
//! let mut h = Harness::<Noop>::new(vec![instrument(0, "SPY")], &[]).unwrap();
//! assert!(h.bar(bar(0, 0, 86_400, 100.0)).is_empty());
//! ```

use std::collections::{BTreeMap, HashMap};

use crate::accounting::NetPosition;
use crate::{
    Alarm, AnomalyDetector, Bar, Ctx, Fill, HostApi, InferenceError, Init, Instrument, InstrumentId, Intent,
    KvError, ModelInfo, ShapeMismatch, LogLevel, OrderView, Param, ParamValue, Params, Plugin, Position, Quote, RunMode,
    Side, StopDecision, StopPolicy, Strategy, Timestamp,
};

const NANOS: i64 = 1_000_000_000;

/// An instrument with tick and lot size 0.01 and 1, in USD.
pub fn instrument(id: InstrumentId, symbol: &str) -> Instrument {
    Instrument { id, symbol: symbol.to_owned(), tick_size: 0.01, lot_size: 1.0, currency: "USD".to_owned() }
}

/// A flat bar (open = high = low = close) starting at `start_secs`.
pub fn bar(instrument: InstrumentId, start_secs: i64, period_secs: u32, close: f64) -> Bar {
    Bar { instrument, start: start_secs * NANOS, period_secs, open: close, high: close, low: close, close, volume: 0.0 }
}

/// A model the native harness serves in place of the host's ONNX engine: a
/// function of the rows. Calls are checked as the host checks them (rows
/// resolved first, whole rows, finite values).
pub struct TestModel {
    /// The name plugins resolve it by.
    pub name: String,
    /// Values in one row.
    pub row_width: u32,
    /// Class names, in the order `run` returns probabilities.
    pub classes: Vec<String>,
    /// What the host would charge a row (1 unless set).
    pub fuel_per_row: u64,
    #[allow(clippy::type_complexity)]
    run: Box<dyn Fn(&[f32]) -> Vec<f32>>,
}

impl TestModel {
    /// `run` maps one row to its class probabilities.
    pub fn new(name: &str, row_width: u32, classes: &[&str], run: impl Fn(&[f32]) -> Vec<f32> + 'static) -> Self {
        Self { name: name.to_owned(), row_width, classes: classes.iter().map(|c| c.to_string()).collect(), fuel_per_row: 1, run: Box::new(run) }
    }
}

impl std::fmt::Debug for TestModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestModel({}, {} values a row, {:?})", self.name, self.row_width, self.classes)
    }
}

/// In-memory [`HostApi`] used by [`Harness`].
#[derive(Debug, Default)]
pub struct TestHost {
    /// Current market time.
    pub now: Timestamp,
    /// Every line logged, in order.
    pub logs: Vec<(LogLevel, String)>,
    /// The plugin's key-value store.
    pub kv: BTreeMap<String, Vec<u8>>,
    /// Positions by instrument, maintained from fills.
    pub positions: BTreeMap<InstrumentId, Position>,
    /// Working orders to show the plugin.
    pub open_orders: Vec<OrderView>,
    /// Models served to the plugin (see [`TestModel`]).
    pub models: Vec<TestModel>,
    /// Rows predicted, over all models.
    pub predicted_rows: u64,
    history: HashMap<(InstrumentId, u32), Vec<Bar>>,
}

impl TestHost {
    /// Records a closed bar in the history the plugin can query.
    pub fn record_bar(&mut self, bar: &Bar) {
        self.history.entry((bar.instrument, bar.period_secs)).or_default().push(*bar);
    }

    /// Applies a fill to the position, booked as the host books it.
    pub fn apply_fill(&mut self, fill: &Fill) {
        let signed = match fill.side {
            Side::Buy => fill.quantity,
            Side::Sell => -fill.quantity,
        };
        let p = self.positions.entry(fill.instrument).or_insert(Position {
            instrument: fill.instrument,
            quantity: 0.0,
            average_price: 0.0,
            realised_pnl: 0.0,
            unrealised_pnl: 0.0,
        });
        let mut net = NetPosition { quantity: p.quantity, average_price: p.average_price, realised_pnl: p.realised_pnl };
        net.apply_fill(signed, fill.price, fill.fee);
        (p.quantity, p.average_price, p.realised_pnl) = (net.quantity, net.average_price, net.realised_pnl);
        p.unrealised_pnl = net.unrealised(fill.price);
    }
}

impl HostApi for TestHost {
    fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()));
    }
    fn now(&mut self) -> Timestamp {
        self.now
    }
    fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.kv.get(key).cloned()
    }
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.kv.insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        self.kv.remove(key);
        Ok(())
    }
    fn positions(&mut self) -> Vec<Position> {
        self.positions.values().filter(|p| p.quantity != 0.0).copied().collect()
    }
    fn position(&mut self, instrument: InstrumentId) -> Option<Position> {
        self.positions.get(&instrument).filter(|p| p.quantity != 0.0).copied()
    }
    fn open_orders(&mut self) -> Vec<OrderView> {
        self.open_orders.clone()
    }
    fn history(&mut self, instrument: InstrumentId, period_secs: u32, count: u32) -> Vec<Bar> {
        let bars = self.history.get(&(instrument, period_secs)).map(Vec::as_slice).unwrap_or(&[]);
        bars[bars.len().saturating_sub(count as usize)..].to_vec()
    }
    fn resolve_model(&mut self, name: &str) -> Result<ModelInfo, InferenceError> {
        let (handle, m) = self.models.iter().enumerate().find(|(_, m)| m.name == name).ok_or_else(|| InferenceError::NotFound(format!("no model named `{name}`")))?;
        Ok(ModelInfo { handle: handle as u32, features: m.row_width, classes: m.classes.clone(), fuel_per_row: m.fuel_per_row })
    }
    fn predict(&mut self, handle: u32, rows: &[f32]) -> Result<Vec<f32>, InferenceError> {
        let m = self.models.get(handle as usize).ok_or_else(|| InferenceError::NotGranted(format!("handle {handle} was not resolved")))?;
        let width = m.row_width as usize;
        if rows.is_empty() || !rows.len().is_multiple_of(width) {
            return Err(InferenceError::WrongShape(ShapeMismatch { features: m.row_width, values: rows.len() as u32 }));
        }
        if let Some(at) = rows.iter().position(|v| !v.is_finite()) {
            return Err(InferenceError::NonFinite(at as u32));
        }
        self.predicted_rows += (rows.len() / width) as u64;
        Ok(rows.chunks(width).flat_map(|r| (m.run)(r)).collect())
    }
}

/// Resolves declared parameters with `overrides`, as the host does.
pub fn resolve_params<P: Plugin>(overrides: &[(&str, ParamValue)]) -> Result<Params, String> {
    let info = P::describe();
    if let Some((name, _)) = overrides.iter().find(|(n, _)| !info.params().iter().any(|s| s.name == *n)) {
        return Err(format!("unknown parameter `{name}`"));
    }
    let mut resolved = Vec::with_capacity(info.params().len());
    for spec in info.params() {
        let value = overrides.iter().find(|(n, _)| *n == spec.name).map(|(_, v)| v.clone()).unwrap_or(spec.default.clone());
        if std::mem::discriminant(&value) != std::mem::discriminant(&spec.default) {
            return Err(format!("parameter `{}`: value {value:?} is not of the declared type", spec.name));
        }
        let numeric = match value {
            ParamValue::Integer(v) => Some(v as f64),
            ParamValue::Number(v) => Some(v),
            _ => None,
        };
        if let Some(x) = numeric {
            let below = spec.min.is_some_and(|m| x < m);
            let above = spec.max.is_some_and(|m| x > m);
            if below || above || x.is_nan() {
                return Err(format!("parameter `{}` = {x} is outside [{:?}, {:?}]", spec.name, spec.min, spec.max));
            }
        }
        resolved.push(Param { name: spec.name.clone(), value });
    }
    Ok(Params::new(resolved))
}

/// Drives one plugin natively.
pub struct Harness<P: Plugin> {
    plugin: P,
    host: TestHost,
    instruments: Vec<Instrument>,
}

impl<P: Plugin> Harness<P> {
    /// Initialises `P` in backtest mode with `instruments` and parameter `overrides`.
    pub fn new(instruments: Vec<Instrument>, overrides: &[(&str, ParamValue)]) -> Result<Self, String> {
        Self::with_host(TestHost::default(), instruments, overrides)
    }

    /// As [`new`](Self::new), on a host prepared beforehand (with models, say).
    pub fn with_host(mut host: TestHost, instruments: Vec<Instrument>, overrides: &[(&str, ParamValue)]) -> Result<Self, String> {
        let init = Init { mode: RunMode::Backtest, instruments: instruments.clone(), params: resolve_params::<P>(overrides)? };
        let plugin = P::init(&mut Ctx::new(&mut host), &init)?;
        Ok(Self { plugin, host, instruments })
    }

    /// The plugin under test.
    pub fn plugin(&mut self) -> &mut P {
        &mut self.plugin
    }

    /// The in-memory host (logs, store, positions).
    pub fn host(&mut self) -> &mut TestHost {
        &mut self.host
    }

    /// Hands this plugin's state to a new build `Q`, as a hot swap does.
    pub fn swap<Q: Plugin>(mut self, overrides: &[(&str, ParamValue)]) -> Result<Harness<Q>, String> {
        let state = self.plugin.export_state();
        let init = Init { mode: RunMode::Backtest, instruments: self.instruments.clone(), params: resolve_params::<Q>(overrides)? };
        let mut plugin = Q::init(&mut Ctx::new(&mut self.host), &init)?;
        plugin.import_state(&mut Ctx::new(&mut self.host), &state)?;
        Ok(Harness { plugin, host: self.host, instruments: self.instruments })
    }

    fn close_bar(&mut self, bar: &Bar) {
        self.host.now = bar.start + i64::from(bar.period_secs) * NANOS;
        self.host.record_bar(bar);
    }
}

impl<P: Strategy> Harness<P> {
    /// Delivers a closed bar; returns the intents.
    pub fn bar(&mut self, bar: Bar) -> Vec<Intent> {
        self.close_bar(&bar);
        let mut out = Vec::new();
        self.plugin.on_bar(&mut Ctx::new(&mut self.host), &bar, &mut out);
        out
    }

    /// Delivers bars closing together; returns the intents.
    pub fn bars(&mut self, bars: &[Bar]) -> Vec<Intent> {
        bars.iter().for_each(|b| self.close_bar(b));
        let mut out = Vec::new();
        self.plugin.on_bars(&mut Ctx::new(&mut self.host), bars, &mut out);
        out
    }

    /// Delivers a quote; returns the intents.
    pub fn quote(&mut self, quote: Quote) -> Vec<Intent> {
        self.host.now = quote.time;
        let mut out = Vec::new();
        self.plugin.on_quote(&mut Ctx::new(&mut self.host), &quote, &mut out);
        out
    }

    /// Applies a fill to the position, then delivers it; returns the intents.
    pub fn fill(&mut self, fill: Fill) -> Vec<Intent> {
        self.host.now = fill.time;
        self.host.apply_fill(&fill);
        let mut out = Vec::new();
        self.plugin.on_fill(&mut Ctx::new(&mut self.host), &fill, &mut out);
        out
    }

    /// Fires the timer at `now`; returns the intents.
    pub fn timer(&mut self, now: Timestamp) -> Vec<Intent> {
        self.host.now = now;
        let mut out = Vec::new();
        self.plugin.on_timer(&mut Ctx::new(&mut self.host), now, &mut out);
        out
    }
}

impl<P: StopPolicy> Harness<P> {
    /// Delivers a closed bar for an open `position`; returns the decisions.
    pub fn position_bar(&mut self, bar: Bar, position: Position) -> Vec<StopDecision> {
        self.close_bar(&bar);
        let mut out = Vec::new();
        self.plugin.on_position_bar(&mut Ctx::new(&mut self.host), &bar, &position, &mut out);
        out
    }
}

impl<P: AnomalyDetector> Harness<P> {
    /// Delivers bars closing together; returns the alarm, if any.
    pub fn observe(&mut self, bars: &[Bar]) -> Option<Alarm> {
        bars.iter().for_each(|b| self.close_bar(b));
        self.plugin.observe_bars(&mut Ctx::new(&mut self.host), bars)
    }

    /// Delivers a quote; returns the alarm, if any.
    pub fn observe_quote(&mut self, quote: Quote) -> Option<Alarm> {
        self.host.now = quote.time;
        self.plugin.observe_quote(&mut Ctx::new(&mut self.host), &quote)
    }
}
