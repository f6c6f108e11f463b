//! How pyventus shows what it does: `tracing` spans and events (`trace`), and,
//! with the `metrics` feature, counters, gauges and histograms on the
//! `metrics` facade (`metrics`).

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub(crate) mod trace;
