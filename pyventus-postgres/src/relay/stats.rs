//! `RelayStats`, and the relay's metrics on the `metrics` facade.

use std::sync::atomic::{AtomicU64, Ordering};

use pyventus_core::remote::WorkerMetrics;

/// The broker-worker metrics every backend records (label `backend="postgres"`).
pub(crate) static WORKER: WorkerMetrics = WorkerMetrics::new("postgres");

/// The relay's own metric names (with the `metrics` feature), beside the
/// shared worker metrics (`pyventus_worker_*`, label `backend="postgres"`).
///
/// | Name | Kind | What it measures |
/// |------|------|------------------|
/// | `pyventus_relay_claimed_total` | counter | events claimed (attempts) |
/// | `pyventus_relay_lag_seconds` | histogram | from an event's emit to its claim |
/// | `pyventus_relay_leases_lost_total` | counter | events another relay took over |
#[cfg(feature = "metrics")]
mod names {
    pub(super) const CLAIMED: &str = "pyventus_relay_claimed_total";
    pub(super) const LAG: &str = "pyventus_relay_lag_seconds";
    pub(super) const LEASES_LOST: &str = "pyventus_relay_leases_lost_total";
}

/// Records a claim of `n` events, and each one's lag (seconds from emit to claim).
pub(crate) fn claimed(lags: impl Iterator<Item = f64>) {
    #[cfg(feature = "metrics")]
    {
        let histogram = ::metrics::histogram!(names::LAG);
        let mut n = 0;
        for lag in lags {
            histogram.record(lag.max(0.0));
            n += 1;
        }
        ::metrics::counter!(names::CLAIMED).increment(n);
    }
    #[cfg(not(feature = "metrics"))]
    drop(lags);
}

pub(crate) fn leases_lost(n: u64) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::LEASES_LOST).increment(n);
    #[cfg(not(feature = "metrics"))]
    let _ = n;
}

/// What a relay has done since it started.
///
/// # Examples
///
/// ```
/// use pyventus_postgres::RelayStats;
///
/// let stats = RelayStats { claimed: 3, delivered: 2, retried: 1, ..RelayStats::default() };
/// assert_eq!(stats.dead_lettered, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Events claimed (each attempt counts).
    pub claimed: u64,
    /// Events whose handlers all succeeded (or that a processing service
    /// took), and that left the outbox.
    pub delivered: u64,
    /// Failed attempts left for a retry after a backoff.
    pub retried: u64,
    /// Events moved to the dead letters.
    pub dead_lettered: u64,
    /// Attempts whose handlers ran past their timeout.
    pub timed_out: u64,
    /// Events another relay claimed while this one still ran them (this one
    /// stalled past the lease): their outcome here was not written.
    pub leases_lost: u64,
    /// Events cut short at shutdown (its deadline, or `shutdown_now`) and
    /// given back.
    pub abandoned: u64,
    /// Times PostgreSQL came back after being unreachable.
    pub reconnects: u64,
    /// Lag of the last claimed event, from its emit to its claim, in
    /// milliseconds.
    pub last_lag_ms: u64,
}

/// The live counters behind [`RelayStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) claimed: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) last_lag_ms: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RelayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayStats {
            claimed: get(&self.claimed),
            delivered: get(&self.delivered),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            timed_out: get(&self.timed_out),
            leases_lost: get(&self.leases_lost),
            abandoned: get(&self.abandoned),
            reconnects: get(&self.reconnects),
            last_lag_ms: get(&self.last_lag_ms),
        }
    }
}
