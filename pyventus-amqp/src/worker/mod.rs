//! `Worker`: takes a queue's messages and runs the handlers of their events.
//!
//! The worker's jobs live in files named for them, as in `pyventus-redis`:
//! `builder` (settings and their checks), `read_loop` (connecting, consuming,
//! reconnecting, draining), `execute` (one message: its envelope, then the
//! inbound step every broker's worker shares, `pyventus_core::remote::Inbound`),
//! `settle` (acknowledging, returning or dead-lettering it), and `stats`. Why
//! a delivery failed, the worker's health and the backoff are core's
//! (`pyventus_core::remote`).

mod builder;
mod execute;
mod read_loop;
mod settle;
mod stats;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use pyventus_core::remote::Health;
use pyventus_core::remote::{HealthWatch, Inbound, run_until_signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::broker::Topology;
use crate::publisher::Publisher;

pub use builder::WorkerBuilder;
use stats::Counters;
pub use stats::WorkerStats;

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
/// health a `watch` channel.
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
    /// Cancelled to cut the deliveries in flight short
    /// ([`Worker::shutdown_now`]).
    pub(crate) abandon: CancellationToken,
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

impl Worker {
    /// A builder connecting to `url` (`amqp://user:password@host:port/vhost`).
    pub fn builder(url: &str) -> WorkerBuilder {
        WorkerBuilder::new(url)
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

    /// Stops at once: takes no more messages and cancels the deliveries in
    /// flight, leaving their messages unacknowledged, so the broker delivers
    /// them again. What a second Ctrl-C does under
    /// [`run_until_signal`](Self::run_until_signal). It does not wait for a
    /// connection being opened or closed either. A delivery cancelled while
    /// its acknowledgement was on its way may be acknowledged and not
    /// counted in [`stats`](Self::stats).
    pub fn shutdown_now(&self) {
        self.shared.shutdown.cancel();
        self.shared.abandon.cancel();
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
