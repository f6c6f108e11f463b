//! `WorkerBuilder`: a worker's settings, their defaults and their checks.

use std::sync::Arc;
use std::time::Duration;

use pyventus_core::remote::{HealthWatch, Inbound};
use pyventus_core::{EventLinker, Provided};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::stats::Counters;
use super::{Shared, Worker};
use crate::Error;
use crate::broker::{self, Topology};
use crate::publisher::{Declare, Publisher};

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
    states: Provided,
}

impl WorkerBuilder {
    pub(super) fn new(url: &str) -> Self {
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
            states: Provided::default(),
        }
    }

    /// Provides `value` to the worker's linker, for its handlers that take a
    /// [`State<T>`](pyventus_core::State): a database pool, a mail client,
    /// made in this process as the web process makes its own.
    /// [`connect`](Self::connect) refuses to start while a handler of the
    /// linker takes a state nobody provided.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn doc() -> Result<(), pyventus_amqp::Error> {
    /// struct Mailer;
    /// let worker = pyventus_amqp::Worker::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .state(Mailer)
    ///     .connect()
    ///     .await?;
    /// # drop(worker); Ok(()) }
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.add(value);
        self
    }

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
        self.states.provide_to(&linker);
        linker.check_states()?;
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
        let replies = Arc::new(crate::reply::Replies::new(Publisher::new(
            &self.url,
            format!("worker {consumer} replies"),
            topology.clone(),
            Declare::DeadLetters,
            self.connect_timeout,
        )));
        Ok(Worker {
            shared: Arc::new(Shared {
                url: self.url,
                queue: self.queue,
                topology,
                inbound: Inbound::new(linker, "amqp-worker")
                    .blocking(self.blocking)
                    .handler_timeout(self.handler_timeout)
                    .reply_sender(replies),
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
                abandon: CancellationToken::new(),
                slots: Arc::new(Semaphore::new(concurrency.into())),
                dead_letters,
                stats: Counters::default(),
                health: HealthWatch::new(),
            }),
        })
    }
}
