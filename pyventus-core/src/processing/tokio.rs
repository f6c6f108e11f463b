//! The tokio processing service: emissions run as tokio tasks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::Handle;

use crate::lifecycle::context::{self, Lineage};
use crate::lifecycle::in_flight::{InFlight, Ticket};
use crate::{Error, EventEmission, ProcessingService};

/// Runs emissions as tokio tasks: Pyventus's `AsyncIO` processing service.
///
/// Inside a runtime, `emit` spawns a task and returns at once; the subscribers of
/// one emission run concurrently in it. Outside any runtime, `emit` runs the
/// emission to completion before returning, with everything its handlers emit
/// through tokio services meanwhile (Pyventus's `asyncio.run` case), on
/// pyventus's own runtime. [`wait_for_tasks`](Self::wait_for_tasks) waits for
/// everything this service started. The service is a cheap `Clone` handle: keep
/// one to wait on.
///
/// With [`enforce_submission_order`](TokioProcessingServiceBuilder::enforce_submission_order),
/// emissions run one at a time in the order they were submitted, in causal
/// order: an emission emitted by a handler of the one running (nested) runs
/// right after it, before what was submitted from elsewhere meanwhile, and the
/// nested emissions of one emission run in the order they were emitted (as
/// Pyventus puts such a submission at the front of its queue). A handler that
/// awaits such a nested emission (`emit_and_wait`) would wait for its own end:
/// that is refused with [`Error::WouldDeadlock`].
///
/// With [`blocking`](TokioProcessingServiceBuilder::blocking), synchronous
/// subscribers run on `spawn_blocking` when `emit` is called inside a runtime;
/// outside one, the caller's thread runs them, as it waits for them anyway
/// (Pyventus's `force_async` applies only where an event loop runs).
///
/// Tasks die with their runtime: emissions still running or queued when it shuts
/// down are lost, and reported at error level (one report per batch, with how
/// many and which events). Wait for them first with
/// [`wait_for_all`](crate::wait_for_all) or `wait_for_tasks`.
///
/// Concurrency: submitting takes no lock, except with
/// `enforce_submission_order`, where a short-lived mutex guards the queue
/// (never while a subscriber runs).
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, TokioProcessingService};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pyventus_core::Error> {
/// let linker = EventLinker::new();
/// let count = Arc::new(AtomicU64::new(0));
/// let counter = count.clone();
/// linker.on_named("Tick").subscribe_async(move || {
///     let counter = counter.clone();
///     async move {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// })?;
///
/// let tokio = TokioProcessingService::builder().enforce_submission_order(true).build();
/// let emitter = EventEmitter::builder().processor(tokio.clone()).linker(linker).build();
/// for _ in 0..3 {
///     emitter.emit_named("Tick", ())?; // spawns and returns
/// }
/// tokio.wait_for_tasks().await?;
/// assert_eq!(count.load(Ordering::Relaxed), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokioProcessingService {
    inner: Arc<Inner>,
}

struct Inner {
    enforce_submission_order: bool,
    blocking: bool,
    in_flight: Arc<InFlight>,
    queue: Mutex<Queue>,
}

impl Inner {
    /// The ordered queue, locked (never around user code, so a poisoned lock
    /// holds nothing half-done).
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Queue {
    emissions: VecDeque<EventEmission>,
    /// A drain task is on its way or running.
    draining: bool,
    /// Which drain task owns the queue; an older one that wakes up leaves.
    generation: u64,
    /// The owning drain has started: until then, it may sit on a runtime that
    /// is not running, and a caller that must not wait for it takes over.
    started: bool,
    /// How many emissions the running one's handlers queued at the front
    /// (each goes after those before it).
    nested: usize,
}

impl Queue {
    /// Queues `emission`: at the back, or, when the running emission's
    /// handlers emitted it, right after what they emitted before.
    fn push(&mut self, emission: EventEmission, nested: bool) {
        if nested {
            let at = self.nested.min(self.emissions.len());
            self.emissions.insert(at, emission);
            self.nested += 1;
        } else {
            self.emissions.push_back(emission);
        }
    }
}

/// Builds a [`TokioProcessingService`] with options.
///
/// # Examples
///
/// ```
/// use pyventus_core::TokioProcessingService;
///
/// let service = TokioProcessingService::builder()
///     .enforce_submission_order(true) // one emission at a time, in order
///     .blocking(true) // sync subscribers run on `spawn_blocking`
///     .build();
/// # drop(service);
/// ```
#[must_use]
#[derive(Debug, Default)]
pub struct TokioProcessingServiceBuilder {
    enforce_submission_order: bool,
    blocking: bool,
}

impl TokioProcessingServiceBuilder {
    /// Runs emissions one at a time, in the order they were submitted, instead of
    /// as concurrent tasks. Nested emissions run after the one that caused them.
    pub fn enforce_submission_order(mut self, enforce: bool) -> Self {
        self.enforce_submission_order = enforce;
        self
    }

