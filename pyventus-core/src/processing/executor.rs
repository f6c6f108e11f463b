//! The executor processing service: emissions run on a pool of threads.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, SendError, Sender};

use crate::lifecycle::context;
use crate::lifecycle::in_flight::{InFlight, Ticket};
use crate::{Error, EventEmission, HandlerPanic, ProcessingService};

/// Runs emissions on a pool of threads: Pyventus's Executor processing service.
///
/// Each emission runs on one pool thread: synchronous subscribers on the thread
/// itself; asynchronous ones are polled there too, on pyventus's shared runtime,
/// whose workers drive their timers and I/O and run the tasks they spawn (which
/// keep running after the emission). [`shutdown`](Self::shutdown) stops taking
/// emissions (and can wait for the queued ones); dropping the last handle shuts
/// down and waits.
///
/// A panic that escapes an emission (an event whose `Drop` panics, say) is
/// logged, and the thread carries on: the pool keeps its size.
///
/// A handler that waits for an emission of its own pool holds its thread while
/// it waits. When every thread would be held so (a one-thread pool at once, four
/// threads four levels deep), nothing would be left to run what they wait for:
/// that last wait is refused with [`Error::WouldDeadlock`].
///
/// Concurrency: submitting sends on a lock-free channel under a read lock that
/// only `shutdown` ever takes for writing. `shutdown(true)` holds a mutex while
/// it joins the threads, so that a concurrent `shutdown(true)` returns only once
/// they have finished too; pool threads never take it.
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
    /// Emissions cross in boxed carriers: the channel's blocks then hold
    /// pointers, not 240-byte emissions (a block of those is 7 KiB to allocate
    /// and zero every 31 emissions).
    sender: RwLock<Option<Sender<Carrier>>>,
    /// Carriers the threads are done with, for the next submissions: an
    /// emission then crosses without an allocation of its own, which a pool
    /// thread would free (an allocation made on one thread and freed on
    /// another is what made the pool slow: `emit/executor/1` went from 2.3-3x
    /// to 1.8-2x a bare pool with this).
    spare: Receiver<Carrier>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    in_flight: Arc<InFlight>,
    held: Arc<HeldThreads>,
    size: usize,
}

