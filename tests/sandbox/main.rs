//! The sandbox guarantees, one file each. Every hostile plugin is a real
//! component built from `tests/plugins/` and run beside the well-behaved
//! `examples/sma-cross`: the host must survive, the bad plugin must be refused
//! or quarantined with a readable reason, and the bystander must ask for
//! exactly what it asks for in a run without the bad plugin.

#[path = "../support/mod.rs"]
mod support;

mod alarms_journaled;
mod bystander;

mod bounded_text;
mod compile_cache;
mod contract_version;
mod deadline;
mod event_delivery;
mod fill_times;
mod fuel;
mod host_calls;
mod hot_swap;
mod inference;
mod iloop;
mod intent_flood;
mod invalid_numbers;
mod kv_quota;
mod late_commands;
mod log_flood;
mod malformed;
mod memory;
mod orders_on_fault;
mod panic;
mod python;
mod recovery;
mod restart;
mod risk_limits;
mod stack_overflow;
mod unauthorised_import;