    /// Runs every synchronous subscriber on `spawn_blocking`, off the async
    /// workers (Pyventus's `force_async` for all), when `emit` is called inside
    /// a runtime; outside one, the caller's thread runs them.
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// Builds the service.
    pub fn build(self) -> TokioProcessingService {
        TokioProcessingService {
            inner: Arc::new(Inner {
                enforce_submission_order: self.enforce_submission_order,
                blocking: self.blocking,
                in_flight: Arc::new(InFlight::new("a TokioProcessingService")),
                queue: Mutex::default(),
            }),
        }
    }
}

impl Default for TokioProcessingService {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl TokioProcessingService {
    /// A builder with the service's options.
    pub fn builder() -> TokioProcessingServiceBuilder {
        TokioProcessingServiceBuilder::default()
    }

    /// Waits until every emission this service started has finished, including
    /// emissions submitted while waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] when called from a handler of an emission this
    /// service runs (or from one such an emission waits for): it would wait for
    /// itself.
    pub async fn wait_for_tasks(&self) -> Result<(), Error> {
        if context::involves(self.inner.in_flight.id()) {
            return Err(Error::WouldDeadlock(
                "`wait_for_tasks` inside a handler of its own `TokioProcessingService` would wait \
                 for the emission running that handler: wait where the emissions are started, \
                 outside handlers, or await the emission itself with `emit_and_wait`"
                    .to_owned(),
            ));
        }
        self.inner.in_flight.wait().await;
        Ok(())
    }

    /// How many emissions have started and not finished.
    pub fn pending(&self) -> usize {
        self.inner.in_flight.count()
    }

    fn id(&self) -> usize {
        self.inner.in_flight.id()
    }

