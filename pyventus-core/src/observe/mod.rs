//! How pyventus shows what it does: `tracing` spans and events (`trace`), and,
//! with the `metrics` feature, counters, gauges and histograms on the
//! `metrics` facade (`metrics`, with its no-op twin `mock` when the feature is
//! off). The workflow and the emissions call in with plain values; nothing
//! here reads their types, so observing depends on nothing above it.

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod mock;
pub(crate) mod trace;

#[cfg(feature = "metrics")]
pub(crate) use metrics::{Acceptance, Accounting, Tally, exhausted, retried};
#[cfg(not(feature = "metrics"))]
pub(crate) use mock::{Acceptance, Accounting, Tally, exhausted, retried};
