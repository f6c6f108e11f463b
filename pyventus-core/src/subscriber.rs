//! Event subscribers: one subscription's callbacks and the handle to it.
//!
//! Concurrency: a subscriber is immutable once built except for its state, one
//! atomic byte. A one-time subscriber is claimed with a compare-and-swap, so
//! exactly one emission wins it however many threads emit at once.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::callback::{EventCallback, FailureCallback, SuccessCallback};
use crate::linker::LinkerShared;
use crate::{EventKey, EventLinker};

const ACTIVE: u8 = 0;
const CLAIMED: u8 = 1;
const REMOVED: u8 = 2;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct SubscriberInner {
    pub(crate) id: u64,
    pub(crate) once: bool,
    /// Whether the subscriber is linked to the global event and to other events
    /// (an emission then dedupes it).
    pub(crate) global_and_more: bool,
    pub(crate) blocking: bool,
    pub(crate) handler_id: Option<&'static str>,
    pub(crate) callback: EventCallback,
    pub(crate) success: Option<SuccessCallback>,
    pub(crate) failure: Option<FailureCallback>,
    state: AtomicU8,
    linker: Weak<LinkerShared>,
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
    pub(crate) fn new(
        parts: SubscriberParts,
        keys: &[EventKey],
        linker: &Arc<LinkerShared>,
    ) -> Self {
        SubscriberInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            once: parts.once,
            global_and_more: keys.len() > 1 && keys.iter().any(EventKey::is_any),
            blocking: parts.blocking,
            handler_id: parts.handler_id,
            callback: parts.callback,
            success: parts.success,
            failure: parts.failure,
            state: AtomicU8::new(ACTIVE),
            linker: Arc::downgrade(linker),
        }
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
}

/// A subscription: one event callback (with its success and failure callbacks)
/// linked to one or more events of one linker.
///
/// Cheap to clone; clones are the same subscriber. Subscribing the same function
/// twice gives two subscribers, and both run. Keeping or dropping the handle does
/// not affect the subscription: call [`unsubscribe`](Self::unsubscribe) to end it.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventKey, EventLinker};
///
/// let linker = EventLinker::new();
/// let sub = linker.on_named("Greet").subscribe(|name: &String| println!("Hello, {name}!"))?;
/// assert!(!sub.is_once());
/// assert!(linker.are_linked("Greet", &sub));
///
/// assert!(sub.unsubscribe());
/// assert!(!sub.unsubscribe()); // already gone
/// assert!(linker.is_empty());
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Clone)]
pub struct EventSubscriber {
    pub(crate) inner: Arc<SubscriberInner>,
}

impl EventSubscriber {
    /// A number that identifies this subscriber in the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether this is a one-time subscriber.
    pub fn is_once(&self) -> bool {
        self.inner.once
    }

    /// Whether the event callback is asynchronous.
    pub fn is_async(&self) -> bool {
        self.inner.callback.is_async()
    }

    /// Whether a synchronous callback runs off the async workers (`blocking`,
    /// Pyventus's `force_async`).
    pub fn is_blocking(&self) -> bool {
        self.inner.blocking
    }

    /// The stable id of a link-time handler (`module::path::function`); `None`
    /// for a subscriber made at runtime.
    pub fn handler_id(&self) -> Option<&'static str> {
        self.inner.handler_id
    }

    /// Whether the subscriber is still linked to an event.
    pub fn is_subscribed(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) == ACTIVE
            && self.linker().is_some_and(|l| l.contains_subscriber(self))
    }

    /// The linker this subscriber belongs to, while it exists.
    pub fn linker(&self) -> Option<EventLinker> {
        self.inner
            .linker
            .upgrade()
            .map(|shared| EventLinker { shared })
    }

    /// Unlinks the subscriber from all its events. Returns whether it was
    /// subscribed.
    pub fn unsubscribe(&self) -> bool {
        self.linker().is_some_and(|l| l.remove_subscriber(self))
    }
}

impl PartialEq for EventSubscriber {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for EventSubscriber {}

impl Hash for EventSubscriber {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl fmt::Debug for EventSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("EventSubscriber");
        s.field("id", &self.inner.id)
            .field("once", &self.inner.once)
            .field("callback", &self.inner.callback)
            .field("blocking", &self.inner.blocking);
        if let Some(handler) = self.inner.handler_id {
            s.field("handler", &handler);
        }
        s.finish_non_exhaustive()
    }
}