    /// Refuses an emission its caller will wait for, when an ordered service
    /// would run it only after the emission that waits for it.
    fn refuse_self_wait(&self, awaited: bool) -> Result<(), Error> {
        if self.inner.enforce_submission_order && awaited && context::involves(self.id()) {
            return Err(Error::WouldDeadlock(
                "waiting (`emit_and_wait`) from a handler for an emission of the \
                 `TokioProcessingService` with `enforce_submission_order` that runs it: the \
                 emission would start only after the one waiting for it ends; use `emit` (it \
                 runs next), or emit through another processing service to wait for it"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Counts the emission, and records who runs it and who waits for it.
    fn track(
        &self,
        emission: &mut EventEmission,
        mut lineage: Lineage,
        scope: Option<Arc<InFlight>>,
    ) {
        lineage.runner = Some(self.id());
        let ticket = Ticket::new(&self.inner.in_flight, scope);
        emission.track(lineage, Some(ticket));
    }

    /// Outside any runtime: runs the emission, and everything its handlers emit
    /// through tokio services meanwhile, to completion on pyventus's runtime.
    fn run_to_completion(&self, mut emission: EventEmission) -> Result<(), Error> {
        // The caller waits for it, as for an awaited emission.
        self.refuse_self_wait(true)?;
        let ordered = self.inner.enforce_submission_order;
        let scope = Arc::new(InFlight::new("a run outside any runtime"));
        let mut lineage = context::inherited(true);
        lineage.scope = Some(scope.clone());
        self.track(&mut emission, lineage, ordered.then(|| scope.clone()));
        crate::runtime::block_on(async {
            if ordered {
                // Blocking here for a drain queued on a runtime that may not be
                // running (a current-thread one between two `block_on`s) could
                // be forever: a drain that has not started yet is taken over.
                // The caller drains on its own thread (Pyventus runs a
                // submission in the caller when no loop runs), until its own
                // emission and what it caused have run.
                if let Some(drain) = self.queue_up(emission, true)
                    && let Some(rest) = drain.run(Some(&scope)).await
                {
                    crate::runtime::spawn(rest.run_all());
                }
            } else {
                // Nested emissions find the scope in their handlers' context.
                drop(emission.run().await);
            }
            scope.wait().await;
        });
        Ok(())
    }

    /// Queues the emission, and starts a drain on `handle` if none is on its
    /// way.
    fn enqueue(&self, handle: &Handle, emission: EventEmission) {
        if let Some(drain) = self.queue_up(emission, false) {
            // Spawned without the lock, which the drain's guard takes if the
            // spawn drops it at once.
            handle.spawn(drain.run_all());
        }
    }

    /// Queues the emission; the drain to start when none is on its way, or
    /// (with `take_over`) when the one on its way has not started. The drain
    /// owns its reset guard from the start: one dropped before it first runs
    /// (its runtime shut down) still frees the queue.
    fn queue_up(&self, emission: EventEmission, take_over: bool) -> Option<Drain> {
        // Emitted by a handler of the emission this service's drain runs.
        let nested = context::is_run_by(self.id());
        let mut queue = self.inner.queue();
        queue.push(emission, nested);
        if queue.draining && (queue.started || !take_over) {
            return None;
        }
        queue.draining = true;
        queue.started = false;
        queue.generation += 1;
        Some(Drain::new(self.inner.clone(), queue.generation))
    }
}

/// The task that runs an ordered service's queue until it is empty, while it
/// owns it. If it is dropped before that (its runtime shut down), it marks the
/// queue as not draining, so that the next submission starts a new drain, and
/// drops what was queued, which reports the loss.
struct Drain {
    inner: Arc<Inner>,
    generation: u64,
    finished: bool,
}

impl Drain {
    fn new(inner: Arc<Inner>, generation: u64) -> Self {
        Drain {
            inner,
            generation,
            finished: false,
        }
    }

    /// Runs the queue until it is empty.
    async fn run_all(self) {
        let rest = self.run(None).await;
        debug_assert!(rest.is_none(), "a drain without a scope runs to the end");
    }

    /// Runs the queue until it is empty; with `until`, only until that scope
    /// has finished (a caller outside any runtime, draining on its own
    /// thread), handing back a drain for what is left.
    async fn run(mut self, until: Option<&InFlight>) -> Option<Drain> {
        loop {
            let next = {
                let mut queue = self.inner.queue();
                if queue.generation != self.generation {
                    // Taken over before it started.
                    self.finished = true;
                    return None;
                }
                queue.started = true;
                queue.nested = 0;
                if queue.emissions.is_empty() {
                    queue.draining = false;
                    self.finished = true;
                    return None;
                }
                if until.is_some_and(|scope| scope.count() == 0) {
                    // The queue stays owned by this generation: the drain that
                    // carries on has it.
                    self.finished = true;
                    return Some(Drain::new(self.inner.clone(), self.generation));
                }
                match queue.emissions.pop_front() {
                    Some(next) => next,
                    None => unreachable!("the queue was not empty"),
                }
            };
            drop(next.run().await);
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let lost = {
            let mut queue = self.inner.queue();
            if queue.generation != self.generation {
                return;
            }
            queue.draining = false;
            std::mem::take(&mut queue.emissions)
        };
        // Outside the lock: dropping them reports their loss.
        drop(lost);
    }
}

impl ProcessingService for TokioProcessingService {
    fn submit(&self, mut emission: EventEmission) -> Result<(), Error> {
        let Ok(handle) = Handle::try_current() else {
            // Synchronous subscribers run in the caller, which waits anyway.
            return self.run_to_completion(emission);
        };
        if self.inner.blocking {
            emission.set_blocking(true);
        }
        let awaited = emission.is_awaited();
        self.refuse_self_wait(awaited)?;
        let lineage = context::inherited(awaited);
        let scope = lineage.scope.clone();
        self.track(&mut emission, lineage, scope);
        if self.inner.enforce_submission_order {
            self.enqueue(&handle, emission);
        } else {
            drop(handle.spawn(emission.run()));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "tokio"
    }
}

impl std::fmt::Debug for TokioProcessingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokioProcessingService")
            .field(
                "enforce_submission_order",
                &self.inner.enforce_submission_order,
            )
            .field("blocking", &self.inner.blocking)
            .field("pending", &self.pending())
            .finish()
    }
}
