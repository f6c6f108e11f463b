//! `Backoff`: a capped, jittered exponential backoff: the pause a handler takes
//! between its attempts (a [`Policy`](super::Policy)'s retries), and the pause a worker takes
//! between reconnection attempts, between redeliveries of a failed message and
//! between attempts to publish a dead letter, whatever its broker.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// Delays that grow by a factor at each attempt up to a cap, each shortened by
/// a random share (the jitter) so that many clients failing together do not
/// retry together.
///
/// The delay before attempt `n` (counting from 0) is `min(max, initial ×
/// factor^n)`, then shortened by up to `jitter` of itself: with the default
/// jitter of 0.5, somewhere between half of it and all of it ("equal jitter").
/// A jitter of 0 gives exact delays, 1 anything from zero up ("full jitter").
///
/// # Examples
///
/// ```
/// use pyventus_core::resilience::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));
/// assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
/// assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
/// assert_eq!(backoff.ceiling(10), Duration::from_secs(5)); // capped
///
/// let delay = backoff.delay(3);
/// assert!(delay >= Duration::from_millis(400) && delay <= Duration::from_millis(800));
///
/// let exact = backoff.jitter(0.0);
/// assert_eq!(exact.delay(2), Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
}

/// Why a [`Backoff`] cannot work, as [`Backoff::check`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBackoff {
    /// The factor is below 1 (or not a number): delays would shrink.
    #[error("the backoff's factor must be a number of at least 1")]
    Factor,
    /// The jitter is outside `0.0..=1.0`.
    #[error("the backoff's jitter must be between 0 and 1")]
    Jitter,
    /// The first delay is longer than the cap.
    #[error("the backoff's initial delay must not exceed its cap")]
    InitialAboveMax,
}

impl Backoff {
    /// Delays from `initial`, doubling at each attempt, capped at `max`, with
    /// the default jitter of 0.5.
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            factor: 2.0,
            jitter: 0.5,
        }
    }

    /// Grows the delay by `factor` at each attempt instead of doubling it (1
    /// for a constant delay).
    #[must_use]
    pub const fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Shortens each delay by a random share of up to `jitter` (0 to 1) of it.
    #[must_use]
    pub const fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first delay.
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest delay.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// Whether the settings can work: a factor of at least 1, a jitter between
    /// 0 and 1, an initial delay no longer than the cap.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::resilience::{Backoff, InvalidBackoff};
    /// use std::time::Duration;
    ///
    /// let shrinking = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(8)).factor(0.5);
    /// assert_eq!(shrinking.check(), Err(InvalidBackoff::Factor));
    /// ```
    pub fn check(&self) -> Result<(), InvalidBackoff> {
        if self.factor.is_nan() || self.factor < 1.0 {
            return Err(InvalidBackoff::Factor);
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(InvalidBackoff::Jitter);
        }
        if self.initial > self.max {
            return Err(InvalidBackoff::InitialAboveMax);
        }
        Ok(())
    }

    /// The delay before attempt `attempt` (from 0) without jitter: the longest
    /// [`delay`](Self::delay) can be.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let grown = self.initial.as_secs_f64() * self.factor.powi(exponent);
        Duration::try_from_secs_f64(grown).map_or(self.max, |d| d.min(self.max))
    }

    /// The delay before attempt `attempt` (from 0), jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return ceiling;
        }
        let shortened = ceiling.as_secs_f64() * jitter * random_fraction();
        ceiling.saturating_sub(Duration::try_from_secs_f64(shortened).unwrap_or(ceiling))
    }
}

/// A random number in `0.0..=1.0`. Jitter needs spread, not cryptographic
/// quality: std's randomly keyed hasher gives it without a dependency.
fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now());
    let high = u32::try_from(bits >> 32).unwrap_or(u32::MAX);
    f64::from(high) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let backoff = Backoff::exponential(10 * MS, 100 * MS)
            .factor(3.0)
            .jitter(0.0);
        let delays: Vec<_> = (0..5).map(|n| backoff.delay(n)).collect();
        assert_eq!(delays, [10 * MS, 30 * MS, 90 * MS, 100 * MS, 100 * MS]);
        assert_eq!(backoff.delay(u32::MAX), 100 * MS, "no overflow");
    }

    #[test]
    fn jitter_shortens_a_delay_by_at_most_its_share() {
        let backoff = Backoff::exponential(100 * MS, 100 * MS).jitter(0.25);
        for _ in 0..1_000 {
            let delay = backoff.delay(0);
            assert!(delay >= 75 * MS && delay <= 100 * MS, "{delay:?}");
        }
        let spread: std::collections::HashSet<_> = (0..100).map(|_| backoff.delay(0)).collect();
        assert!(spread.len() > 10, "jittered delays differ");
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        let ok = Backoff::exponential(MS, 10 * MS);
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(ok.factor(f64::NAN).check(), Err(InvalidBackoff::Factor));
        assert_eq!(ok.jitter(1.5).check(), Err(InvalidBackoff::Jitter));
        assert_eq!(
            Backoff::exponential(10 * MS, MS).check(),
            Err(InvalidBackoff::InitialAboveMax)
        );
        assert_eq!(ok.factor(1.0).jitter(0.0).delay(9), MS, "a constant delay");
    }
}
