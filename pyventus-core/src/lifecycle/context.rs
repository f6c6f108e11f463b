//! What a running handler can learn about the emission it runs in: its id, its
//! event, and whatever its processing service attached (a broker's delivery).
//!
//! The emission is current on the thread that runs a synchronous subscriber
//! (`blocking` ones on their `spawn_blocking` thread included) and inside every
//! poll of an asynchronous subscriber's future, whatever thread polls it.
//!
//! It also carries the emission's [`Lineage`]: which processing service runs it
//! and which ones wait for it, so that a wait that could never finish (a handler
//! waiting for the service that runs it) is refused instead of hanging.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::AnyEvent;
use crate::lifecycle::in_flight::InFlight;
use crate::sync::thread_local;

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
    pub(crate) remote_answer: Option<Arc<crate::lifecycle::answer::RemoteAnswer>>,
    pub(crate) lineage: Lineage,
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
            .finish_non_exhaustive()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<CurrentEmission>> = const { RefCell::new(None) };
    /// Set while the inline fast path runs subscribers on a borrowed event,
    /// with no emission of their own: `current_emission()` is `None` there (as
    /// documented), though an enclosing emission still counts for the lineage
    /// of what those subscribers emit.
    static HIDDEN: Cell<bool> = const { Cell::new(false) };
}

/// Where an emission stands among the processing services: who runs it, who
/// waits for it. Empty (and free) for an emission nobody counts.
#[derive(Clone, Default)]
pub(crate) struct Lineage {
    /// The service that counts the emission as unfinished (its counter's id).
    pub(crate) runner: Option<usize>,
    /// The services running emissions that wait for this one to finish: they
    /// cannot finish, or go idle, before it does.
    pub(crate) waited_by: Option<Arc<Waiters>>,
    /// The run outside any runtime that waits for this emission and everything
    /// it causes (a tokio service's `emit` from synchronous code).
    pub(crate) scope: Option<Arc<InFlight>>,
}

/// A chain of services waiting, each through an emission of theirs, on the next.
pub(crate) struct Waiters {
    service: usize,
    next: Option<Arc<Waiters>>,
}

impl Lineage {
    /// Whether the service `id` runs this emission or waits for it.
    pub(crate) fn involves(&self, id: usize) -> bool {
        if self.runner == Some(id) {
            return true;
        }
        let mut link = self.waited_by.as_deref();
        while let Some(waiter) = link {
            if waiter.service == id {
                return true;
            }
            link = waiter.next.as_deref();
        }
        false
    }

    /// Whether a processing service counts this emission, or one waiting for it.
    fn is_counted(&self) -> bool {
        self.runner.is_some() || self.waited_by.is_some()
    }

    /// The services an emission waited for by this one is waited by.
    fn as_waiters(&self) -> Option<Arc<Waiters>> {
        match self.runner {
            Some(service) => Some(Arc::new(Waiters {
                service,
                next: self.waited_by.clone(),
            })),
            None => self.waited_by.clone(),
        }
    }
}

/// The lineage of an emission submitted from here (a handler, or nowhere):
/// it belongs to the current emission's run outside a runtime, if any, and,
/// when the current emission will wait for it (`awaited`, or run before
/// `submit` returns), it is waited by whoever waits for the current one. The
/// processing service then sets its own `runner`.
pub(crate) fn inherited(awaited: bool) -> Lineage {
    with_current(|current| match current {
        None => Lineage::default(),
        Some(current) => Lineage {
            runner: None,
            waited_by: if awaited {
                current.lineage.as_waiters()
            } else {
                None
            },
            scope: current.lineage.scope.clone(),
        },
    })
    .unwrap_or_default()
}

/// Whether the emission running here is run by, or waited for by, service `id`.
pub(crate) fn involves(id: usize) -> bool {
    with_current(|current| current.is_some_and(|cur| cur.lineage.involves(id))).unwrap_or(false)
}

/// Whether the emission running here is run by service `id` (a handler of
/// one of its emissions is emitting).
#[cfg(feature = "tokio")]
pub(crate) fn is_run_by(id: usize) -> bool {
    with_current(|current| current.is_some_and(|cur| cur.lineage.runner == Some(id)))
        .unwrap_or(false)
}

/// Whether the emission running here is counted by a processing service (so
/// waiting for every emission would wait for it).
pub(crate) fn is_counted() -> bool {
    with_current(|current| current.is_some_and(|cur| cur.lineage.is_counted())).unwrap_or(false)
}

