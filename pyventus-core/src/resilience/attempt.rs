//! Which attempt of which subscriber this thread is running: set by the
//! emission's retry loop around each attempt, read by the workflow when the
//! attempt fails, so that only the last attempt's failure reaches the
//! callbacks and the dead-letter sink.
//!
//! A synchronous handler's callback settles its own outcome (it calls the
//! workflow's `fail` from inside), so the loop cannot intercept the error
//! before the workflow sees it: this marker tells the workflow. It is keyed by
//! the subscriber, so a handler that emits from inside itself (another
//! handler failing on this thread) is not mistaken for the attempt; the
//! previous marker comes back when the attempt ends.

use std::cell::Cell;

use crate::sync::thread_local;

/// One attempt of one subscriber's delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    /// The subscriber's id.
    pub(crate) subscriber: u64,
    /// From 1 (0: refused before any attempt).
    pub(crate) number: u32,
    /// Whether the policy gives up if it fails.
    pub(crate) last: bool,
}

thread_local! {
    static CURRENT: Cell<Option<Attempt>> = const { Cell::new(None) };
}

/// Runs `f` as `attempt`.
pub(crate) fn during<R>(attempt: Attempt, f: impl FnOnce() -> R) -> R {
    // `try_with`: a thread's destructors may run handlers after its locals are gone.
    let previous = CURRENT
        .try_with(|c| c.replace(Some(attempt)))
        .ok()
        .flatten();
    let _restore = Restore(previous);
    f()
}

/// The attempt of `subscriber` this thread is running, if any.
pub(crate) fn of(subscriber: u64) -> Option<Attempt> {
    CURRENT
        .try_with(Cell::get)
        .ok()
        .flatten()
        .filter(|a| a.subscriber == subscriber)
}

/// Puts the previous marker back, even if the attempt unwinds.
struct Restore(Option<Attempt>);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.0));
    }
}
