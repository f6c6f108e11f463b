//! Testing what code emits: a [`Recorder`], a processing service that keeps
//! every emission (and can also run it), with the assertions the facade's
//! `assert_emitted!` and `assert_not_emitted!` macros build on.
//!
//! ```
//! use pyventus_core::testing::Recorder;
//! use pyventus_core::{Event, EventEmitter};
//!
//! #[derive(Debug, Clone, PartialEq)]
//! struct OrderCreated {
//!     id: u64,
//! }
//! impl Event for OrderCreated {
//!     const NAME: &'static str = "OrderCreated";
//! }
//!
//! fn place_order(emitter: &EventEmitter, id: u64) -> Result<(), pyventus_core::Error> {
//!     emitter.emit(OrderCreated { id })
//! }
//!
//! let recorder = Recorder::new();
//! place_order(&recorder.emitter(), 42)?;
//! assert_eq!(recorder.events_of::<OrderCreated>(), [OrderCreated { id: 42 }]);
//! assert_eq!(recorder.names(), ["OrderCreated"]);
//! # Ok::<(), pyventus_core::Error>(())
//! ```

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{
    AnyEvent, Error, EventEmission, EventEmitter, EventLinker, ProcessingService, RunReport,
};

/// A processing service that records every emission, in order, whether or not
/// anything subscribes to it; with [`passthrough`](Self::passthrough) it also
/// runs each one inline, so the handlers run as they would in production.
///
/// A cheap `Clone` handle: give one to the code under test (as its
/// processing service, or through [`emitter`](Self::emitter)) and keep one to
/// assert on.
///
/// # Examples
///
/// The handlers run too, on an isolated linker:
///
/// ```
/// use pyventus_core::testing::Recorder;
/// use pyventus_core::EventLinker;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// let linker = EventLinker::new();
/// let greeted = Arc::new(AtomicU32::new(0));
/// let count = greeted.clone();
/// linker.on_named("Greet").subscribe(move |_: &String| {
///     count.fetch_add(1, Ordering::Relaxed);
/// })?;
///
/// let recorder = Recorder::passthrough();
/// let emitter = recorder.emitter_on(linker);
/// emitter.emit_named("Greet", "Ada".to_string())?;
/// emitter.emit_named("Unheard", ())?;
///
/// assert_eq!(greeted.load(Ordering::Relaxed), 1);
/// assert_eq!(recorder.names(), ["Greet", "Unheard"]); // recorded either way
/// assert_eq!(recorder.find("Greet").unwrap().downcast_ref::<String>().unwrap(), "Ada");
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    passthrough: bool,
    /// Whether a handler's failure fails the test (panics out of `emit`).
    allow_failures: bool,
    recorded: Mutex<Vec<Recorded>>,
}

/// One recorded emission.
#[derive(Clone)]
pub struct Recorded {
    event: Arc<AnyEvent>,
    handlers: Vec<&'static str>,
    /// How its run ended, for a passthrough recorder.
    report: Option<Arc<RunReport>>,
}

impl Recorded {
    /// The event's name.
    pub fn name(&self) -> &str {
        self.event.name()
    }

    /// The event.
    pub fn event(&self) -> &AnyEvent {
        &*self.event
    }

    /// The event (or a named event's payload) as a `T`, if it is one.
    pub fn downcast_ref<T: std::any::Any>(&self) -> Option<&T> {
        self.event.downcast_ref()
    }

    /// The ids of the link-time handlers it went to (in the emitter's linker).
    pub fn handler_ids(&self) -> &[&'static str] {
        &self.handlers
    }

    /// How its handlers did, once a [passthrough](Recorder::passthrough)
    /// recorder ran it: how many ran, and each failure (handler id, error or
    /// panic). `None` when it was only recorded.
    pub fn report(&self) -> Option<&RunReport> {
        self.report.as_deref()
    }
}

impl fmt::Debug for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.event, f)
    }
}

impl Recorder {
    /// A recorder that only records: no handler runs.
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that records, then runs each emission inline, as
    /// production would: its [`emitter`](Self::emitter) runs the declared
    /// handlers of the global namespace (a fresh copy for each emitter), and
    /// [`emitter_on`](Self::emitter_on) those of the linker you name.
    ///
    /// A handler's error or panic fails the test: `emit` panics with the
    /// failure, which no tracing subscriber could hide. For tests of failure
    /// paths, [`allow_failures`](Self::allow_failures) keeps them, to read
    /// with [`failures`](Self::failures).
    pub fn passthrough() -> Self {
        Recorder {
            inner: Arc::new(Inner {
                passthrough: true,
                ..Inner::default()
            }),
        }
    }

