//! `Worker`: its settings, its public handle, what it counts and how healthy
//! it is. Its loop (connect, consume, reconnect) is in `supervisor.rs`, one
//! delivery in `handling.rs`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyventus_core::EventLinker;
pub use pyventus_core::remote::Health;
use pyventus_core::remote::{HealthWatch, Inbound, shutdown_signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::broker::{self, Topology};
use crate::publisher::{Declare, Publisher};

/// A worker process's loop: takes the queue's messages and runs the link-time
/// handlers of their events (Pyventus's Celery worker, with `acks_late`).
///
/// The broker delivers each message to one worker, up to `concurrency` at a
/// time (`basic_qos` prefetch). The worker reads the envelope, runs the handlers
/// of the event's name through the normal workflow (success and failure
/// callbacks run here), and acknowledges the message only after they all
/// finished without failing. A failure (a handler's error or panic, a handler
/// timeout, an unknown event, an undecodable payload) returns the message to
/// the queue for another delivery, counted by the broker; after
/// `max_deliveries` it moves to the dead letters with its reason. A message
/// that is not an envelope at all is dead-lettered on its first delivery.
///
/// Dead letters are published on a connection of the worker's own, apart from
/// the one it consumes on: under a memory or disk alarm the broker blocks the
/// connections that publish, and the worker goes on taking and acknowledging
/// messages meanwhile, holding each message whose dead letter waits for the
/// broker's confirm until the alarm clears (never returning it, which would
/// dead-letter it twice). A dead-letter queue or exchange deleted under the
/// worker is declared again by the next dead letter.
///
/// It reconnects by itself when the broker goes away (capped, jittered
/// backoff), declares the topology and its consumer anew, and returns
/// [`Error::GaveUp`] from [`run`](Self::run) once it has been without a broker
/// for longer than [`give_up_after`](WorkerBuilder::give_up_after);
/// [`health`](Self::health) tells a readiness probe where it stands meanwhile.
///
/// [`shutdown`](Self::shutdown) (or a signal, with
/// [`run_until_signal`](Self::run_until_signal)) stops taking messages and
/// waits up to the shutdown timeout for those in flight; what was not finished
/// is delivered again, to this worker or another.
///
/// # Examples
///
/// ```no_run
/// use pyventus_amqp::Worker;
/// use std::time::Duration;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_amqp::Error> {
/// let worker = Worker::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .queue("orders")
///     .concurrency(16)
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
    pub(crate) shared: Arc<Shared>,
}

/// What the worker's loop and its deliveries share. Counters are atomics; the
/// health is behind a mutex held only to read or replace it.
pub(crate) struct Shared {
    pub(crate) url: String,
    pub(crate) queue: String,
    pub(crate) topology: Topology,
    /// Runs each message's envelope: the step every broker's worker shares.
    pub(crate) inbound: Inbound,
    pub(crate) consumer: String,
    pub(crate) concurrency: u16,
    pub(crate) max_deliveries: u64,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) retry_delay: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) confirm_timeout: Duration,
    pub(crate) reconnect: (Duration, Duration),
    pub(crate) give_up_after: Option<Duration>,
    pub(crate) shutdown: CancellationToken,
    /// One permit per delivery running, across connections: deliveries of a
    /// lost connection still running hold theirs, so a new connection's wait.
    pub(crate) slots: Arc<Semaphore>,
    /// The connection dead letters are published on, apart from the one the
    /// worker consumes on: a broker alarm blocks publishing connections, and
    /// acknowledgements must keep flowing meanwhile.
    pub(crate) dead_letters: Publisher,
    pub(crate) stats: Counters,
    health: HealthWatch,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) processed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// How many messages a worker has handled, since it started.
///
/// # Examples
///
/// ```
/// use pyventus_amqp::WorkerStats;
///
/// let stats = WorkerStats { processed: 10, retried: 1, ..WorkerStats::default() };
/// assert_eq!(stats.dead_lettered, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Acknowledged after its handlers ran.
    pub processed: u64,
    /// Failed, and returned to the queue for another delivery.
    pub retried: u64,
    /// Moved to the dead letters (its last allowed delivery failed, or it was
    /// not an envelope).
    pub dead_lettered: u64,
    /// Deliveries of a message delivered before (a retry, or one whose worker
    /// died or lost its connection).
    pub redelivered: u64,
    /// Times the worker connected again after losing the broker.
    pub reconnects: u64,
}

