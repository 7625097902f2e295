//! Where the engine joins the sandbox and trading: the world plugins read,
//! and the plugin list with each plugin's book.

use std::sync::Arc;

use serde::Serialize;
use stratbox_contract::{Bar, InstrumentId, OrderView, Position, Timestamp};
use stratbox_sandbox::{PluginStatus, WorldView};
use stratbox_trading::{BookSummary, SharedWorld};

/// The trading world as plugins may read it (through their imports).
pub struct PluginWorld(pub Arc<SharedWorld>);

impl WorldView for PluginWorld {
    fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    fn positions(&self, plugin: &str) -> Vec<Position> {
        self.0.ledger().positions(plugin)
    }

    fn position(&self, plugin: &str, instrument: InstrumentId) -> Option<Position> {
        self.0.ledger().position(plugin, instrument)
    }

    fn open_orders(&self, plugin: &str) -> Vec<OrderView> {
        self.0.ledger().open_orders(plugin)
    }

    fn holders(&self, instrument: InstrumentId) -> Vec<(Arc<str>, Position)> {
        self.0.ledger().holders(instrument)
    }

    fn history(&self, instrument: InstrumentId, period_secs: u32, count: usize) -> Vec<Bar> {
        self.0.history().last(instrument, period_secs, count)
    }
}

/// One plugin as `stratbox plugin list` shows it: its health and counters
/// from the sandbox, its book from the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    #[serde(flatten)]
    pub plugin: PluginStatus,
    pub book: BookSummary,
}

impl PluginView {
    pub fn new(plugin: PluginStatus, world: &SharedWorld) -> Self {
        let book = world.ledger().summary(&plugin.name);
        Self { plugin, book }
    }
}

// A view is read as the plugin's status with a book added.
impl std::ops::Deref for PluginView {
    type Target = PluginStatus;

    fn deref(&self) -> &PluginStatus {
        &self.plugin
    }
}