    /// This passthrough recorder, keeping the handlers' failures to read
    /// ([`failures`](Self::failures), each [`Recorded::report`]) instead of
    /// failing the test.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::testing::Recorder;
    /// use pyventus_core::EventLinker;
    ///
    /// let linker = EventLinker::new();
    /// linker.on_named("Charge").subscribe(|| -> Result<(), std::io::Error> {
    ///     Err(std::io::Error::other("card declined"))
    /// })?;
    /// let recorder = Recorder::passthrough().allow_failures();
    /// recorder.emitter_on(linker).emit_named("Charge", ())?;
    /// assert_eq!(recorder.failures().len(), 1);
    /// assert!(recorder.failures()[0].contains("card declined"));
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    #[must_use]
    pub fn allow_failures(self) -> Self {
        let inner = Inner {
            passthrough: self.inner.passthrough,
            allow_failures: true,
            recorded: Mutex::new(self.lock().clone()),
        };
        Recorder {
            inner: Arc::new(inner),
        }
    }

    /// An emitter through this recorder. A recording-only recorder needs no
    /// handler: it is on an isolated empty linker. A
    /// [passthrough](Self::passthrough) one runs the global namespace's
    /// declared handlers, on a copy of its own
    /// ([`EventLinker::isolated_global`]), so that its `#[once]` handlers
    /// and subscriptions do not leak into other tests.
    ///
    /// # Panics
    ///
    /// A passthrough recorder's, if the global namespace's handlers cannot be
    /// linked (see [`verify`](crate::verify)).
    pub fn emitter(&self) -> EventEmitter {
        if self.inner.passthrough {
            let linker = EventLinker::isolated_global().unwrap_or_else(|err| {
                panic!("pyventus: cannot link the global namespace's handlers: {err}")
            });
            self.emitter_on(linker)
        } else {
            self.emitter_on(EventLinker::new())
        }
    }

    /// Each handler failure of the emissions a
    /// [passthrough](Self::passthrough) recorder ran, in order, described
    /// (handler id, error or panic, message).
    pub fn failures(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter_map(|r| r.report.as_deref())
            .flat_map(|report| report.failures().iter().map(ToString::to_string))
            .collect()
    }

    /// An emitter through this recorder, on `linker` (a namespace's linker, to
    /// run its declared handlers with [`passthrough`](Self::passthrough)).
    pub fn emitter_on(&self, linker: EventLinker) -> EventEmitter {
        EventEmitter::builder()
            .processor(self.clone())
            .linker(linker)
            .debug(false)
            .build()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Recorded>> {
        // No user code runs under this lock.
        self.inner
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every emission so far, in order.
    pub fn events(&self) -> Vec<Recorded> {
        self.lock().clone()
    }

    /// The names of the events emitted so far, in order.
    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|r| r.name().to_owned()).collect()
    }

    /// The emitted events of type `T` (typed events, or named payloads), in
    /// order.
    pub fn events_of<T: std::any::Any + Clone>(&self) -> Vec<T> {
        self.lock()
            .iter()
            .filter_map(|r| r.downcast_ref::<T>().cloned())
            .collect()
    }

    /// How many emissions carried a `T`.
    pub fn count<T: std::any::Any>(&self) -> usize {
        self.lock().iter().filter(|r| r.event.is::<T>()).count()
    }

    /// The first emission of the event named `name`.
    pub fn find(&self, name: &str) -> Option<Recorded> {
        self.lock().iter().find(|r| r.name() == name).cloned()
    }

    /// How many emissions there were.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets every emission so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many emissions `matches` accepts. (What `assert_emitted!` counts.)
    #[doc(hidden)]
    pub fn count_matching(&self, mut matches: impl FnMut(&Recorded) -> bool) -> usize {
        self.lock().iter().filter(|r| matches(r)).count()
    }

    /// What was emitted, for an assertion's failure message.
    #[doc(hidden)]
    pub fn describe(&self) -> String {
        let recorded = self.lock();
        if recorded.is_empty() {
            return "nothing was emitted".to_owned();
        }
        let mut out = format!("{} emission(s):", recorded.len());
        for r in recorded.iter() {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "\n    {r:?}");
        }
        out
    }
}

impl ProcessingService for Recorder {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        let recorded = Recorded {
            event: emission.event().clone(),
            handlers: emission.handler_ids().collect(),
            report: None,
        };
        if self.inner.passthrough {
            let index = {
                let mut all = self.lock();
                all.push(recorded);
                all.len() - 1
            };
            let report = Arc::new(emission.run_blocking());
            if let Some(slot) = self.lock().get_mut(index) {
                slot.report = Some(report.clone());
            }
            assert!(
                self.inner.allow_failures || report.is_success(),
                "a handler failed in a passthrough test: {report}\n(use \
                 `Recorder::passthrough().allow_failures()` to test failures, and read \
                 them with `recorder.failures()`)"
            );
        } else {
            self.lock().push(recorded);
            // Recorded, not run: on purpose.
            emission.discard();
        }
        Ok(())
    }

    fn runs_remotely(&self) -> bool {
        // Recording only: like a broker, it leaves one-time subscribers to
        // whoever would run the emission.
        !self.inner.passthrough
    }

    fn wants_every_emission(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "recorder"
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("passthrough", &self.inner.passthrough)
            .field("recorded", &self.len())
            .finish()
    }
}