/// Builds a [`Worker`]; see [`Worker`]'s example.
#[must_use]
pub struct WorkerBuilder {
    url: String,
    queue: String,
    linker: Option<EventLinker>,
    consumer: Option<String>,
    concurrency: usize,
    max_deliveries: u64,
    handler_timeout: Option<Duration>,
    shutdown_timeout: Duration,
    retry_delay: Duration,
    blocking: bool,
    connect_timeout: Duration,
    confirm_timeout: Duration,
    reconnect: (Duration, Duration),
    give_up_after: Option<Duration>,
}

impl WorkerBuilder {
    /// The queue to take messages from (default `"default"`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The linker whose handlers run (default: the global one).
    pub fn linker(mut self, linker: EventLinker) -> Self {
        self.linker = Some(linker);
        self
    }

    /// The consumer tag; unique per process by default (`<host>-<pid>-<random>`).
    pub fn consumer(mut self, tag: impl Into<String>) -> Self {
        self.consumer = Some(tag.into());
        self
    }

    /// How many messages run at once (default 8): the channel's prefetch.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// How many deliveries a message gets before it moves to the dead letters
    /// (default 5). The broker keeps it as the queue's `x-delivery-limit`, so
    /// every worker and emitter of a queue must agree on it.
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = n;
        self
    }

    /// How long one delivery's handlers may run (default: no limit). Past it,
    /// asynchronous handlers are cancelled at their next `.await` and the
    /// delivery fails; a synchronous handler cannot be interrupted (with
    /// [`blocking`](Self::blocking) it is left to finish on its thread).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = Some(timeout);
        self
    }

    /// How long a shutdown waits for the deliveries in flight (default 30 s);
    /// those still running then are cancelled and delivered again later.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a failed message is held before it goes back to the queue
    /// (default 1 s), so that a failing message does not loop hot; it occupies
    /// its slot meanwhile.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Whether synchronous handlers run on blocking threads (default `true`),
    /// so that a slow one cannot stall the worker's runtime: its connection,
    /// its other deliveries, its heartbeats. The threads are pyventus's own
    /// ([`BlockingThreads::Detached`](pyventus_core::BlockingThreads::Detached)),
    /// not the runtime's: dropping the runtime after [`Worker::run`] returned
    /// does not wait for a handler still stuck past the shutdown timeout, so
    /// the process exits and the broker delivers its message again. With
    /// `false`, a synchronous handler runs on a runtime thread, and one that
    /// never returns keeps the shutdown from finishing.
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// How long one attempt to connect may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the broker may take to confirm a dead letter (default 10 s)
    /// before the worker says so (a warning): it goes on waiting, holding the
    /// message, since returning it would dead-letter it twice once the broker
    /// stores the letter (a memory or disk alarm delays confirms until it
    /// clears).
    pub fn confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// The delays between attempts to reconnect: from `initial`, doubling up
    /// to `max`, jittered (default 100 ms up to 10 s).
    pub fn reconnect_delay(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect = (initial, max);
        self
    }

    /// How long the worker tries to get the broker back before
    /// [`run`](Worker::run) returns [`Error::GaveUp`] (default 5 minutes), so
    /// that a supervisor (systemd, Kubernetes) can act on it.
    pub fn give_up_after(mut self, limit: Duration) -> Self {
        self.give_up_after = Some(limit);
        self
    }

    /// Never give up reconnecting; [`Worker::health`] tells the outage.
    pub fn retry_forever(mut self) -> Self {
        self.give_up_after = None;
        self
    }

    /// Checks the settings, connects, and declares the queue, its dead letters
    /// and its delivery limit.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a concurrency of 0 or above 65,535, a
    /// `max_deliveries` of 0, or a zero timeout; [`Error::InvalidQueue`];
    /// [`Error::TopologyMismatch`] if the queue exists with another delivery
    /// limit; [`Error::Amqp`] or [`Error::Timeout`] if RabbitMQ cannot be
    /// reached.
    pub async fn connect(self) -> Result<Worker, Error> {
        let invalid = |what: &str| Err(Error::InvalidConfig(what.to_owned()));
        let Ok(concurrency) = u16::try_from(self.concurrency) else {
            return invalid("a worker's concurrency is its prefetch: at most 65535");
        };
        if concurrency == 0 {
            return invalid("a worker's concurrency must be at least 1");
        }
        if self.max_deliveries == 0 {
            return invalid("max_deliveries must be at least 1 (1: no retry)");
        }
        if self.connect_timeout.is_zero()
            || self.confirm_timeout.is_zero()
            || self.handler_timeout.is_some_and(|t| t.is_zero())
        {
            return invalid("timeouts must be more than zero");
        }
        let topology = Topology::new(&self.queue, self.max_deliveries)?;
        let linker = match self.linker {
            Some(linker) => linker,
            None => EventLinker::try_global()?,
        };
        let consumer = self.consumer.unwrap_or_else(broker::process_name);
        let connection = broker::connect(
            &self.url,
            &format!("worker {consumer}"),
            self.connect_timeout,
        )
        .await?;
        let declared = topology.declare(&connection).await;
        let _ = connection.close(200, "OK".into()).await;
        declared?;
        let dead_letters = Publisher::new(
            &self.url,
            format!("worker {consumer} dead letters"),
            topology.clone(),
            Declare::DeadLetters,
            self.connect_timeout,
        );
        Ok(Worker {
            shared: Arc::new(Shared {
                url: self.url,
                queue: self.queue,
                topology,
                inbound: Inbound::new(linker, "amqp-worker")
                    .blocking(self.blocking)
                    .handler_timeout(self.handler_timeout),
                consumer,
                concurrency,
                max_deliveries: self.max_deliveries,
                shutdown_timeout: self.shutdown_timeout,
                retry_delay: self.retry_delay,
                connect_timeout: self.connect_timeout,
                confirm_timeout: self.confirm_timeout,
                reconnect: self.reconnect,
                give_up_after: self.give_up_after,
                shutdown: CancellationToken::new(),
                slots: Arc::new(Semaphore::new(concurrency.into())),
                dead_letters,
                stats: Counters::default(),
                health: HealthWatch::new(),
            }),
        })
    }
}

