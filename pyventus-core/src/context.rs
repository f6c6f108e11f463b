//! What a running handler can learn about the emission it runs in: its id, its
//! event, and whatever its processing service attached (a broker's delivery).
//!
//! The emission is current on the thread that runs a synchronous subscriber
//! (`blocking` ones on their `spawn_blocking` thread included) and inside every
//! poll of an asynchronous subscriber's future, whatever thread polls it.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::AnyEvent;

/// The emission a handler runs in, as [`current_emission`] returns it.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, TokioProcessingService, current_emission};
/// use std::sync::{Arc, Mutex};
///
/// let linker = EventLinker::new();
/// let seen = Arc::new(Mutex::new(None));
/// let slot = seen.clone();
/// linker.on_named("Tick").subscribe(move || {
///     let current = current_emission().expect("inside a handler");
///     *slot.lock().unwrap() = Some(current.event_name().to_owned());
/// })?;
/// let emitter = EventEmitter::builder()
///     .processor(TokioProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit_named("Tick", ())?; // outside a runtime: runs before returning
/// assert_eq!(seen.lock().unwrap().as_deref(), Some("Tick"));
/// assert!(current_emission().is_none()); // not inside a handler
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Clone)]
pub struct CurrentEmission {
    pub(crate) id: u64,
    pub(crate) event: Arc<AnyEvent>,
    pub(crate) context: Option<Arc<dyn Any + Send + Sync>>,
}

impl CurrentEmission {
    /// The emission's id ([`EventEmission::id`](crate::EventEmission::id)).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The emitted event's name.
    pub fn event_name(&self) -> &str {
        self.event.name()
    }

    /// The emitted event.
    pub fn event(&self) -> &AnyEvent {
        &*self.event
    }

    /// What the processing service attached with
    /// [`EventEmission::set_context`](crate::EventEmission::set_context), if it
    /// is a `T`: a broker's delivery (its envelope id and attempt), say.
    pub fn context<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.context.clone()?.downcast().ok()
    }
}

impl fmt::Debug for CurrentEmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentEmission")
            .field("id", &self.id)
            .field("event", &self.event.name())
            .field("has_context", &self.context.is_some())
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<CurrentEmission>> = const { RefCell::new(None) };
}

/// The emission the calling handler runs in, if it runs in one.
///
/// `None` outside handlers, and on the inline fast path (an inline emission
/// whose subscribers are all synchronous builds no emission at all).
pub fn current_emission() -> Option<CurrentEmission> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Makes `current` the current emission until the guard drops (restoring the
/// previous one, for an emission that runs inside a handler).
pub(crate) fn enter(current: &CurrentEmission) -> Entered {
    Entered(CURRENT.with(|c| c.replace(Some(current.clone()))))
}

/// Restores the previous current emission when dropped.
pub(crate) struct Entered(Option<CurrentEmission>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// A future that runs inside an emission: the emission is current during each
/// of its polls.
pub(crate) struct InEmission<F> {
    current: CurrentEmission,
    future: F,
}

impl<F: Future + Unpin> InEmission<F> {
    pub(crate) fn new(current: CurrentEmission, future: F) -> Self {
        InEmission { current, future }
    }
}

impl<F: Future + Unpin> Future for InEmission<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _entered = enter(&this.current);
        Pin::new(&mut this.future).poll(cx)
    }
}