/// Reads this thread's current emission: `None` once the thread's locals are
/// gone (its destructors are running: a cache releasing a handler whose
/// captures drop a service, say), where there is no emission to read and no
/// `with` may panic.
fn with_current<R>(f: impl FnOnce(Option<&CurrentEmission>) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.try_borrow().ok().map(|current| f(current.as_ref())))
        .ok()
        .flatten()
}

/// The emission the calling handler runs in, if it runs in one.
///
/// `None` outside handlers, and on the inline fast path (an inline emission
/// whose subscribers are all synchronous builds no emission at all), even when
/// that inline emit happens inside another emission's handler: such a handler
/// never sees the emission further up its thread's stack as its own.
pub fn current_emission() -> Option<CurrentEmission> {
    if HIDDEN.try_with(Cell::get).unwrap_or(false) {
        return None;
    }
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|current| current.clone()))
        .ok()
        .flatten()
}

/// Hides the current emission from `current_emission()` while subscribers run
/// on the inline fast path, until the guard drops.
#[inline]
pub(crate) fn hide() -> Hidden {
    Hidden(HIDDEN.try_with(|h| h.replace(true)).unwrap_or(false))
}

/// Restores whether the current emission was visible when dropped.
pub(crate) struct Hidden(bool);

impl Drop for Hidden {
    #[inline]
    fn drop(&mut self) {
        let _ = HIDDEN.try_with(|h| h.set(self.0));
    }
}

/// Makes `current` the current emission until the guard drops or
/// [`exit`](Entered::exit)s (restoring the previous one, for an emission that
/// runs inside a handler). The emission moves in, so entering copies nothing.
pub(crate) fn enter(current: CurrentEmission) -> Entered {
    let mut slot = Some(current);
    // Swapped in: `slot` now holds what was current before. Once the thread's
    // locals are gone, the emission runs with none current, and `slot` keeps
    // it for `exit` to hand back.
    let swapped = CURRENT
        .try_with(|c| {
            c.try_borrow_mut()
                .map(|mut c| std::mem::swap(&mut *c, &mut slot))
                .is_ok()
        })
        .unwrap_or(false);
    Entered {
        slot,
        swapped,
        // An emission entered from a fast-path subscriber is visible again.
        hidden: HIDDEN.try_with(|h| h.replace(false)).unwrap_or(false),
        restored: false,
    }
}

/// Restores the previous current emission when dropped.
pub(crate) struct Entered {
    /// Entered: what was current before, to restore. Not entered: the
    /// emission itself, to hand back.
    slot: Option<CurrentEmission>,
    /// Whether the emission was swapped into the thread's cell.
    swapped: bool,
    hidden: bool,
    restored: bool,
}

impl Entered {
    /// Restores the previous current emission and hands back the one entered.
    pub(crate) fn exit(mut self) -> Option<CurrentEmission> {
        self.restore()
    }

    /// Restores what was current before (once) and takes out what was entered.
    fn restore(&mut self) -> Option<CurrentEmission> {
        if std::mem::replace(&mut self.restored, true) {
            return None;
        }
        let _ = HIDDEN.try_with(|h| h.set(self.hidden));
        let mut slot = self.slot.take();
        if self.swapped {
            let swapped = CURRENT
                .try_with(|c| {
                    c.try_borrow_mut()
                        .map(|mut c| std::mem::swap(&mut *c, &mut slot))
                        .is_ok()
                })
                .unwrap_or(false);
            if !swapped {
                // Nothing to restore into: what was current before drops.
                return None;
            }
        }
        slot
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // The entered emission drops here, after the thread's cell is let go.
        drop(self.restore());
    }
}

/// A future that runs inside an emission: the emission is current during each
/// of its polls.
pub(crate) struct InEmission<F> {
    /// Moved into the thread's context for each poll, and back out.
    current: Option<CurrentEmission>,
    future: F,
}

impl<F: Future + Unpin> InEmission<F> {
    pub(crate) fn new(current: CurrentEmission, future: F) -> Self {
        InEmission {
            current: Some(current),
            future,
        }
    }
}

impl<F: Future + Unpin> Future for InEmission<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let Some(current) = this.current.take() else {
            // A poll that panicked lost it; the future is done for.
            return Pin::new(&mut this.future).poll(cx);
        };
        let entered = enter(current);
        let poll = Pin::new(&mut this.future).poll(cx);
        this.current = entered.exit();
        poll
    }
}
