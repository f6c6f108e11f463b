//! The executor processing service: emissions run on a pool of threads.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use super::InFlight;
use crate::{Error, EventEmission, ProcessingService};

/// Runs emissions on a pool of threads: Pyventus's Executor processing service.
///
/// Each emission runs on one pool thread: synchronous subscribers on the thread
/// itself, asynchronous ones on a current-thread runtime that each pool thread
/// keeps for them. [`shutdown`](Self::shutdown) stops taking emissions (and can
/// wait for the queued ones); dropping the last handle shuts down and waits.
///
/// Concurrency: submitting sends on a lock-free channel under a read lock that
/// only `shutdown` ever takes for writing.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, ExecutorProcessingService};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let linker = EventLinker::new();
/// let count = Arc::new(AtomicU64::new(0));
/// let counter = count.clone();
/// linker.on_named("Work").subscribe(move || {
///     counter.fetch_add(1, Ordering::Relaxed);
/// })?;
///
/// let pool = ExecutorProcessingService::with_threads(2);
/// let emitter = EventEmitter::builder().processor(pool.clone()).linker(linker).build();
/// for _ in 0..10 {
///     emitter.emit_named("Work", ())?;
/// }
/// pool.shutdown(true); // waits for the queued emissions
/// assert_eq!(count.load(Ordering::Relaxed), 10);
/// assert!(emitter.emit_named("Work", ()).is_err()); // closed
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ExecutorProcessingService {
    inner: Arc<Inner>,
}

struct Inner {
    sender: RwLock<Option<Sender<EventEmission>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    in_flight: Arc<InFlight>,
    size: usize,
}

impl ExecutorProcessingService {
    /// A pool of `threads` threads.
    ///
    /// # Panics
    ///
    /// If `threads` is zero, or the operating system cannot start a thread.
    pub fn with_threads(threads: usize) -> Self {
        assert!(
            threads > 0,
            "an ExecutorProcessingService needs at least one thread"
        );
        let (sender, receiver) = crossbeam_channel::unbounded();
        let in_flight = Arc::<InFlight>::default();
        let handles = (0..threads)
            .map(|i| {
                let (receiver, in_flight) = (receiver.clone(), in_flight.clone());
                thread::Builder::new()
                    .name(format!("pyventus-executor-{i}"))
                    .spawn(move || work(&receiver, &in_flight))
                    .unwrap_or_else(|err| {
                        panic!("pyventus: cannot start an executor thread: {err}")
                    })
            })
            .collect();
        ExecutorProcessingService {
            inner: Arc::new(Inner {
                sender: RwLock::new(Some(sender)),
                threads: Mutex::new(handles),
                in_flight,
                size: threads,
            }),
        }
    }

    /// How many threads the pool has.
    pub fn threads(&self) -> usize {
        self.inner.size
    }

    /// How many emissions are queued or running.
    pub fn pending(&self) -> usize {
        self.inner.in_flight.count()
    }

    /// Blocks until every submitted emission has finished, including emissions
    /// submitted while waiting.
    pub fn wait_for_tasks(&self) {
        self.inner.in_flight.wait_blocking();
    }

    /// Stops taking emissions; later `emit`s return
    /// [`Error::ProcessorClosed`]. Queued emissions still run. With `wait`,
    /// blocks until they have and the threads have exited.
    pub fn shutdown(&self, wait: bool) {
        self.inner.shutdown(wait);
    }

    /// Whether the pool was shut down.
    pub fn is_shutdown(&self) -> bool {
        self.inner
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

impl Default for ExecutorProcessingService {
    /// A pool with one thread per available core.
    fn default() -> Self {
        Self::with_threads(thread::available_parallelism().map_or(1, NonZeroUsize::get))
    }
}

impl Inner {
    fn shutdown(&self, wait: bool) {
        // Dropping the sender disconnects the channel: the threads finish what is
        // queued, then exit.
        drop(
            self.sender
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if wait {
            let handles =
                std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
            let me = thread::current().id();
            for handle in handles {
                // A handler that drops the last handle runs on a pool thread,
                // which cannot wait for itself.
                if handle.thread().id() != me {
                    let _ = handle.join();
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

fn work(receiver: &Receiver<EventEmission>, in_flight: &InFlight) {
    /// Counts the emission finished however its run ends.
    struct End<'a>(&'a InFlight);
    impl Drop for End<'_> {
        fn drop(&mut self) {
            self.0.end();
        }
    }

    // Built on first need: a pool that only runs sync handlers never pays for it.
    let mut runtime: Option<tokio::runtime::Runtime> = None;
    while let Ok(emission) = receiver.recv() {
        let _end = End(in_flight);
        emission.run_then_block_on(|pending| {
            let rt = runtime.get_or_insert_with(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|err| {
                        panic!("pyventus: cannot start an executor thread's runtime: {err}")
                    })
            });
            rt.block_on(pending)
        });
    }
}

impl ProcessingService for ExecutorProcessingService {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        let sender = self
            .inner
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = sender.as_ref() else {
            return Err(Error::ProcessorClosed);
        };
        self.inner.in_flight.begin();
        sender.send(emission).map_err(|_| {
            self.inner.in_flight.end();
            Error::ProcessorClosed
        })
    }
}

impl fmt::Debug for ExecutorProcessingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorProcessingService")
            .field("threads", &self.inner.size)
            .field("pending", &self.pending())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}
