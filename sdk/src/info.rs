//! Self-description ([`PluginInfo`]) and start-up input ([`Init`]).

use crate::{
    Descriptor, InitContext, Instrument, InstrumentId, Intent, OrderIntent, OrderType, Param,
    ParamSpec, ParamValue, ResourceRequest, Roles, RunMode, Side, TargetPosition, TimeInForce,
};

/// Builder for what a plugin says about itself at load.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    name: String,
    version: String,
    description: String,
    params: Vec<ParamSpec>,
    requested: ResourceRequest,
    timer_secs: u32,
}

impl PluginInfo {
    /// A plugin called `name` at `version` (usually `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            description: String::new(),
            params: Vec::new(),
            requested: ResourceRequest { memory_bytes: 0, fuel_per_callback: 0, max_intents_per_callback: 0 },
            timer_secs: 0,
        }
    }

    /// One line for `stratbox plugin inspect`.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }

    fn param(mut self, name: &str, description: &str, default: ParamValue, min: Option<f64>, max: Option<f64>) -> Self {
        self.params.push(ParamSpec { name: name.to_owned(), description: description.to_owned(), default, min, max });
        self
    }

    /// An integer parameter within `[min, max]`.
    pub fn param_int(self, name: &str, description: &str, default: i64, min: i64, max: i64) -> Self {
        self.param(name, description, ParamValue::Integer(default), Some(min as f64), Some(max as f64))
    }

    /// A floating-point parameter within `[min, max]`.
    pub fn param_number(self, name: &str, description: &str, default: f64, min: f64, max: f64) -> Self {
        self.param(name, description, ParamValue::Number(default), Some(min), Some(max))
    }

    /// A boolean parameter.
    pub fn param_flag(self, name: &str, description: &str, default: bool) -> Self {
        self.param(name, description, ParamValue::Flag(default), None, None)
    }

    /// A text parameter.
    pub fn param_text(self, name: &str, description: &str, default: &str) -> Self {
        self.param(name, description, ParamValue::Text(default.to_owned()), None, None)
    }

    /// Linear memory the plugin needs; the host clamps it to its maximum.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.requested.memory_bytes = bytes;
        self
    }

    /// Fuel (roughly, wasm instructions) per callback; clamped by the host.
    pub fn fuel_per_callback(mut self, fuel: u64) -> Self {
        self.requested.fuel_per_callback = fuel;
        self
    }

    /// Most intents one callback may return; clamped by the host.
    pub fn max_intents_per_callback(mut self, n: u32) -> Self {
        self.requested.max_intents_per_callback = n;
        self
    }

    /// Ask for `on_timer` every `secs` seconds of market time.
    pub fn timer_secs(mut self, secs: u32) -> Self {
        self.timer_secs = secs;
        self
    }

    /// Declared parameters, in declaration order.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// The WIT descriptor, with the roles the export macro registered.
    pub fn into_descriptor(self, roles: Roles) -> Descriptor {
        Descriptor {
            name: self.name,
            version: self.version,
            description: self.description,
            roles,
            params: self.params,
            requested: self.requested,
            timer_secs: self.timer_secs,
        }
    }
}

/// Resolved parameters: every declared one, with the operator's value or its default.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<Param>);

impl Params {
    /// Wraps resolved parameters.
    pub fn new(params: Vec<Param>) -> Self {
        Self(params)
    }

    /// The value of `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.iter().find(|p| p.name == name).map(|p| &p.value)
    }

    fn missing(name: &str, want: &str) -> String {
        format!("parameter `{name}`: expected {want}, but it is missing or of another type")
    }

    /// Integer parameter `name`.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            Some(ParamValue::Integer(v)) => Ok(*v),
            _ => Err(Self::missing(name, "an integer")),
        }
    }

    /// Numeric parameter `name` (an integer is accepted and widened).
    pub fn number(&self, name: &str) -> Result<f64, String> {
        match self.get(name) {
            Some(ParamValue::Number(v)) => Ok(*v),
            Some(ParamValue::Integer(v)) => Ok(*v as f64),
            _ => Err(Self::missing(name, "a number")),
        }
    }

    /// Boolean parameter `name`.
    pub fn flag(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            Some(ParamValue::Flag(v)) => Ok(*v),
            _ => Err(Self::missing(name, "a flag")),
        }
    }

    /// Text parameter `name`.
    pub fn text(&self, name: &str) -> Result<&str, String> {
        match self.get(name) {
            Some(ParamValue::Text(v)) => Ok(v),
            _ => Err(Self::missing(name, "text")),
        }
    }
}

/// What [`Plugin::init`](crate::Plugin::init) receives.
#[derive(Debug, Clone)]
pub struct Init {
    /// Backtest, paper or live.
    pub mode: RunMode,
    /// Instruments this plugin receives events for.
    pub instruments: Vec<Instrument>,
    /// Resolved parameters.
    pub params: Params,
}

impl From<InitContext> for Init {
    fn from(c: InitContext) -> Self {
        Self { mode: c.mode, instruments: c.instruments, params: Params::new(c.params) }
    }
}

impl Intent {
    /// A good-till-cancelled market order.
    pub fn market(instrument: InstrumentId, side: Side, quantity: f64) -> Self {
        Self::order(instrument, side, quantity, OrderType::Market)
    }

    /// A good-till-cancelled limit order.
    pub fn limit(instrument: InstrumentId, side: Side, quantity: f64, price: f64) -> Self {
        Self::order(instrument, side, quantity, OrderType::Limit(price))
    }

    /// A good-till-cancelled stop order.
    pub fn stop(instrument: InstrumentId, side: Side, quantity: f64, trigger: f64) -> Self {
        Self::order(instrument, side, quantity, OrderType::Stop(trigger))
    }

    fn order(instrument: InstrumentId, side: Side, quantity: f64, order_type: OrderType) -> Self {
        Intent::Order(OrderIntent { instrument, side, quantity, order_type, time_in_force: TimeInForce::Gtc, tag: 0 })
    }

    /// "Make my position in `instrument` equal to `quantity`" (signed).
    pub fn target(instrument: InstrumentId, quantity: f64) -> Self {
        Intent::Target(TargetPosition { instrument, quantity })
    }
}
