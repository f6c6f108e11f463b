//! `Health`: how a worker is doing, for readiness and liveness probes.

use std::time::Instant;

/// How a [`Worker`](crate::Worker) is doing, as
/// [`health`](crate::Worker::health) and
/// [`watch_health`](crate::Worker::watch_health) report it.
///
/// A readiness probe asks for [`Ready`](Self::Ready); a liveness probe for
/// anything but [`Failed`](Self::Failed) (and, if it cares, for
/// [`Reconnecting`](Self::Reconnecting) not lasting too long).
///
/// # Examples
///
/// ```
/// use pyventus_redis::Health;
/// use std::time::Instant;
///
/// let health = Health::Reconnecting { since: Instant::now() };
/// assert!(!health.is_ready());
/// assert!(health.is_alive());
/// assert!(!Health::Failed.is_alive());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Built; [`run`](crate::Worker::run) has not connected yet.
    Starting,
    /// Connected and taking entries.
    Ready,
    /// Redis has been unreachable since `since`; the worker retries with a
    /// backoff until it is back or [`give_up_after`](crate::WorkerBuilder::give_up_after)
    /// has passed. Entries in flight keep running.
    Reconnecting {
        /// When the outage began.
        since: Instant,
    },
    /// Shutting down: taking no more entries, finishing those in flight.
    Stopping,
    /// [`run`](crate::Worker::run) returned after a shutdown.
    Stopped,
    /// [`run`](crate::Worker::run) returned an error (it gave up on Redis, or
    /// Redis refused the credentials).
    Failed,
}

impl Health {
    /// Whether the worker is taking entries.
    pub fn is_ready(&self) -> bool {
        *self == Health::Ready
    }

    /// Whether the worker is running or about to (not stopped, not failed).
    pub fn is_alive(&self) -> bool {
        !matches!(self, Health::Stopped | Health::Failed)
    }
}
