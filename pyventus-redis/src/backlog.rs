//! The queue's backlog (entries no worker has taken yet) as the emitting side
//! sees it, and what a full queue does to an emission.
//!
//! Checking the backlog costs a script instead of a plain `XADD` (about a
//! third more work for Redis), so a service checks only when it may matter:
//! when its last known backlog, plus what it enqueued since, comes within half
//! of the cap, and at least every [`RECHECK`] otherwise (other processes
//! enqueue too). Near the cap every emission checks, so the cap holds exactly
//! as long as no one else adds half a cap of entries within one `RECHECK`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What [`emit`](pyventus_core::EventEmitter::emit) does when the queue's
/// backlog (entries no worker has taken yet) reaches the
/// [`stream_cap`](crate::RedisProcessingServiceBuilder::stream_cap).
///
/// # Examples
///
/// ```no_run
/// use pyventus_redis::{Overflow, RedisProcessingService};
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_redis::Error> {
/// // Metrics samples: the newest matter, losing old ones is fine (and counted).
/// let samples = RedisProcessingService::builder("redis://127.0.0.1:6379")
///     .queue("samples")
///     .stream_cap(10_000)
///     .when_full(Overflow::DropOldest)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Refuse the emission: `emit` returns an error whose source is
    /// [`Error::QueueFull`](crate::Error::QueueFull). Nothing is lost
    /// silently; the caller decides (retry later, shed load, fail the
    /// request). The default.
    #[default]
    Reject,
    /// Enqueue it, and drop the oldest entries no worker has taken yet to make
    /// room: each drop is counted
    /// ([`ServiceStats::dropped`](crate::ServiceStats::dropped)) and logged at
    /// warn level. Entries held by workers are never dropped.
    DropOldest,
}

/// How long a service trusts what it last learned of the backlog.
pub(crate) const RECHECK: Duration = Duration::from_millis(100);

/// The backlog as last seen, and what was enqueued since without looking.
#[derive(Debug)]
pub(crate) struct Gauge {
    cap: u64,
    start: Instant,
    /// Milliseconds since `start` of the last check, plus one (0: never).
    checked_at: AtomicU64,
    seen: AtomicU64,
    added_since: AtomicU64,
}

impl Gauge {
    pub(crate) fn new(cap: u64) -> Self {
        Gauge {
            cap,
            start: Instant::now(),
            checked_at: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            added_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Whether the next emission must check the backlog.
    pub(crate) fn must_check(&self) -> bool {
        let checked_at = self.checked_at.load(Ordering::Relaxed);
        if checked_at == 0
            || self.now().saturating_sub(checked_at) >= crate::connection::millis(RECHECK)
        {
            return true;
        }
        let estimate = self.seen.load(Ordering::Relaxed) + self.added_since.load(Ordering::Relaxed);
        estimate.saturating_mul(2) >= self.cap
    }

    /// A check found `backlog`.
    pub(crate) fn checked(&self, backlog: u64) {
        self.seen.store(backlog, Ordering::Relaxed);
        self.added_since.store(0, Ordering::Relaxed);
        self.checked_at.store(self.now(), Ordering::Relaxed);
    }

    /// An entry was enqueued without a check.
    pub(crate) fn added(&self) {
        self.added_since.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_checks_first_then_near_the_cap_and_when_its_view_is_old() {
        let gauge = Gauge::new(100);
        assert!(gauge.must_check(), "nothing known yet");
        gauge.checked(10);
        assert!(!gauge.must_check(), "far below the cap");
        for _ in 0..40 {
            gauge.added();
        }
        assert!(gauge.must_check(), "half the cap reached");
        gauge.checked(0);
        assert!(!gauge.must_check());
        std::thread::sleep(RECHECK + Duration::from_millis(5));
        assert!(gauge.must_check(), "too old to trust");
    }
}
