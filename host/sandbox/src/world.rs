//! What a plugin may read of the host's world, as the sandbox needs it: the
//! market clock, its own positions and orders, and recent bars. The engine
//! implements it over the trading state; the sandbox never sees more.

use std::sync::Arc;

use stratbox_contract::{Bar, InstrumentId, OrderView, Position, Timestamp};

/// The host's state as plugins may read it (every method is a read).
pub trait WorldView: Send + Sync {
    /// Market time of the event being processed.
    fn now(&self) -> Timestamp;
    /// `plugin`'s open positions.
    fn positions(&self, plugin: &str) -> Vec<Position>;
    /// `plugin`'s position in `instrument`, if it has one.
    fn position(&self, plugin: &str, instrument: InstrumentId) -> Option<Position>;
    /// `plugin`'s working orders.
    fn open_orders(&self, plugin: &str) -> Vec<OrderView>;
    /// Every plugin holding a position in `instrument`, with that position
    /// (what stop policies are shown).
    fn holders(&self, instrument: InstrumentId) -> Vec<(Arc<str>, Position)>;
    /// Up to `count` of the latest bars of `instrument` at `period_secs`, oldest first.
    fn history(&self, instrument: InstrumentId, period_secs: u32, count: usize) -> Vec<Bar>;
}

/// A world with nothing in it, at time zero (for inspecting a component).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyWorld;

impl WorldView for EmptyWorld {
    fn now(&self) -> Timestamp {
        0
    }
    fn positions(&self, _plugin: &str) -> Vec<Position> {
        Vec::new()
    }
    fn position(&self, _plugin: &str, _instrument: InstrumentId) -> Option<Position> {
        None
    }
    fn open_orders(&self, _plugin: &str) -> Vec<OrderView> {
        Vec::new()
    }
    fn holders(&self, _instrument: InstrumentId) -> Vec<(Arc<str>, Position)> {
        Vec::new()
    }
    fn history(&self, _instrument: InstrumentId, _period_secs: u32, _count: usize) -> Vec<Bar> {
        Vec::new()
    }
}
