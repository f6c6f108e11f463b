//! The slot a worker's responder leaves its encoded answer in, carried by
//! the emission (and its current-emission context) from the worker's
//! pipeline to the responder: beneath both, so neither reaches into the
//! other.

use std::sync::{Mutex, PoisonError};

/// Where a worker's responder leaves its encoded answer, for the worker to
/// send to the caller's reply address once the emission has run.
#[derive(Debug, Default)]
pub(crate) struct RemoteAnswer(Mutex<Option<String>>);

impl RemoteAnswer {
    /// What a worker that has no responder answers: serde's form of the
    /// wire's `NoResponder` (`request/remote.rs` checks that they agree).
    #[cfg(feature = "serde")]
    pub(crate) const NO_RESPONDER: &'static str = "\"NoResponder\"";

    pub(crate) fn put(&self, answer: String) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // The first answer wins; only one responder answers.
        if slot.is_none() {
            *slot = Some(answer);
        }
    }

    #[cfg(feature = "serde")]
    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}
