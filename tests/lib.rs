//! Integration tests live in `sandbox/` (one file per guarantee) and share
//! `support/`; this crate has no library code of its own.