impl Worker {
    /// A builder connecting to `url` (`amqp://user:password@host:port/vhost`).
    pub fn builder(url: &str) -> WorkerBuilder {
        WorkerBuilder {
            url: url.to_owned(),
            queue: "default".to_owned(),
            linker: None,
            consumer: None,
            concurrency: 8,
            max_deliveries: 5,
            handler_timeout: None,
            shutdown_timeout: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
            blocking: true,
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(10),
            reconnect: (Duration::from_millis(100), Duration::from_secs(10)),
            give_up_after: Some(Duration::from_mins(5)),
        }
    }

    /// The queue.
    pub fn queue(&self) -> &str {
        &self.shared.queue
    }

    /// This worker's consumer tag.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        let c = &self.shared.stats;
        WorkerStats {
            processed: c.processed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            redelivered: c.redelivered.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Where the worker stands: for a readiness probe, [`Health::is_ready`].
    pub fn health(&self) -> Health {
        self.shared.health.get()
    }

    /// A receiver that sees every change of [`health`](Self::health), to
    /// report it as it happens.
    ///
    /// ```no_run
    /// # async fn doc(worker: pyventus_amqp::Worker) {
    /// let mut health = worker.watch_health();
    /// tokio::spawn(async move {
    ///     while health.changed().await.is_ok() {
    ///         println!("worker health: {:?}", *health.borrow_and_update());
    ///     }
    /// });
    /// # }
    /// ```
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<Health> {
        self.shared.health.watch()
    }

    pub(crate) fn set_health(&self, health: Health) {
        self.shared.health.set(health);
    }

    /// Asks [`run`](Self::run) to stop taking messages, finish those in flight
    /// (up to the shutdown timeout) and return.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Runs until Ctrl-C (or, on Unix, SIGTERM), then shuts down gracefully.
    pub async fn run_until_signal(&self) -> Result<(), Error> {
        let worker = self.clone();
        let watcher = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!(target: "pyventus", "signal received: finishing the deliveries in flight");
            worker.shutdown();
        });
        let result = self.run().await;
        watcher.abort();
        result
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Worker")
            .field("queue", &s.queue)
            .field("consumer", &s.consumer)
            .field("concurrency", &s.concurrency)
            .field("max_deliveries", &s.max_deliveries)
            .field("health", &self.health())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
