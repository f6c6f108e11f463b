//! pyventus: event-driven programming for Rust.
pub use pyventus_core::*;
