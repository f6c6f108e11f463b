//! INTERIM: the minimal private pieces of the worker pipeline that Redis and
//! RabbitMQ share (why a delivery failed, and a capped, jittered backoff),
//! kept here until they move into `pyventus_core::remote`. Replace this file
//! with the shared ones when they land; nothing outside `relay/` names them.

use std::fmt;
use std::time::Duration;

use pyventus_core::RunReport;
use pyventus_core::remote::DecodeError;

/// Why one delivery of an event failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The payload does not decode as the event's type (schema drift, a hand edit).
    Decode(DecodeError),
    /// A named event whose payload does not decode as the type the relay was told.
    NamedPayload {
        event: String,
        source: serde_json::Error,
    },
    /// Nothing in the relay's linker handles the event, or another type owns its name.
    Resolve(pyventus_core::Error),
    /// Handlers failed (errors or panics).
    Handlers(RunReport),
    /// The handlers ran past their timeout.
    TimedOut(Duration),
    /// Claimed more often than the relay's `max_attempts` without finishing:
    /// its handlers may crash the relay.
    TooManyAttempts { attempts: i32, max: u32 },
    /// A processing service the relay forwards to refused the event, or
    /// dropped it.
    Forward(pyventus_core::Error),
}

impl Failure {
    /// The failure's kind: the dead letter's `kind`, and the dead-letter
    /// metric's `reason` label.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Failure::Decode(DecodeError::Unknown(_))
            | Failure::Resolve(pyventus_core::Error::NoHandler { .. }) => "unknown_event",
            Failure::Decode(_) | Failure::NamedPayload { .. } => "malformed",
            Failure::Resolve(_) => "unresolved",
            Failure::Handlers(_) => "failed",
            Failure::TimedOut(_) => "timed_out",
            Failure::TooManyAttempts { .. } => "max_attempts",
            Failure::Forward(_) => "forward",
        }
    }

    /// Whether no attempt can ever succeed: dead-lettered at once.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(self, Failure::TooManyAttempts { .. })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Decode(err) => err.fmt(f),
            Failure::NamedPayload { event, source } => write!(
                f,
                "malformed payload: {source} (named event `{event}`, decoded as the type given to RelayBuilder::named)"
            ),
            Failure::Resolve(err) => err.fmt(f),
            Failure::Handlers(report) => report.fmt(f),
            Failure::TimedOut(limit) => write!(
                f,
                "handlers timed out after {limit:?} (handler_timeout); asynchronous ones were cancelled"
            ),
            Failure::TooManyAttempts { attempts, max } => write!(
                f,
                "claimed {attempts} times, over max_attempts ({max}), without finishing: \
                 its handlers may crash the relay process; not run again"
            ),
            Failure::Forward(err) => write!(f, "the processing service did not take it: {err}"),
        }
    }
}

/// The pause before attempt `attempt + 1` (from 0): `initial × 2^attempt`,
/// capped at `max`, shortened by up to half at random (equal jitter) so that
/// events failing together do not retry together.
pub(crate) fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = i32::try_from(attempt.min(64)).unwrap_or(64);
    let ceiling = Duration::try_from_secs_f64(initial.as_secs_f64() * 2f64.powi(exponent))
        .map_or(max, |d| d.min(max));
    ceiling.mul_f64(1.0 - 0.5 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let ms = Duration::from_millis;
        for _ in 0..100 {
            let first = backoff(ms(100), ms(1_000), 0);
            assert!(first >= ms(50) && first <= ms(100), "{first:?}");
            let capped = backoff(ms(100), ms(1_000), 30);
            assert!(capped >= ms(500) && capped <= ms(1_000), "{capped:?}");
        }
        assert!(backoff(ms(100), ms(1_000), u32::MAX) <= ms(1_000));
    }
}
