//! State the event loop writes and plugins read through their imports: the
//! market clock, the ledger of positions and orders, and recent bars.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::broker::Ledger;
use stratbox_market::BarHistory;
use stratbox_contract::Timestamp;

/// Time of the event being processed, in ns since the Unix epoch.
#[derive(Debug, Default)]
pub struct MarketClock(AtomicI64);

impl MarketClock {
    pub fn now(&self) -> Timestamp {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t, Ordering::Relaxed)
    }
}

/// Shared between the event loop (writer) and every plugin store (readers).
#[derive(Debug, Default)]
pub struct SharedWorld {
    pub clock: MarketClock,
    ledger: RwLock<Ledger>,
    history: RwLock<BarHistory>,
}

impl SharedWorld {
    pub fn new(history_depth: usize) -> Self {
        Self { clock: MarketClock::default(), ledger: RwLock::default(), history: RwLock::new(BarHistory::new(history_depth)) }
    }

    // A panic while holding these locks would already have stopped the loop;
    // recovering the data is better than poisoning every plugin call.
    pub fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ledger_mut(&self) -> RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn history(&self) -> RwLockReadGuard<'_, BarHistory> {
        self.history.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn history_mut(&self) -> RwLockWriteGuard<'_, BarHistory> {
        self.history.write().unwrap_or_else(|e| e.into_inner())
    }
}
