//! `EventSubscriber`: the handle to one subscription.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use crate::registry::Registry;
use crate::registry::record::SubscriberInner;

/// A subscription: one event callback (with its success and failure callbacks)
/// linked to one or more events of one linker.
///
/// Cheap to clone; clones are the same subscriber. Subscribing the same function
/// twice gives two subscribers, and both run. Keeping or dropping the handle does
/// not affect the subscription: call [`unsubscribe`](Self::unsubscribe) to end it,
/// or subscribe with [`guard()`](crate::Subscription::guard) for a
/// [`SubscriptionGuard`](crate::SubscriptionGuard) that ends it on drop.
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
    pub(crate) registry: Weak<Registry>,
}

impl EventSubscriber {
    /// A number that identifies this subscriber in the process.
    pub fn id(&self) -> u64 {
        self.inner.id()
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
        self.inner.handler_id()
    }

    /// Whether the subscriber is still linked to an event.
    pub fn is_subscribed(&self) -> bool {
        self.inner.is_live()
            && self
                .registry
                .upgrade()
                .is_some_and(|r| r.keys_of(self.id()).is_some())
    }

    /// Unlinks the subscriber from all its events. Returns whether it was
    /// subscribed.
    ///
    /// An emission that started before may still run it; a guarded subscriber's
    /// (see [`SubscriptionGuard`](crate::SubscriptionGuard)) does not: once
    /// this returns, no new run of it starts.
    pub fn unsubscribe(&self) -> bool {
        self.close_gate();
        let Some(registry) = self.registry.upgrade() else {
            return false;
        };
        let removed = registry.remove_subscriber(self.id());
        if removed {
            registry.trace("removed subscriber", self);
        }
        removed
    }
}

impl EventSubscriber {
    /// Stops new runs of a guarded subscriber (one with a gate).
    pub(crate) fn close_gate(&self) {
        if let Some(gate) = &self.inner.gate {
            gate.close();
        }
    }
}

impl PartialEq for EventSubscriber {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for EventSubscriber {}

impl Hash for EventSubscriber {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl fmt::Debug for EventSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("EventSubscriber");
        s.field("id", &self.id())
            .field("once", &self.inner.once)
            .field("callback", &self.inner.callback)
            .field("blocking", &self.inner.blocking);
        if let Some(handler) = self.handler_id() {
            s.field("handler", &handler);
        }
        s.finish_non_exhaustive()
    }
}
