//! Where intents become orders and fills: the ledger of positions and
//! working orders per plugin, and the paper broker.

mod ledger;
mod paper;

pub use ledger::{Book, BookSummary, Ledger};
pub use paper::{BrokerStats, OrderRequest, PaperBroker, PaperConfig, Plan, Submission};