thread_local! {
    /// On a pool thread: its pool's id and its index there.
    static POOL_THREAD: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
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
        let (returns, spare) = crossbeam_channel::bounded(SPARE_CARRIERS);
        let in_flight = Arc::new(InFlight::new("an ExecutorProcessingService"));
        let pool = in_flight.id();
        let handles = (0..threads)
            .map(|index| {
                let (receiver, returns) = (receiver.clone(), returns.clone());
                thread::Builder::new()
                    .name(format!("pyventus-executor-{index}"))
                    .spawn(move || work(&receiver, &returns, pool, index))
                    .unwrap_or_else(|err| {
                        panic!("pyventus: cannot start an executor thread: {err}")
                    })
            })
            .collect();
        ExecutorProcessingService {
            inner: Arc::new(Inner {
                sender: RwLock::new(Some(sender)),
                spare,
                threads: Mutex::new(handles),
                in_flight,
                held: Arc::new(HeldThreads::new(threads)),
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
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] when called from a handler of an emission this
    /// pool runs (or from one such an emission waits for): it would wait for
    /// itself.
    pub fn wait_for_tasks(&self) -> Result<(), Error> {
        if self.inner.waits_for_itself() {
            return Err(Error::WouldDeadlock(
                "`wait_for_tasks` inside a handler of its own `ExecutorProcessingService` would \
                 wait for the emission running that handler: wait where the emissions are \
                 started, outside handlers"
                    .to_owned(),
            ));
        }
        self.inner.in_flight.wait_blocking();
        Ok(())
    }

    /// Stops taking emissions; later `emit`s return
    /// [`Error::ProcessorClosed`]. Queued emissions still run. With `wait`,
    /// blocks until they have and the threads have exited, however many callers
    /// shut the pool down at once.
    ///
    /// From a handler of this pool (or one its emissions wait for), it cannot
    /// wait for itself: it stops the pool and returns at once, and the queued
    /// emissions still run.
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
    fn id(&self) -> usize {
        self.in_flight.id()
    }

    /// The index of the calling thread in this pool, if it is one of its threads.
    fn own_thread(&self) -> Option<usize> {
        POOL_THREAD
            .try_with(Cell::get)
            .ok()
            .flatten()
            .and_then(|(pool, index)| (pool == self.id()).then_some(index))
    }

    /// Whether waiting for this pool from here would wait for the caller itself.
    fn waits_for_itself(&self) -> bool {
        self.own_thread().is_some() || context::involves(self.id())
    }

    fn shutdown(&self, wait: bool) {
        // Dropping the sender disconnects the channel: the threads finish what is
        // queued, then exit.
        drop(
            self.sender
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if !wait || self.waits_for_itself() {
            return;
        }
        // Held while joining: a concurrent caller waits here for the same end.
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        for handle in threads.drain(..) {
            // The loop catches what escapes an emission; a thread cannot panic.
            let _ = handle.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

/// A boxed slot an emission crosses to a pool thread in, handed back empty.
type Carrier = Box<Option<EventEmission>>;

/// How many empty carriers wait for reuse at most.
const SPARE_CARRIERS: usize = 256;

fn work(receiver: &Receiver<Carrier>, returns: &Sender<Carrier>, pool: usize, index: usize) {
    // A constant with nothing to drop: never gone while the thread runs.
    let _ = POOL_THREAD.try_with(|t| t.set(Some((pool, index))));
    while let Ok(mut carrier) = receiver.recv() {
        let Some(emission) = carrier.take() else {
            continue;
        };
        // Full (or the pool is gone): it is freed instead.
        let _ = returns.try_send(carrier);
        // The workflow contains the handlers' panics; what still escapes (an
        // event's `Drop`, say) must not take the thread, or the pool, with it.
        // The emission has then settled, or reported its loss while unwinding.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(emission.run_blocking()))) {
            tracing::error!(
                target: "pyventus",
                thread = index,
                "a panic escaped an emission on an executor thread, which carries on: {}",
                HandlerPanic::from_payload(&*panic).message()
            );
        }
    }
}

impl ProcessingService for ExecutorProcessingService {
    fn submit(&self, mut emission: EventEmission) -> Result<(), Error> {
        let sender = self
            .inner
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = sender.as_ref() else {
            return Err(Error::ProcessorClosed);
        };
        let awaited = emission.is_awaited();
        // A pool thread that waits for this emission is held until it has run.
        let held = match self.inner.own_thread() {
            Some(index) if awaited => Some(self.inner.held.hold(index).ok_or_else(|| {
                Error::WouldDeadlock(format!(
                    "waiting (`emit_and_wait`) from a handler for an emission of its own \
                     `ExecutorProcessingService` would hold its last free thread ({} of {} \
                     already wait), leaving none to run it: use `emit`, give the pool more \
                     threads, or emit through another processing service to wait for it",
                    self.inner.size - 1,
                    self.inner.size
                ))
            })?),
            _ => None,
        };
        let mut lineage = context::inherited(awaited);
        lineage.runner = Some(self.inner.id());
        lineage.scope = None;
        let mut ticket = Ticket::new(&self.inner.in_flight, None);
        if let Some(held) = held {
            ticket.hold(Box::new(held));
        }
        emission.track(lineage, Some(ticket));
        let carrier = match self.inner.spare.try_recv() {
            Ok(mut carrier) => {
                *carrier = Some(emission);
                carrier
            }
            Err(_) => Box::new(Some(emission)),
        };
        sender.send(carrier).map_err(|SendError(mut carrier)| {
            // Every thread is gone, though the pool was not shut down.
            if let Some(emission) = carrier.take() {
                emission.discard();
            }
            Error::ProcessorRefused {
                reason: "every thread of the executor has stopped".to_owned(),
            }
        })
    }

    fn name(&self) -> &'static str {
        "executor"
    }
}

/// Which pool threads are held by a handler waiting for an emission of the pool.
struct HeldThreads {
    /// Per thread: how many emissions it waits for.
    waits: Box<[AtomicUsize]>,
    /// How many threads wait for at least one.
    held: AtomicUsize,
}

impl HeldThreads {
    fn new(threads: usize) -> Self {
        HeldThreads {
            waits: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            held: AtomicUsize::new(0),
        }
    }

    /// Counts thread `index` waiting for one more emission, unless that would
    /// hold every thread of the pool.
    fn hold(self: &Arc<Self>, index: usize) -> Option<HeldThread> {
        // Only thread `index` adds to its own count, so no one else can take it
        // from zero to one between these two steps.
        if self.waits[index].fetch_add(1, SeqCst) == 0
            && self.held.fetch_add(1, SeqCst) + 1 >= self.waits.len()
        {
            self.held.fetch_sub(1, SeqCst);
            self.waits[index].fetch_sub(1, SeqCst);
            return None;
        }
        Some(HeldThread(self.clone(), index))
    }
}

/// One emission a pool thread waits for; the wait ends when it finishes.
struct HeldThread(Arc<HeldThreads>, usize);

impl Drop for HeldThread {
    fn drop(&mut self) {
        let HeldThread(threads, index) = self;
        if threads.waits[*index].fetch_sub(1, SeqCst) == 1 {
            threads.held.fetch_sub(1, SeqCst);
        }
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
