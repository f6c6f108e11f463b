//! `Worker`: takes a queue's entries and runs the handlers of their events.
//!
//! The worker's jobs live in files named for them: `builder` (settings and
//! their checks), `read_loop` (connecting, taking entries, reconnecting),
//! `lease` (keeping the entries in flight), `execute` (one entry's checks,
//! then the shared inbound step, `pyventus_core::remote::Inbound`), `settle`
//! (acknowledging, retrying or dead-lettering it), `background` (the tasks
//! on pyventus's own runtime: the lease keeper, the acknowledgements'
//! rescuer), and `stats`. Why a delivery failed, the worker's health and the
//! backoff are core's, shared by every broker (`pyventus_core::remote`).

mod background;
mod builder;
mod execute;
mod lease;
mod read_loop;
mod settle;
mod stats;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pyventus_core::remote::{HealthWatch, Inbound, ShutdownNow, run_until_signal};
use tokio_util::sync::CancellationToken;

pub use builder::WorkerBuilder;
pub use pyventus_core::remote::Health;
pub use stats::WorkerStats;

use crate::Error;
use crate::stream::Stream;
use builder::Config;
use lease::Leases;
use stats::Counters;

/// The workers' metrics (recorded with the `metrics` feature).
static METRICS: pyventus_core::remote::WorkerMetrics =
    pyventus_core::remote::WorkerMetrics::new("redis");

/// A worker process's loop: takes the queue's entries and runs the link-time
/// handlers of their events (Pyventus's RQ and Celery workers).
///
/// Each entry is delivered to one worker of the group. The worker checks the
/// entry (its size, how many times it was delivered), decodes the envelope,
/// runs the handlers of the event's name through the normal workflow (success
/// and failure callbacks run here), and acknowledges the entry only after they
/// all finished without failing. A failure (a handler's error, panic or
/// timeout, an unknown event, an undecodable payload) leaves the entry pending
/// for a retry after a backoff, up to `max_deliveries`, after which it moves to
/// the dead letters with its reason, atomically with its acknowledgement.
/// Entries that can never run (malformed, too large, or delivered more than
/// `max_deliveries` times because their handlers crash the process) go there at
/// once, without running.
///
/// One lease keeper per worker renews every entry in flight, on pyventus's own
/// runtime: handlers that block or hog the CPU cannot starve it. Synchronous
/// handlers run on blocking threads, so they do not block the worker's
/// runtime either; those threads are pyventus's own
/// ([`BlockingThreads::Detached`](pyventus_core::BlockingThreads::Detached)),
/// so dropping the runtime after [`run`](Self::run) returned does not wait
/// for a handler stuck past the shutdown deadline: the process exits, and the
/// entry stays pending for another worker.
///
/// When Redis goes away, the worker reconnects with a capped, jittered
/// backoff, recreates the consumer group if Redis lost it, reports
/// [`Health::Reconnecting`], and after [`give_up_after`](WorkerBuilder::give_up_after)
/// returns [`Error::GaveUp`] from [`run`](Self::run). A refused password
/// returns [`Error::Authentication`] at once.
///
/// Concurrency: a `Worker` is a cheap handle (clone it to stop the worker from
/// elsewhere or to read its stats and health); its counters are atomics, its
/// health a `watch` channel, and the set of leases a mutex held only to add,
/// remove or copy ids. No lock is held while handlers run: asynchronous ones
/// run on the runtime that calls [`run`](Self::run), up to
/// [`concurrency`](WorkerBuilder::concurrency) at once (the entries of one
/// read run concurrently on one task of it), synchronous ones on
/// pyventus's blocking threads. Acknowledgements go in batches: an entry
/// joins the next `XACK` once its handlers succeeded. One worker runs one
/// loop at a time ([`Error::AlreadyRunning`]).
///
/// [`shutdown`](Self::shutdown) (or a signal, with
/// [`run_until_signal`](Self::run_until_signal)) stops taking entries and
/// waits for those in flight up to the
/// [`shutdown_deadline`](WorkerBuilder::shutdown_deadline); past it, their
/// runs are cut short and their entries left pending for another worker
/// (never acknowledged). Whatever was not taken stays queued.
///
/// # Examples
///
/// ```no_run
/// use pyventus_redis::Worker;
/// use std::time::Duration;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_redis::Error> {
/// let worker = Worker::builder("redis://127.0.0.1:6379")
///     .queue("orders")
///     .concurrency(16)
///     .visibility_timeout(Duration::from_secs(30))
///     .max_deliveries(5)
///     .handler_timeout(Duration::from_secs(60))
///     .connect()
///     .await?;
/// worker.run_until_signal().await?; // until Ctrl-C or SIGTERM
/// println!("{:?}", worker.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

