//! Trading: the one path every order takes, and what it leaves behind.
//!
//! [`OrderPath`] owns everything between "a plugin asked for something" and
//! "the broker has the order and the host knows it": contract checks on the
//! intent, the broker's plan, the risk engine, the order tracker (client
//! order ids, the state table), the execution journal (written before the
//! broker acts), the broker itself (paper or Capital.com) and what comes back
//! (fills, cancels, expiries), plus the risk updates after every event
//! (P&L, loss limits, circuit breaker, alerts), flatten and de-leveraging.
//!
//! This crate is the only place an order is placed: nothing else holds a
//! broker. It never runs plugin code (intents arrive as values) and never
//! reads the network except through the Capital.com client.

mod broker;
mod execution;
mod order_path;
mod risk;
mod validation;
mod world;

pub use broker::{
    Book, BookSummary, Broker, BrokerAccount, BrokerNote, BrokerStats, CapitalBroker, CapitalBrokerConfig, Ledger, OrderRequest, PaperBroker, PaperConfig, Plan,
    Reconciliation, Submission,
};
pub use execution::journal::{OrderKind, SideName, TifName};
pub use execution::{
    EXIT_ACCEPTED, Entry, IllegalTransition, Journal, JournalError, JournalEvent, JournalReader, OrderEvent, OrderState, OrderTracker, Rebuilt, Restored, Slippage, TrackedOrder,
    TrackerStats, rebuild, report, transition,
};
pub use order_path::{ADOPTED, PROTECTIVE_EXIT, AccountCheck, AdoptReport, DeleveragePlan, EquityTolerance, FlattenReport, Footprint, OrderPath, OrderPathConfig, PathStats, RECONCILIATION_FAILED, Violation};
pub use risk::{
    Alert, AlertConfig, AlertSink, AlertStats, AlarmLevelName, Baselines, BookTotals, Cause, CircuitBreakerConfig, Exposure, OrderCheck, RiskConfig, RiskEngine, RiskReject, RiskRule, RiskStats,
    PortfolioVar, RiskView, StateRecord, TradingState, VarLimitConfig, VarView,
};
pub use world::{MarketClock, SharedWorld};
