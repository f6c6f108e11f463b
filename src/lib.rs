//! pyventus: event-driven programming for Rust.
pub use pyventus_core::*;
#[doc(inline)]
pub use pyventus_macros::*;
