//! `Failure`: why a delivery failed, typed, and what its dead letter's reason
//! says.

use std::fmt;
use std::time::Duration;

use pyventus_core::RunReport;
use pyventus_core::remote::{DecodeError, EnvelopeError};

/// Why a delivery failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Redis returned the entry without readable fields.
    Unreadable,
    /// Larger than the worker's `max_entry_size`.
    TooLarge {
        size: usize,
        max: usize,
    },
    /// Delivered more than `max_deliveries` times without finishing: its
    /// handlers may crash the process.
    TooManyDeliveries {
        deliveries: u64,
        max: u64,
    },
    Envelope(EnvelopeError),
    Decode(DecodeError),
    Resolve(pyventus_core::Error),
    MissingHandlers(Vec<String>),
    Handlers(RunReport),
    TimedOut(Duration),
}

impl Failure {
    /// The failure's kind, as the dead-letter metric's `reason` label.
    pub(super) fn label(&self) -> &'static str {
        match self {
            Failure::Unreadable | Failure::Envelope(_) | Failure::Decode(_) => "malformed",
            Failure::TooLarge { .. } => "too_large",
            Failure::TooManyDeliveries { .. } => "max_deliveries",
            Failure::Resolve(pyventus_core::Error::NoHandler { .. }) => "unknown_event",
            Failure::Resolve(_) => "unresolved",
            Failure::MissingHandlers(_) => "missing_handler",
            Failure::Handlers(_) => "failed",
            Failure::TimedOut(_) => "timed_out",
        }
    }

    /// Whether no delivery can ever succeed: the entry goes to the dead
    /// letters at once, without spending its remaining deliveries. (A version
    /// or an event this worker does not know may be known to another.)
    pub(super) fn is_permanent(&self) -> bool {
        match self {
            Failure::Unreadable | Failure::TooLarge { .. } | Failure::TooManyDeliveries { .. } => {
                true
            }
            Failure::Envelope(err) => !matches!(err, EnvelopeError::Version { .. }),
            _ => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreadable => {
                f.write_str("unreadable entry: Redis returned it without fields")
            }
            Failure::TooLarge { size, max } => write!(
                f,
                "entry too large: {size} bytes, over the worker's max_entry_size of {max} (not decoded)"
            ),
            Failure::TooManyDeliveries { deliveries, max } => write!(
                f,
                "delivered {deliveries} times, over max_deliveries ({max}), without finishing: \
                 its handlers may crash the worker process; not run again"
            ),
            Failure::Envelope(err) => err.fmt(f),
            Failure::Decode(err) => err.fmt(f),
            Failure::Resolve(err) => err.fmt(f),
            Failure::MissingHandlers(ids) => {
                write!(
                    f,
                    "the handlers it targets are not in this worker: {}",
                    ids.join(", ")
                )
            }
            Failure::Handlers(report) => report.fmt(f),
            Failure::TimedOut(limit) => write!(
                f,
                "handlers timed out after {limit:?} (handler_timeout); asynchronous ones were cancelled"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_can_never_run_skips_the_remaining_deliveries() {
        assert!(Failure::TooLarge { size: 2, max: 1 }.is_permanent());
        assert!(Failure::Envelope(EnvelopeError::Missing("v")).is_permanent());
        assert!(!Failure::Envelope(EnvelopeError::Version { found: 9 }).is_permanent());
        assert!(!Failure::TimedOut(Duration::from_secs(1)).is_permanent());
        assert!(
            Failure::TooManyDeliveries {
                deliveries: 6,
                max: 5
            }
            .to_string()
            .contains("crash")
        );
    }
}
