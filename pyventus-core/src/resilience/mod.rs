//! Resilient handlers: a [`Policy`] of retries with a capped, jittered
//! [`Backoff`], a timeout and a concurrency limit, declared where the handler
//! is (`#[on(E, retries = 3, backoff = "100ms..5s", timeout = "2s",
//! concurrency = 8)]`, or [`Subscription::policy`](crate::Subscription::policy)
//! and its shorthands), with the same meaning on every processing service.
//!
//! - `Policy` and [`Busy`] (this file): what a handler asks for, as constant
//!   data the attribute writes and the builder fills in.
//! - `backoff`: [`Backoff`], the delays between attempts (also a broker
//!   worker's between redeliveries, re-exported as `remote::Backoff`).
//! - `failure`: what a handler's failure callback and the dead-letter sink
//!   learn when the policy gave up: [`Exhausted`] (attempts and
//!   [`FailureReason`]) as the error's context, over the last attempt's error
//!   ([`TimedOut`], [`Refused`], a [`HandlerPanic`](crate::HandlerPanic) or
//!   the handler's own).
//! - `dead_letter`: [`DeadLetter`], what a linker's dead-letter sink receives.
//! - `middleware`: [`Middleware`], the user's code around each attempt of a
//!   handler or of a linker's handlers ([`Delivery`] is what it sees).
//! - `attempt`: which attempt of which subscriber this thread is running, so
//!   that the workflow hands only the last attempt's failure to the callbacks.
//!
//! The loop that runs the attempts is the emission's (`emission/attempts.rs`);
//! a handler without a policy never reaches it and costs what it did before.
//! `docs/resilience.md` is the guide.

pub(crate) mod attempt;
mod backoff;
mod dead_letter;
mod failure;
mod middleware;

pub use backoff::{Backoff, InvalidBackoff};
pub use dead_letter::DeadLetter;
pub(crate) use dead_letter::{DeadLetterSink, SinkFn};
pub use failure::{Exhausted, FailureReason, Refused, Rejected, TimedOut};
pub(crate) use middleware::Layers;
pub use middleware::{Delivery, Middleware};

use std::time::Duration;

use crate::Error;

/// The backoff of a policy that retries without saying how long to wait:
/// from 100 ms, doubling, capped at 10 s, with the default jitter.
pub const DEFAULT_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10));

/// What a handler does when a run fails, hangs or finds too many runs of it
/// in flight: retries, the backoff between them, a timeout per attempt, and a
/// concurrency limit with its backpressure.
///
/// A handler without a policy runs once, with no deadline and no limit, as
/// before: a policy costs nothing to the handlers that have none. With one,
/// the handler runs apart from the in-order synchronous subscribers (as an
/// async one does), so that its backoff never holds up its siblings.
///
/// - **Retries**: up to `retries` more attempts after the first fails (an
///   error, a panic or a timeout), each after the backoff's next delay. Only
///   this handler runs again; its siblings of the same emission ran once.
///   Every attempt sees the same emission ([`current_emission`](crate::current_emission),
///   its span's `emission` field).
/// - **Timeout** (async handlers only): an attempt still running at the
///   deadline is cancelled (its future dropped) and counts as failed with
///   [`TimedOut`]. A synchronous handler cannot be cancelled, so a timeout on
///   one is refused where it is declared.
/// - **Concurrency**: at most `limit` deliveries of this handler in flight at
///   once across every emission and service of the process; a delivery holds
///   its slot across its retries. When all are taken, [`Busy::Wait`] waits for
///   one, [`Busy::Refuse`] fails the delivery at once with [`Refused`].
///
/// When the policy gives up, the handler's failure callback (or the linker's
/// default) receives the last error once, with [`Exhausted`] as its context,
/// and the linker's dead-letter sink receives a [`DeadLetter`].
///
/// # Examples
///
/// ```
/// use pyventus_core::resilience::{Busy, Policy};
/// use std::time::Duration;
///
/// const SMTP: Policy = Policy::new()
///     .retries(3)
///     .backoff(Duration::from_millis(100), Duration::from_secs(5))
///     .timeout(Duration::from_secs(2))
///     .concurrency(8)
///     .when_busy(Busy::Wait);
/// assert_eq!(SMTP.max_attempts(), 4);
/// assert!(SMTP.check().is_ok());
/// assert!(Policy::new().concurrency(0).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    retries: u32,
    backoff: Backoff,
    timeout: Option<Duration>,
    concurrency: Option<u32>,
    busy: Busy,
}

