//! What a plugin can ask of its host, through [`Ctx`].

use crate::{Bar, InferenceError, InstrumentId, KvError, LogLevel, ModelInfo, OrderView, Position, Timestamp};

/// The host services a plugin may use: exactly the imports of the WIT world.
///
/// In a component these calls cross into the host; under
/// [`testing::Harness`](crate::testing::Harness) they are served in memory.
pub trait HostApi {
    /// Writes a structured log line attributed to the plugin.
    fn log(&mut self, level: LogLevel, message: &str);
    /// The market clock: the time of the event being processed.
    fn now(&mut self) -> Timestamp;
    /// Reads a key from the plugin's private store.
    fn kv_get(&mut self, key: &str) -> Option<Vec<u8>>;
    /// Writes a key to the plugin's private store, within its quota.
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Deletes a key from the plugin's private store.
    fn kv_delete(&mut self, key: &str) -> Result<(), KvError>;
    /// The plugin's open positions.
    fn positions(&mut self) -> Vec<Position>;
    /// The plugin's position in one instrument, if any.
    fn position(&mut self, instrument: InstrumentId) -> Option<Position>;
    /// The plugin's working orders.
    fn open_orders(&mut self) -> Vec<OrderView>;
    /// Up to `count` most recent closed bars, oldest first.
    fn history(&mut self, instrument: InstrumentId, period_secs: u32, count: u32) -> Vec<Bar>;
    /// A model the operator granted this plugin, by name.
    fn resolve_model(&mut self, name: &str) -> Result<ModelInfo, InferenceError>;
    /// Class probabilities of whole rows of features through a resolved model.
    fn predict(&mut self, handle: u32, rows: &[f32]) -> Result<Vec<f32>, InferenceError>;
}

/// Handle on the host, passed to every callback.
pub struct Ctx<'h> {
    host: &'h mut dyn HostApi,
}

impl<'h> Ctx<'h> {
    /// Wraps a host implementation (the SDK does this for you).
    pub fn new(host: &'h mut dyn HostApi) -> Self {
        Self { host }
    }

    /// Time of the event being processed, in ns since the Unix epoch.
    pub fn now(&mut self) -> Timestamp {
        self.host.now()
    }

    /// Logs at `level`.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.host.log(level, message)
    }

    /// Logs at info level.
    pub fn info(&mut self, message: &str) {
        self.host.log(LogLevel::Info, message)
    }

    /// Logs at warn level.
    pub fn warn(&mut self, message: &str) {
        self.host.log(LogLevel::Warn, message)
    }

    /// Reads `key` from the plugin's persistent store.
    pub fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.host.kv_get(key)
    }

    /// Writes `key` to the plugin's persistent store.
    pub fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.host.kv_set(key, value)
    }

    /// Deletes `key` from the plugin's persistent store.
    pub fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        self.host.kv_delete(key)
    }

    /// The plugin's open positions.
    pub fn positions(&mut self) -> Vec<Position> {
        self.host.positions()
    }

    /// The plugin's position in `instrument`, if it has one.
    pub fn position(&mut self, instrument: InstrumentId) -> Option<Position> {
        self.host.position(instrument)
    }

    /// The plugin's working orders.
    pub fn open_orders(&mut self) -> Vec<OrderView> {
        self.host.open_orders()
    }

    /// Recent closed bars of `instrument`, oldest first.
    pub fn history(&mut self, instrument: InstrumentId, period_secs: u32, count: u32) -> Vec<Bar> {
        self.host.history(instrument, period_secs, count)
    }

    /// The model `name`, if the operator loaded it and granted it to this
    /// plugin (resolve once, at init; see [`Model`](crate::Model)).
    pub fn model(&mut self, name: &str) -> Result<crate::Model, InferenceError> {
        self.host.resolve_model(name).map(crate::Model::new)
    }

    pub(crate) fn predict(&mut self, handle: u32, rows: &[f32]) -> Result<Vec<f32>, InferenceError> {
        self.host.predict(handle, rows)
    }
}