/// What the worker's parts share.
struct Inner {
    config: Config,
    client: redis::Client,
    /// Commands of the read loop and of settling, on the caller's runtime.
    stream: Stream,
    /// The lease keeper's commands, on a connection of pyventus's own runtime.
    keeper_stream: Stream,
    /// Runs each entry's envelope: the step every broker's worker shares.
    inbound: Inbound,
    consumer: String,
    /// Stop taking entries.
    shutdown: CancellationToken,
    /// Cut the runs in flight short (the shutdown deadline passed, or
    /// `shutdown_now`).
    abandon: CancellationToken,
    /// `shutdown_now` was called: what is still being read or written has a
    /// moment, however Redis answers.
    now: ShutdownNow,
    health: HealthWatch,
    stats: Counters,
    leases: Leases,
    /// Acknowledgements waiting for the next `XACK`.
    acks: settle::Acks,
    /// When entries this worker left for a retry become due.
    retries_due: Mutex<BinaryHeap<Reverse<Instant>>>,
    running: AtomicBool,
}

impl Worker {
    /// A builder connecting to `url` (`redis://[user:password@]host:port/db`).
    pub fn builder(url: &str) -> WorkerBuilder {
        WorkerBuilder::new(redis::Client::open(url).map_err(Error::from))
    }

    /// A builder on a client configured elsewhere.
    pub fn builder_for(client: redis::Client) -> WorkerBuilder {
        WorkerBuilder::new(Ok(client))
    }

    /// The queue.
    pub fn queue(&self) -> &str {
        self.inner.stream.queue()
    }

    /// This worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.inner.consumer
    }

    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.inner.stats.snapshot()
    }

    /// How the worker is doing now: what a readiness or liveness probe asks.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn probe(worker: pyventus_redis::Worker) {
    /// use pyventus_redis::Health;
    ///
    /// let ready = worker.health() == Health::Ready; // answer 200 or 503
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        self.inner.health.get()
    }

    /// A receiver that sees every change of [`health`](Self::health), to
    /// report it (a readiness file, a metric, systemd's `sd_notify`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn watch(worker: pyventus_redis::Worker) {
    /// let mut health = worker.watch_health();
    /// tokio::spawn(async move {
    ///     while health.changed().await.is_ok() {
    ///         println!("worker health: {:?}", *health.borrow_and_update());
    ///     }
    /// });
    /// # }
    /// ```
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<Health> {
        self.inner.health.watch()
    }

    /// Asks [`run`](Self::run) to stop taking entries, finish those in flight
    /// (up to the shutdown deadline) and return.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Stops at once: takes no more entries and cuts the runs in flight short,
    /// leaving their entries pending for another worker (never acknowledged).
    /// What is still being read or written then (a read, acknowledgements,
    /// entries given back) has a second at most, so that `run` returns at
    /// once even when Redis does not answer: an acknowledgement cut there
    /// leaves its entry to be delivered again, and entries a cut read took
    /// are claimed once the visibility timeout passes.
    /// What a second Ctrl-C does under [`run_until_signal`](Self::run_until_signal).
    pub fn shutdown_now(&self) {
        self.inner.now.call();
        self.inner.shutdown.cancel();
        self.inner.abandon.cancel();
    }

    /// Runs until Ctrl-C (or, on Unix, SIGTERM), then shuts down gracefully; a
    /// second signal stops at once ([`shutdown_now`](Self::shutdown_now)).
    pub async fn run_until_signal(&self) -> Result<(), Error> {
        let (drain, stop) = (self.clone(), self.clone());
        run_until_signal(
            self.run(),
            move || drain.shutdown(),
            move || stop.shutdown_now(),
        )
        .await
    }

    /// Takes and runs entries until [`shutdown`](Self::shutdown); returns once
    /// the entries in flight have finished or the shutdown deadline passed.
    ///
    /// Dropping the future instead stops taking entries at once, with no
    /// deadline: the deliveries already started go on to their end on the
    /// runtime they run on, their leases renewed meanwhile, and are settled
    /// as usual; a later run's shutdown neither waits for them nor cuts them
    /// short. If that runtime goes away first, their entries stay pending,
    /// delivered again (a synchronous handler already running on a blocking
    /// thread finishes there all the same).
    ///
    /// # Errors
    ///
    /// [`Error::GaveUp`] when Redis stayed unreachable past
    /// [`give_up_after`](WorkerBuilder::give_up_after);
    /// [`Error::Authentication`] when Redis refuses the credentials;
    /// [`Error::AlreadyRunning`] if the worker is running already. Either way
    /// the entries in flight were given the shutdown deadline first.
    pub async fn run(&self) -> Result<(), Error> {
        read_loop::run(self).await
    }

    fn set_health(&self, health: Health) {
        self.inner.health.set(health);
    }

    fn push_retry(&self, due: Instant) {
        self.inner
            .retries_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Reverse(due));
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("Worker")
            .field("queue", &self.queue())
            .field("consumer", &self.inner.consumer)
            .field("concurrency", &config.concurrency)
            .field("visibility_timeout", &config.visibility)
            .field("max_deliveries", &config.max_deliveries)
            .field("health", &self.health())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
