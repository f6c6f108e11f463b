//! `DeliveryFailure`: why a worker's delivery failed, typed, with the label
//! its dead-letter metric takes and the reason its dead letter says.

use std::fmt;
use std::time::Duration;

use super::{DecodeError, EnvelopeError};
use crate::{Error, RunReport};

/// Why a delivery failed, whatever the broker: what a worker retries, or
/// dead-letters with this as its reason ([`Display`](fmt::Display)).
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::{DeliveryFailure, EnvelopeError};
/// use std::time::Duration;
///
/// let malformed = DeliveryFailure::Envelope(EnvelopeError::Missing("v"));
/// assert!(malformed.is_permanent()); // dead-lettered at once
/// assert_eq!(malformed.label(), "malformed");
///
/// let slow = DeliveryFailure::TimedOut(Duration::from_millis(300));
/// assert!(!slow.is_permanent()); // retried
/// assert!(slow.to_string().contains("timed out after 300ms"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DeliveryFailure {
    /// The broker handed over a message with nothing readable in it, in the
    /// backend's words ("unreadable entry: Redis returned it without fields").
    Unreadable(&'static str),
    /// Larger than the worker takes.
    TooLarge {
        /// Its size, in bytes.
        size: usize,
        /// The worker's limit.
        max: usize,
    },
    /// Delivered more times than the worker allows without finishing: its
    /// handlers may crash the process, so it is not run again.
    TooManyDeliveries {
        /// How many times it was delivered.
        deliveries: u64,
        /// The worker's limit.
        max: u64,
    },
    /// Not a valid envelope.
    Envelope(EnvelopeError),
    /// Its payload does not decode as its event.
    Decode(DecodeError),
    /// Its event cannot be resolved in the worker's linker (an unknown event,
    /// say).
    Resolve(Error),
    /// The handlers it targets (by id) are not in this worker.
    MissingHandlers(Vec<String>),
    /// Handlers ran, and some failed: the run's report.
    Handlers(RunReport),
    /// The handlers did not finish within their timeout; the asynchronous
    /// ones were cancelled.
    TimedOut(Duration),
    /// A processing service the worker hands its events to (a relay
    /// forwarding to tokio, or to a broker) refused it.
    Forward(Error),
}

impl DeliveryFailure {
    /// The failure's kind, as the dead-letter metric's `reason` label:
    /// `malformed`, `too_large`, `max_deliveries`, `unknown_event`,
    /// `unresolved`, `missing_handler`, `failed`, `timed_out` or `forward`.
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryFailure::Decode(DecodeError::Unknown(_))
            | DeliveryFailure::Resolve(Error::NoHandler { .. }) => "unknown_event",
            DeliveryFailure::Unreadable(_)
            | DeliveryFailure::Envelope(_)
            | DeliveryFailure::Decode(_) => "malformed",
            DeliveryFailure::TooLarge { .. } => "too_large",
            DeliveryFailure::TooManyDeliveries { .. } => "max_deliveries",
            DeliveryFailure::Resolve(_) => "unresolved",
            DeliveryFailure::MissingHandlers(_) => "missing_handler",
            DeliveryFailure::Handlers(_) => "failed",
            DeliveryFailure::TimedOut(_) => "timed_out",
            DeliveryFailure::Forward(_) => "forward",
        }
    }

    /// Whether no delivery can ever succeed: the message goes to the dead
    /// letters at once, without spending its remaining deliveries. (An
    /// envelope version or an event this worker does not know may be known to
    /// another worker, so those are retried.)
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryFailure::Unreadable(_)
            | DeliveryFailure::TooLarge { .. }
            | DeliveryFailure::TooManyDeliveries { .. } => true,
            DeliveryFailure::Envelope(err) => !matches!(err, EnvelopeError::Version { .. }),
            _ => false,
        }
    }
}

impl fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryFailure::Unreadable(why) => f.write_str(why),
            DeliveryFailure::TooLarge { size, max } => write!(
                f,
                "entry too large: {size} bytes, over the worker's max_entry_size of {max} (not \
                 decoded)"
            ),
            DeliveryFailure::TooManyDeliveries { deliveries, max } => write!(
                f,
                "delivered {deliveries} times, over max_deliveries ({max}), without finishing: \
                 its handlers may crash the worker process; not run again"
            ),
            DeliveryFailure::Envelope(err) => err.fmt(f),
            DeliveryFailure::Decode(err) => err.fmt(f),
            DeliveryFailure::Resolve(err) => err.fmt(f),
            DeliveryFailure::MissingHandlers(ids) => write!(
                f,
                "the handlers it targets are not in this worker: {}",
                ids.join(", ")
            ),
            DeliveryFailure::Handlers(report) => report.fmt(f),
            DeliveryFailure::TimedOut(limit) => write!(
                f,
                "handlers timed out after {limit:?}: they did not finish within the handler \
                 timeout ({limit:?}), and the asynchronous ones were cancelled"
            ),
            DeliveryFailure::Forward(err) => {
                write!(f, "the processing service did not take it: {err}")
            }
        }
    }
}

impl std::error::Error for DeliveryFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DeliveryFailure::Envelope(err) => Some(err),
            DeliveryFailure::Decode(err) => Some(err),
            DeliveryFailure::Resolve(err) | DeliveryFailure::Forward(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_can_never_run_skips_the_remaining_deliveries() {
        assert!(DeliveryFailure::TooLarge { size: 2, max: 1 }.is_permanent());
        assert!(DeliveryFailure::Envelope(EnvelopeError::Missing("v")).is_permanent());
        assert!(!DeliveryFailure::Envelope(EnvelopeError::Version { found: 9 }).is_permanent());
        assert!(!DeliveryFailure::TimedOut(Duration::from_secs(1)).is_permanent());
        assert!(
            DeliveryFailure::TooManyDeliveries {
                deliveries: 6,
                max: 5
            }
            .to_string()
            .contains("crash")
        );
    }
}
