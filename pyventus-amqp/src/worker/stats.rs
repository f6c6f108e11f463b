//! `WorkerStats`: what a worker has done, counted as it goes.

use std::sync::atomic::AtomicU64;

/// The worker's counters, as its deliveries update them.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) processed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// How many messages a worker has handled, since it started.
///
/// # Examples
///
/// ```
/// use pyventus_amqp::WorkerStats;
///
/// let stats = WorkerStats { processed: 10, retried: 1, ..WorkerStats::default() };
/// assert_eq!(stats.dead_lettered, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Acknowledged after its handlers ran.
    pub processed: u64,
    /// Failed, and returned to the queue for another delivery.
    pub retried: u64,
    /// Moved to the dead letters (its last allowed delivery failed, or it was
    /// not an envelope).
    pub dead_lettered: u64,
    /// Deliveries of a message delivered before (a retry, or one whose worker
    /// died or lost its connection).
    pub redelivered: u64,
    /// Times the worker connected again after losing the broker.
    pub reconnects: u64,
}
