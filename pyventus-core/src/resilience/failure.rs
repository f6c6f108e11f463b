//! What a handler's failure callback learns when its policy gave up:
//! [`Exhausted`] (how many attempts, and why the last one failed) as the
//! context of the last attempt's error.

use std::fmt;
use std::time::Duration;

use crate::HandlerPanic;

/// The context of the error a handler with a [`Policy`](super::Policy) hands to
/// its failure callback once the policy gave up: how many attempts ran, and
/// why the last one failed. The error underneath is the last attempt's own,
/// so `err.downcast_ref::<HandlerPanic>()` and `err.root_cause()` still find
/// it; `{err:#}` shows both.
///
/// # Examples
///
/// ```
/// use pyventus_core::resilience::{Exhausted, FailureReason, Policy};
/// use pyventus_core::{Event, EventEmitter, EventLinker, InlineProcessingService};
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct Charge;
/// impl Event for Charge {
///     const NAME: &'static str = "Charge";
/// }
///
/// let seen = Arc::new(Mutex::new(None));
/// let record = seen.clone();
/// let linker = EventLinker::new();
/// linker
///     .on::<Charge>()
///     .policy(Policy::new().retries(2).backoff(Duration::ZERO, Duration::ZERO))
///     .on_failure(move |err: &anyhow::Error| {
///         *record.lock().unwrap() = err.downcast_ref::<Exhausted>().copied();
///     })
///     .subscribe(|_: &Charge| Err::<(), _>(anyhow::anyhow!("card declined")))?;
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit(Charge)?;
/// let exhausted = seen.lock().unwrap().expect("the callback ran");
/// assert_eq!(exhausted.attempts(), 3);
/// assert_eq!(exhausted.reason(), FailureReason::Failed);
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    attempts: u32,
    reason: FailureReason,
}

/// Why a handler's last attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// It returned an error.
    Failed,
    /// It panicked ([`HandlerPanic`]).
    Panicked,
    /// It was cancelled at its deadline ([`TimedOut`]).
    TimedOut,
    /// It never ran: its concurrency limit was reached and its policy refuses
    /// when busy ([`Refused`]).
    Refused,
    /// It never ran: a [`Middleware`](super::Middleware) rejected the
    /// delivery ([`Rejected`]).
    Rejected,
}

impl FailureReason {
    /// The reason, as metrics and logs label it: `failed`, `panicked`,
    /// `timed_out`, `refused`.
    pub fn label(self) -> &'static str {
        match self {
            FailureReason::Failed => "failed",
            FailureReason::Panicked => "panicked",
            FailureReason::TimedOut => "timed_out",
            FailureReason::Refused => "refused",
            FailureReason::Rejected => "rejected",
        }
    }

    /// The reason `err` is.
    pub(crate) fn of(err: &anyhow::Error) -> Self {
        if err.downcast_ref::<TimedOut>().is_some() {
            FailureReason::TimedOut
        } else if err.downcast_ref::<Refused>().is_some() {
            FailureReason::Refused
        } else if err.downcast_ref::<Rejected>().is_some() {
            FailureReason::Rejected
        } else if err.downcast_ref::<HandlerPanic>().is_some() {
            FailureReason::Panicked
        } else {
            FailureReason::Failed
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureReason::Failed => "failed",
            FailureReason::Panicked => "panicked",
            FailureReason::TimedOut => "timed out",
            FailureReason::Refused => "refused",
            FailureReason::Rejected => "rejected",
        })
    }
}

impl Exhausted {
    /// The context of `err`, the last of `attempts` attempts.
    pub(crate) fn of(attempts: u32, err: &anyhow::Error) -> Self {
        Exhausted {
            attempts,
            reason: FailureReason::of(err),
        }
    }

    /// How many attempts ran (0 when the delivery was [`Refused`], or
    /// [`Rejected`] before its first).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the last attempt failed.
    pub fn reason(&self) -> FailureReason {
        self.reason
    }
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.reason, self.attempts) {
            (FailureReason::Refused, 0) => f.write_str("refused before its first attempt"),
            (FailureReason::Rejected, 0) => f.write_str("rejected before its first attempt"),
            (reason, 1) => write!(f, "gave up after 1 attempt ({reason})"),
            (reason, n) => write!(f, "gave up after {n} attempts ({reason})"),
        }
    }
}

impl std::error::Error for Exhausted {}

/// The failure of an attempt of an async handler cancelled at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    pub(crate) after: Duration,
}

impl TimedOut {
    /// The deadline it ran into.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.after)
    }
}

impl std::error::Error for TimedOut {}

/// The failure of a delivery refused because its handler already had as many
/// runs in flight as its concurrency limit allows ([`Busy::Refuse`](super::Busy::Refuse)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub(crate) limit: u32,
}

impl Refused {
    /// The handler's concurrency limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused: the handler already has {} run{} in flight",
            self.limit,
            if self.limit == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Refused {}

/// The context of a middleware's error when it rejected a delivery: the
/// handler did not run, and nothing was retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected;

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rejected by middleware")
    }
}

impl std::error::Error for Rejected {}
