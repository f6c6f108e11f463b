//! A subscriber's record: its callbacks and kind, as the registry stores it and
//! emissions run it, and its state.
//!
//! Concurrency: a record is immutable once built except for its state, one
//! atomic byte. A one-time subscriber is claimed with a compare-and-swap, so
//! exactly one emission wins it however many threads emit at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::EventKey;
use crate::erased::EventCallback;
use crate::workflow::{FailureCallback, SuccessCallback, Workflow};

const ACTIVE: u8 = 0;
const CLAIMED: u8 = 1;
const REMOVED: u8 = 2;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct SubscriberInner {
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) once: bool,
    /// Whether the subscriber is linked to the global event and to other events
    /// (an emission then dedupes it).
    pub(crate) global_and_more: bool,
    pub(crate) blocking: bool,
    pub(crate) callback: EventCallback,
    state: AtomicU8,
}

/// What goes into a subscriber, gathered by a subscription builder.
pub(crate) struct SubscriberParts {
    pub(crate) once: bool,
    pub(crate) blocking: bool,
    pub(crate) handler_id: Option<&'static str>,
    pub(crate) callback: EventCallback,
    pub(crate) success: Option<SuccessCallback>,
    pub(crate) failure: Option<FailureCallback>,
}

impl SubscriberInner {
    pub(crate) fn new(parts: SubscriberParts, keys: &[EventKey]) -> Self {
        SubscriberInner {
            workflow: Arc::new(Workflow {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                handler_id: parts.handler_id,
                success: parts.success,
                failure: parts.failure,
            }),
            once: parts.once,
            global_and_more: keys.len() > 1 && keys.iter().any(EventKey::is_any),
            blocking: parts.blocking,
            callback: parts.callback,
            state: AtomicU8::new(ACTIVE),
        }
    }

    /// The subscriber's process-unique id.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.workflow.id
    }

    pub(crate) fn handler_id(&self) -> Option<&'static str> {
        self.workflow.handler_id
    }

    /// Wins a one-time subscriber for the calling emission. Exactly one caller
    /// ever gets `true`.
    #[inline]
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(ACTIVE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    pub(crate) fn deactivate(&self) {
        self.state.store(REMOVED, Ordering::Release);
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state.load(Ordering::Acquire) == ACTIVE
    }
}
