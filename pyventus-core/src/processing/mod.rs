//! Processing services: where and how an emission's subscribers run.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use ::tokio::sync::Notify;

use crate::{Error, EventEmission};

mod executor;
mod inline;
#[cfg(feature = "tokio")]
mod tokio;

pub use executor::ExecutorProcessingService;
pub use inline::InlineProcessingService;
#[cfg(feature = "tokio")]
pub use tokio::{TokioProcessingService, TokioProcessingServiceBuilder};

/// Decides where and how emissions run: Pyventus's `ProcessingService`.
///
/// The emitter resolves an event's subscribers into an [`EventEmission`] and
/// submits it here. Implement this trait for a strategy of your own; returning
/// an error hands it back to the caller of `emit`, so nothing is lost silently.
///
/// # Examples
///
/// ```
/// use pyventus_core::{Error, EventEmission, EventEmitter, EventLinker, ProcessingService};
/// use std::sync::Mutex;
///
/// /// Holds emissions until `flush`.
/// #[derive(Default)]
/// struct Deferred(Mutex<Vec<EventEmission>>);
///
/// impl ProcessingService for Deferred {
///     fn submit(&self, emission: EventEmission) -> Result<(), Error> {
///         self.0.lock().unwrap().push(emission);
///         Ok(())
///     }
/// }
///
/// impl Deferred {
///     fn flush(&self) {
///         for emission in self.0.lock().unwrap().drain(..) {
///             emission.run_blocking();
///         }
///     }
/// }
///
/// let linker = EventLinker::new();
/// linker.on_named("Saved").subscribe(|| println!("saved"))?;
/// let deferred = std::sync::Arc::new(Deferred::default());
/// let emitter = EventEmitter::builder().processor(deferred.clone()).linker(linker).build();
/// emitter.emit_named("Saved", ())?; // nothing printed yet
/// deferred.flush(); // prints "saved"
/// # Ok::<(), Error>(())
/// ```
pub trait ProcessingService: Send + Sync + 'static {
    /// Takes an emission to run.
    fn submit(&self, emission: EventEmission) -> Result<(), Error>;

    /// Whether `submit` always runs the emission to completion on the calling
    /// thread before returning. When it does, the emitter may skip building an
    /// `EventEmission` for events whose subscribers are all synchronous and run
    /// them on the borrowed event instead (no allocation), with the same results.
    fn runs_inline(&self) -> bool {
        false
    }

    /// Whether the emissions run in other processes, which resolve the
    /// subscribers themselves. The emitter then submits every emission, even one
    /// with no local subscriber, and claims no one-time subscriber locally.
    fn runs_remotely(&self) -> bool {
        false
    }

    /// Whether the service wants emissions that have no subscriber here too
    /// (a recorder in tests, a metrics tap); services that run emissions
    /// [remotely](Self::runs_remotely) always get them.
    fn wants_every_emission(&self) -> bool {
        false
    }
}

impl<P: ProcessingService + ?Sized> ProcessingService for Arc<P> {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        (**self).submit(emission)
    }

    fn runs_inline(&self) -> bool {
        (**self).runs_inline()
    }

    fn runs_remotely(&self) -> bool {
        (**self).runs_remotely()
    }

    fn wants_every_emission(&self) -> bool {
        (**self).wants_every_emission()
    }
}

/// Counts a processor's unfinished emissions, and wakes whoever waits for none.
/// Finishing an emission takes no lock unless someone is waiting.
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    waiters: AtomicUsize,
    notify: Notify,
    lock: Mutex<()>,
    idle: Condvar,
}

/// One unfinished emission; finishing it (or dropping it) counts it done.
pub(crate) struct Ticket(Arc<InFlight>);

impl InFlight {
    /// Counts one more emission that the returned ticket will finish, wherever
    /// it goes.
    pub(crate) fn start(self: &Arc<Self>) -> Ticket {
        self.begin();
        Ticket(self.clone())
    }

    /// Counts one more emission; the caller must `end` it.
    pub(crate) fn begin(&self) {
        self.count.fetch_add(1, SeqCst);
    }

    /// Counts one emission finished.
    pub(crate) fn end(&self) {
        // Pairs with `wait*`: a waiter registers, then reads the count; a finisher
        // decrements, then reads the waiters. SeqCst means one sees the other.
        if self.count.fetch_sub(1, SeqCst) == 1 && self.waiters.load(SeqCst) > 0 {
            self.notify.notify_waiters();
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(SeqCst)
    }

    pub(crate) async fn wait(&self) {
        let _waiting = Waiting::new(self);
        loop {
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            if self.count.load(SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn wait_blocking(&self) {
        let _waiting = Waiting::new(self);
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.count.load(SeqCst) > 0 {
            guard = self
                .idle
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.end();
    }
}

struct Waiting<'a>(&'a InFlight);

impl<'a> Waiting<'a> {
    fn new(in_flight: &'a InFlight) -> Self {
        in_flight.waiters.fetch_add(1, SeqCst);
        Waiting(in_flight)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, SeqCst);
    }
}