/// What a delivery does when its handler's concurrency limit is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Busy {
    /// Wait for a run of the handler to finish (in order of arrival).
    #[default]
    Wait,
    /// Give up at once: the delivery fails with [`Refused`], which goes to the
    /// failure callback and the dead-letter sink (load shedding).
    Refuse,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy {
    /// No retries, no timeout, no limit: a handler's behaviour without a policy.
    pub const fn new() -> Self {
        Policy {
            retries: 0,
            backoff: DEFAULT_BACKOFF,
            timeout: None,
            concurrency: None,
            busy: Busy::Wait,
        }
    }

    /// Retries a failed run up to `retries` times (so up to `retries + 1`
    /// attempts in all).
    #[must_use]
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Waits from `min` before the first retry, doubling up to `max`, each
    /// delay jittered (see [`Backoff`]). Default: [`DEFAULT_BACKOFF`].
    #[must_use]
    pub const fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Backoff::exponential(min, max);
        self
    }

    /// Waits between retries as `backoff` says (its factor and jitter too).
    #[must_use]
    pub const fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Cancels an attempt of an async handler still running after `timeout`.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets at most `limit` deliveries of the handler run at once.
    #[must_use]
    pub const fn concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// What a delivery does when the concurrency limit is reached (default:
    /// [`Busy::Wait`]).
    #[must_use]
    pub const fn when_busy(mut self, busy: Busy) -> Self {
        self.busy = busy;
        self
    }

    /// How many times a failed run is retried.
    pub const fn retry_count(&self) -> u32 {
        self.retries
    }

    /// The most attempts a delivery makes: the retries and the first.
    pub const fn max_attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The delays between attempts.
    pub const fn retry_backoff(&self) -> Backoff {
        self.backoff
    }

    /// The deadline of each attempt, if any.
    pub const fn timeout_after(&self) -> Option<Duration> {
        self.timeout
    }

    /// The concurrency limit, if any.
    pub const fn concurrency_limit(&self) -> Option<u32> {
        self.concurrency
    }

    /// What a delivery does at the concurrency limit.
    pub const fn busy(&self) -> Busy {
        self.busy
    }

    /// The policy as a callback takes it from a linker's defaults: without
    /// the timeout for a synchronous one, which cannot be cancelled.
    pub(crate) const fn for_callback(mut self, is_async: bool) -> Self {
        if !is_async {
            self.timeout = None;
        }
        self
    }

    /// Whether the settings can work: a timeout and a concurrency limit above
    /// zero, a backoff whose first delay does not exceed its cap (and see
    /// [`Backoff::check`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] naming the setting.
    pub fn check(&self) -> Result<(), Error> {
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidSetting {
                setting: "timeout",
                problem: "is 0, so every attempt would time out; give a positive duration, \
                          or leave it out for no deadline",
            });
        }
        if self.concurrency == Some(0) {
            return Err(Error::InvalidSetting {
                setting: "concurrency",
                problem: "is 0, so the handler could never run; allow at least 1, \
                          or leave it out for no limit",
            });
        }
        self.backoff
            .check()
            .map_err(|invalid| Error::InvalidSetting {
                setting: "backoff",
                problem: match invalid {
                    InvalidBackoff::Factor => "has a factor below 1; delays must not shrink",
                    InvalidBackoff::Jitter => "has a jitter outside 0..=1",
                    InvalidBackoff::InitialAboveMax => {
                        "starts above its cap; give the shorter delay first (`min..max`)"
                    }
                },
            })
    }
}
