//! An emission dropped before it ran: a refusal, when its processing service
//! dropped it during `submit` and said so, else a loss, reported where the
//! user looks, and `Error::EmissionDropped` to whoever awaits it.

use super::{EventEmission, IfDropped};
use crate::Error;
use crate::sync::thread_local;

thread_local! {
    /// The emission being submitted on this thread, and, if the processor
    /// dropped it unsettled during `submit`, its event's name (the submitter
    /// does not keep the event: its last owner drops it, wherever that runs).
    static SUBMITTING: std::cell::RefCell<Option<(u64, Option<String>)>> =
        const { std::cell::RefCell::new(None) };
}

/// An emission being submitted on this thread, from [`submitting`] until
/// [`end`](Submitting::end).
pub(crate) struct Submitting {
    previous: Option<(u64, Option<String>)>,
}

/// Marks emission `id` as being submitted on this thread: if its processing
/// service drops it meanwhile, unsettled, its drop records its event's name
/// here rather than reporting a loss.
#[inline]
pub(crate) fn submitting(id: u64) -> Submitting {
    // `try_with`: a thread's destructors may emit after its locals are gone.
    let previous = SUBMITTING
        .try_with(|s| s.replace(Some((id, None))))
        .ok()
        .flatten();
    Submitting { previous }
}

impl Submitting {
    /// The submission is over: the event's name if the processing service
    /// dropped the emission during it.
    #[inline]
    pub(crate) fn end(self) -> Option<String> {
        SUBMITTING
            .try_with(|s| s.replace(self.previous))
            .ok()
            .flatten()
            .and_then(|(_, dropped)| dropped)
    }
}

/// Says, where the user looks, that an accepted emission will not run.
#[cold]
pub(crate) fn report_loss(id: u64, event: &str, why: &str) {
    tracing::error!(
        target: "pyventus",
        emission = id,
        event,
        "an emission was lost before its subscribers finished: {why}"
    );
}

impl Drop for EventEmission {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if self.subscribers.is_empty() {
            // Nothing to run, so nothing lost (an emission a remote service
            // refused, say); out of its service's gauges all the same.
            self.accounting
                .settled(self.event.name(), self.processor, false);
            return;
        }
        let in_submit = SUBMITTING
            .try_with(|s| match s.try_borrow_mut().as_deref_mut() {
                Ok(Some((id, dropped))) if *id == self.id => {
                    *dropped = Some(self.event.name().to_owned());
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if in_submit || self.if_dropped == IfDropped::Redelivered {
            // `submit_to` knows whether this was a refusal or a loss; a broker
            // redelivers what did not finish.
            self.accounting
                .settled(self.event.name(), self.processor, false);
            self.finish(|| Err(Error::EmissionDropped));
            return;
        }
        self.accounting
            .settled(self.event.name(), self.processor, true);
        // Accepted, and neither run nor handed off: say so, where the user looks.
        // A counted emission joins its service's batch (a runtime that shuts
        // down drops all its tasks at once: one report says how many).
        match &self.ticket {
            Some(ticket) => ticket.lose(self.event.name()),
            None => report_loss(
                self.id,
                self.event.name(),
                "it was dropped (its runtime shut down, or its processing service dropped it)",
            ),
        }
        self.finish(|| Err(Error::EmissionDropped));
    }
}
