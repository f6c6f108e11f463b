//! Capped exponential backoff with jitter, for reconnecting: self-contained, so
//! that it can move to `pyventus-core` and serve every backend.

use std::time::Duration;

/// The delays between attempts to reconnect: `initial`, doubling up to `max`,
/// each drawn at random from its upper half (so workers that lost the broker at
/// the same moment do not come back in step), and back to `initial` after a
/// success ([`reset`](Self::reset)).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    /// The ceiling of the next delay, before jitter.
    next: Duration,
    /// Attempts since the last reset.
    attempts: u32,
}

impl Backoff {
    /// A backoff from `initial` up to `max` (`max` is raised to `initial` if
    /// lower).
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            next: initial,
            attempts: 0,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = ceiling.saturating_mul(2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        jitter(ceiling)
    }

    /// How many delays were handed out since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over from `initial`: the last attempt succeeded.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

/// A delay drawn uniformly from `[ceiling / 2, ceiling]` ("equal jitter": never
/// less than half, so a crowd spreads out without hammering the broker).
fn jitter(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    let spread = u64::try_from(ceiling.saturating_sub(half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_their_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let ceilings = [100, 200, 400, 700, 700];
        for ceiling in ceilings {
            let delay = backoff.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(backoff.attempts(), 5);
    }

    #[test]
    fn a_reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert!(backoff.next_delay() <= Duration::from_millis(10));
    }

    #[test]
    fn jitter_spreads_a_crowd() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn a_zero_delay_stays_zero() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(backoff.next_delay(), Duration::ZERO);
    }
}
