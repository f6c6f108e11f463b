//! `WorkerStats`: what a worker has done, counted as it goes.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many entries a worker has handled, and how often it met trouble, since
/// it started.
///
/// # Examples
///
/// ```
/// use pyventus_redis::WorkerStats;
///
/// let stats = WorkerStats { processed: 10, retried: 1, ..WorkerStats::default() };
/// assert_eq!(stats.dead_lettered, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Acknowledged after its handlers ran.
    pub processed: u64,
    /// Failed, and left pending for another delivery after a backoff.
    pub retried: u64,
    /// Moved to the dead letters: failed its last allowed delivery, or could
    /// never run (malformed, too large, delivered too often).
    pub dead_lettered: u64,
    /// Claimed after being idle past the visibility timeout: from a consumer
    /// that died or stalled, or a retry whose backoff ended.
    pub reclaimed: u64,
    /// Deliveries whose handlers ran past their timeout (counted as failed).
    pub timed_out: u64,
    /// Entries another worker claimed while this one still ran them (this
    /// process was paused or cut off longer than the visibility timeout).
    pub leases_lost: u64,
    /// Entries cut short at shutdown (its deadline, or `shutdown_now`) and
    /// left pending.
    pub abandoned: u64,
    /// Times Redis came back after being unreachable.
    pub reconnects: u64,
    /// Times the consumer group had vanished and was created again.
    pub groups_recreated: u64,
}

/// The live counters behind [`WorkerStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) processed: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) reclaimed: AtomicU64,
    pub(super) timed_out: AtomicU64,
    pub(super) leases_lost: AtomicU64,
    pub(super) abandoned: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) groups_recreated: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            processed: get(&self.processed),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            reclaimed: get(&self.reclaimed),
            timed_out: get(&self.timed_out),
            leases_lost: get(&self.leases_lost),
            abandoned: get(&self.abandoned),
            reconnects: get(&self.reconnects),
            groups_recreated: get(&self.groups_recreated),
        }
    }
}
