//! The tokio processing service: emissions run as tokio tasks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::Handle;

use super::{InFlight, Ticket};
use crate::{Error, EventEmission, ProcessingService};

/// Runs emissions as tokio tasks: Pyventus's `AsyncIO` processing service.
///
/// Inside a runtime, `emit` spawns a task and returns at once; the subscribers of
/// one emission run concurrently in it. Outside any runtime, `emit` runs the
/// emission to completion before returning (Pyventus's `asyncio.run` case).
/// [`wait_for_tasks`](Self::wait_for_tasks) waits for everything this service
/// started. The service is a cheap `Clone` handle: keep one to wait on.
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
/// tokio.wait_for_tasks().await;
/// assert_eq!(count.load(Ordering::Relaxed), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct TokioProcessingService {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    enforce_submission_order: bool,
    blocking: bool,
    in_flight: Arc<InFlight>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    emissions: VecDeque<(EventEmission, Ticket)>,
    draining: bool,
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
    /// as concurrent tasks.
    pub fn enforce_submission_order(mut self, enforce: bool) -> Self {
        self.enforce_submission_order = enforce;
        self
    }

    /// Runs every synchronous subscriber on `spawn_blocking`, off the async
    /// workers (Pyventus's `force_async` for all).
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
                ..Inner::default()
            }),
        }
    }
}

impl TokioProcessingService {
    /// A builder with the service's options.
    pub fn builder() -> TokioProcessingServiceBuilder {
        TokioProcessingServiceBuilder::default()
    }

    /// Waits until every emission this service started has finished, including
    /// emissions submitted while waiting.
    pub async fn wait_for_tasks(&self) {
        self.inner.in_flight.wait().await;
    }

    /// How many emissions have started and not finished.
    pub fn pending(&self) -> usize {
        self.inner.in_flight.count()
    }

    fn enqueue(&self, handle: &Handle, emission: EventEmission, ticket: Ticket) {
        let mut queue = self
            .inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queue.emissions.push_back((emission, ticket));
        if !queue.draining {
            queue.draining = true;
            handle.spawn(drain(self.inner.clone()));
        }
    }
}

/// Runs queued emissions in order until the queue is empty.
async fn drain(inner: Arc<Inner>) {
    // If the runtime drops this task midway, the queue must not stay marked as
    // draining, or later submissions would wait forever.
    struct Reset<'a>(&'a Inner);
    impl Drop for Reset<'_> {
        fn drop(&mut self) {
            let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.draining {
                queue.draining = false;
                queue.emissions.clear();
            }
        }
    }
    let _reset = Reset(&inner);
    loop {
        let next = {
            let mut queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(next) = queue.emissions.pop_front() {
                next
            } else {
                queue.draining = false;
                return;
            }
        };
        let (emission, _ticket) = next;
        emission.run().await;
    }
}

impl ProcessingService for TokioProcessingService {
    fn submit(&self, mut emission: EventEmission) -> Result<(), Error> {
        if self.inner.blocking {
            emission.set_blocking(true);
        }
        let ticket = self.inner.in_flight.start();
        match Handle::try_current() {
            Ok(handle) if self.inner.enforce_submission_order => {
                self.enqueue(&handle, emission, ticket);
            }
            Ok(handle) => {
                handle.spawn(async move {
                    emission.run().await;
                    drop(ticket);
                });
            }
            Err(_) => {
                emission.run_blocking();
                drop(ticket);
            }
        }
        Ok(())
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
