//! `Worker`: takes a queue's entries and runs the handlers of their events.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use pyventus_core::remote::{DecodeError, Envelope, EnvelopeError};
use pyventus_core::{EventEmission, EventLinker, SubscriberFailure};

use crate::{
    Delivery, Error, GROUP, check_queue, dead_key, ensure_group, envelope, manager, stream_key,
};

/// A worker process's loop: takes the queue's envelopes and runs the link-time
/// handlers of their events (Pyventus's RQ and Celery workers).
///
/// Each entry is delivered to one worker of the group. The worker decodes the
/// envelope, runs the handlers of the event's name through the normal workflow
/// (success and failure callbacks run here), and acknowledges the entry only
/// after they all finished without failing. A failure (a handler's error or
/// panic, an unknown event, an undecodable payload) leaves the entry pending:
/// after the visibility timeout a worker claims it again (`XAUTOCLAIM`), up to
/// `max_deliveries`, after which it moves to the dead letters with its reason,
/// atomically with its acknowledgement. A long handler keeps its entry with a
/// heartbeat (`XCLAIM ... JUSTID`) every third of the visibility timeout.
///
/// [`shutdown`](Self::shutdown) (or a signal, with
/// [`run_until_signal`](Self::run_until_signal)) stops taking entries and
/// waits for those in flight; whatever was not taken stays queued.
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

struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    queue: String,
    stream: String,
    dead: String,
    linker: EventLinker,
    consumer: String,
    concurrency: usize,
    visibility: Duration,
    max_deliveries: u64,
    block: Duration,
    dead_cap: usize,
    shutdown: CancellationToken,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    reclaimed: AtomicU64,
}

/// How many entries a worker has handled, since it started.
///
/// # Examples
///
/// ```
/// use pyventus_redis::WorkerStats;
///
/// let stats = WorkerStats { processed: 10, retried: 1, ..WorkerStats::default() };
/// assert_eq!(stats.dead_lettered, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Acknowledged after its handlers ran.
    pub processed: u64,
    /// Failed, and left pending for another delivery.
    pub retried: u64,
    /// Failed its last allowed delivery, and moved to the dead letters.
    pub dead_lettered: u64,
    /// Claimed from a consumer that had held it past the visibility timeout.
    pub reclaimed: u64,
}

/// Builds a [`Worker`]; see [`Worker`]'s example.
#[must_use]
pub struct WorkerBuilder {
    client: Result<redis::Client, Error>,
    queue: String,
    linker: Option<EventLinker>,
    consumer: Option<String>,
    concurrency: usize,
    visibility: Duration,
    max_deliveries: u64,
    block: Duration,
    dead_cap: usize,
}

impl WorkerBuilder {
    /// The queue to take entries from (default `"default"`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The linker whose handlers run (default: the global one).
    pub fn linker(mut self, linker: EventLinker) -> Self {
        self.linker = Some(linker);
        self
    }

    /// The consumer's name in the group; unique per process by default
    /// (`<host>-<pid>-<random>`). Two live workers must not share one.
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// How many entries run at once (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// How long an entry may stay with a consumer that shows no sign of life
    /// before another worker claims it (default 30 s). Also the delay before a
    /// failed entry is retried.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility = timeout;
        self
    }

    /// How many deliveries an entry gets before it moves to the dead letters
    /// (default 5).
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = n;
        self
    }

    /// How long one read waits for new entries (default 1 s); also the longest
    /// a shutdown waits for the loop to notice it.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// About how many entries the dead-letter stream keeps (default 100,000).
    pub fn dead_letter_cap(mut self, cap: usize) -> Self {
        self.dead_cap = cap;
        self
    }

    /// Connects, and creates the consumer group if missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a concurrency or `max_deliveries` of 0, a
    /// visibility timeout under 10 ms or a zero `block`; [`Error::InvalidQueue`];
    /// [`Error::Redis`] if Redis cannot be reached.
    pub async fn connect(self) -> Result<Worker, Error> {
        check_queue(&self.queue)?;
        let invalid = |what: &str| Err(Error::InvalidConfig(what.to_owned()));
        if self.concurrency == 0 {
            return invalid("a worker's concurrency must be at least 1");
        }
        if self.max_deliveries == 0 {
            return invalid("max_deliveries must be at least 1 (1: no retry)");
        }
        if self.visibility < Duration::from_millis(10) {
            return invalid(
                "the visibility timeout must be at least 10 ms (heartbeats renew it every third)",
            );
        }
        if self.block.is_zero() {
            return invalid("block must be more than zero (a read without BLOCK would spin)");
        }
        let client = self.client?;
        let mut conn = manager(&client).await?;
        let stream = stream_key(&self.queue);
        ensure_group(&mut conn, &stream).await?;
        let linker = match self.linker {
            Some(linker) => linker,
            None => EventLinker::try_global()?,
        };
        Ok(Worker {
            inner: Arc::new(Inner {
                client,
                conn,
                dead: dead_key(&self.queue),
                queue: self.queue,
                stream,
                linker,
                consumer: self.consumer.unwrap_or_else(consumer_name),
                concurrency: self.concurrency,
                visibility: self.visibility,
                max_deliveries: self.max_deliveries,
                block: self.block,
                dead_cap: self.dead_cap,
                shutdown: CancellationToken::new(),
                stats: Counters::default(),
            }),
        })
    }
}

/// `<host>-<pid>-<random>`: unique per process.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// One entry taken from the stream, and how many times it was delivered.
struct Taken {
    entry: StreamId,
    attempt: u64,
}

impl Worker {
    /// A builder connecting to `url`.
    pub fn builder(url: &str) -> WorkerBuilder {
        Self::builder_with_client(redis::Client::open(url).map_err(Error::from))
    }

    /// A builder on a client configured elsewhere.
    pub fn builder_for(client: redis::Client) -> WorkerBuilder {
        Self::builder_with_client(Ok(client))
    }

    fn builder_with_client(client: Result<redis::Client, Error>) -> WorkerBuilder {
        WorkerBuilder {
            client,
            queue: "default".to_owned(),
            linker: None,
            consumer: None,
            concurrency: 8,
            visibility: Duration::from_secs(30),
            max_deliveries: 5,
            block: Duration::from_secs(1),
            dead_cap: 100_000,
        }
    }

    /// The queue.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// This worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.inner.consumer
    }

    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        let c = &self.inner.stats;
        WorkerStats {
            processed: c.processed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            reclaimed: c.reclaimed.load(Ordering::Relaxed),
        }
    }

    /// Asks [`run`](Self::run) to stop taking entries, finish those in flight and
    /// return.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Runs until Ctrl-C (or, on Unix, SIGTERM), then shuts down gracefully.
    pub async fn run_until_signal(&self) -> Result<(), Error> {
        let worker = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!(target: "pyventus", "signal received: finishing the deliveries in flight");
            worker.shutdown();
        });
        self.run().await
    }

    /// Takes and runs entries until [`shutdown`](Self::shutdown); returns once
    /// the entries in flight have finished.
    pub async fn run(&self) -> Result<(), Error> {
        let inner = &self.inner;
        // Blocking reads get a connection of their own with no response timeout:
        // on a shared one, a `BLOCK` would time out and hold up other commands.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let mut reader = inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(Error::from)?;
        let slots = Arc::new(Semaphore::new(inner.concurrency));
        let in_flight = TaskTracker::new();
        let claim_every = inner.visibility / 2;
        let mut last_claim: Option<tokio::time::Instant> = None;
        tracing::info!(
            target: "pyventus",
            queue = %inner.queue,
            consumer = %inner.consumer,
            concurrency = inner.concurrency,
            "worker started"
        );

        let result = loop {
            let permits = tokio::select! {
                () = inner.shutdown.cancelled() => break Ok(()),
                permits = take_slots(&slots) => permits,
            };
            let due = last_claim.is_none_or(|at| at.elapsed() >= claim_every);
            let taken = if due {
                last_claim = Some(tokio::time::Instant::now());
                self.reclaim(permits.len()).await
            } else {
                Ok(Vec::new())
            };
            let taken = match taken {
                Ok(taken) if !taken.is_empty() => Ok(taken),
                Ok(_) => self.read(&mut reader, permits.len()).await,
                Err(err) => Err(err),
            };
            match taken {
                Ok(taken) => {
                    for (item, permit) in taken.into_iter().zip(permits) {
                        let worker = self.clone();
                        in_flight.spawn(async move {
                            worker.deliver(item).await;
                            drop(permit);
                        });
                    }
                }
                Err(err) => {
                    tracing::error!(target: "pyventus", queue = %inner.queue, "cannot read the queue: {err}");
                    tokio::select! {
                        () = inner.shutdown.cancelled() => break Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        in_flight.close();
        in_flight.wait().await;
        tracing::info!(target: "pyventus", queue = %inner.queue, consumer = %inner.consumer, stats = ?self.stats(), "worker stopped");
        result
    }

    /// New entries for up to `count` free slots, waiting up to `block`.
    async fn read(
        &self,
        reader: &mut MultiplexedConnection,
        count: usize,
    ) -> Result<Vec<Taken>, Error> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.inner.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(u64::try_from(self.inner.block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.inner.stream)
            .arg(">")
            .query_async(reader)
            .await
            .map_err(Error::from)?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| Taken { entry, attempt: 1 })
            .collect())
    }

    /// Entries held past the visibility timeout by any consumer (a dead or slow
    /// one, or this one after a failure), for up to `count` free slots.
    async fn reclaim(&self, count: usize) -> Result<Vec<Taken>, Error> {
        let mut conn = self.inner.conn.clone();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.inner.stream)
            .arg(GROUP)
            .arg(&self.inner.consumer)
            .arg(u64::try_from(self.inner.visibility.as_millis()).unwrap_or(u64::MAX))
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        if !reply.deleted_ids.is_empty() {
            // Trimmed by the stream's cap while pending: nothing left to deliver.
            tracing::warn!(
                target: "pyventus",
                queue = %self.inner.queue,
                entries = ?reply.deleted_ids,
                "pending entries were trimmed from the stream before they could be handled; raise the stream cap"
            );
        }
        let mut taken = Vec::with_capacity(reply.claimed.len());
        for entry in reply.claimed {
            let attempt = self.deliveries(&entry.id).await?;
            taken.push(Taken { entry, attempt });
        }
        self.inner
            .stats
            .reclaimed
            .fetch_add(taken.len() as u64, Ordering::Relaxed);
        Ok(taken)
    }

    /// How many times the pending entry `id` has been delivered.
    async fn deliveries(&self, id: &str) -> Result<u64, Error> {
        let mut conn = self.inner.conn.clone();
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&self.inner.stream)
            .arg(GROUP)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(pending.first().map_or(1, |p| p.3))
    }

    /// Handles one entry: runs its handlers, then acknowledges it, leaves it for
    /// a retry, or moves it to the dead letters.
    async fn deliver(&self, Taken { entry, attempt }: Taken) {
        let span = tracing::info_span!(
            "pyventus.delivery",
            queue = %self.inner.queue,
            entry = %entry.id,
            attempt,
            envelope = tracing::field::Empty,
            event = tracing::field::Empty,
        );
        async {
            let envelope = envelope::from_fields(&entry.map);
            if let Ok(envelope) = &envelope {
                tracing::Span::current()
                    .record("envelope", envelope.id.as_str())
                    .record("event", envelope.event.as_str());
            }
            let outcome = match envelope {
                Ok(envelope) => self.run_handlers(&entry.id, attempt, envelope).await,
                Err(err) => Err(Failure::Envelope(err)),
            };
            if let Err(err) = self.settle(&entry, attempt, outcome).await {
                // The entry stays pending: another delivery will settle it.
                tracing::error!(target: "pyventus", "cannot settle the entry: {err}");
            }
        }
        .instrument(span)
        .await;
    }

    async fn run_handlers(
        &self,
        entry_id: &str,
        attempt: u64,
        envelope: Envelope,
    ) -> Result<(), Failure> {
        let event = pyventus_core::remote::decode(&envelope.event, &envelope.payload)
            .map_err(Failure::Decode)?;
        let mut emission =
            EventEmission::resolve(&self.inner.linker, event).map_err(Failure::Resolve)?;
        if !envelope.handlers.is_empty() {
            let missing = emission.retain_handlers(&envelope.handlers);
            if !missing.is_empty() {
                // Runs nothing: the delivery fails, so a worker that has every
                // handler it targets retries it (or it is dead-lettered).
                emission.discard();
                return Err(Failure::MissingHandlers(missing));
            }
        }
        emission.set_context(Arc::new(Delivery {
            envelope_id: envelope.id,
            entry_id: entry_id.to_owned(),
            attempt,
        }));
        let heartbeat = self.heartbeat(entry_id);
        let report = tokio::select! {
            report = emission.run() => report,
            () = heartbeat => unreachable!("the heartbeat runs until the handlers end"),
        };
        if report.is_success() {
            Ok(())
        } else {
            Err(Failure::Handlers(report.into_failures()))
        }
    }

    /// Keeps the entry with this consumer while its handlers run, so no other
    /// worker claims it as abandoned. Never ends.
    async fn heartbeat(&self, entry_id: &str) {
        let mut conn = self.inner.conn.clone();
        let mut every = tokio::time::interval(self.inner.visibility / 3);
        every.tick().await;
        loop {
            every.tick().await;
            let claimed: redis::RedisResult<Vec<String>> = redis::cmd("XCLAIM")
                .arg(&self.inner.stream)
                .arg(GROUP)
                .arg(&self.inner.consumer)
                .arg(0)
                .arg(entry_id)
                .arg("JUSTID")
                .query_async(&mut conn)
                .await;
            if let Err(err) = claimed {
                tracing::warn!(target: "pyventus", entry = entry_id, "heartbeat failed: {err}");
            }
        }
    }

    async fn settle(
        &self,
        entry: &StreamId,
        attempt: u64,
        outcome: Result<(), Failure>,
    ) -> Result<(), Error> {
        let inner = &self.inner;
        let mut conn = inner.conn.clone();
        match outcome {
            Ok(()) => {
                let _: u64 = redis::cmd("XACK")
                    .arg(&inner.stream)
                    .arg(GROUP)
                    .arg(&entry.id)
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::from)?;
                inner.stats.processed.fetch_add(1, Ordering::Relaxed);
            }
            Err(failure) if attempt >= inner.max_deliveries => {
                let reason = failure.to_string();
                let mut dead = redis::cmd("XADD");
                dead.arg(&inner.dead)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(inner.dead_cap)
                    .arg("*");
                for (field, value) in fields_as_text(&entry.map) {
                    dead.arg(field).arg(value);
                }
                dead.arg("reason")
                    .arg(&reason)
                    .arg("deliveries")
                    .arg(attempt)
                    .arg("failed_at")
                    .arg(now_millis())
                    .arg("entry")
                    .arg(&entry.id);
                // Moved and acknowledged together, or neither.
                redis::pipe()
                    .atomic()
                    .add_command(dead)
                    .ignore()
                    .cmd("XACK")
                    .arg(&inner.stream)
                    .arg(GROUP)
                    .arg(&entry.id)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(Error::from)?;
                inner.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    target: "pyventus",
                    deliveries = attempt,
                    "moved to the dead letters after its last allowed delivery: {reason}"
                );
            }
            Err(reason) => {
                let reason = reason.to_string();
                inner.stats.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "pyventus",
                    deliveries = attempt,
                    max_deliveries = inner.max_deliveries,
                    retry_in = ?inner.visibility,
                    "delivery failed, will be retried: {reason}"
                );
            }
        }
        Ok(())
    }
}

/// Why a delivery failed: what its dead letter's `reason` says.
#[derive(Debug)]
enum Failure {
    Envelope(EnvelopeError),
    Decode(DecodeError),
    Resolve(pyventus_core::Error),
    MissingHandlers(Vec<String>),
    Handlers(Vec<SubscriberFailure>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Envelope(err) => err.fmt(f),
            Failure::Decode(err) => err.fmt(f),
            Failure::Resolve(err) => err.fmt(f),
            Failure::MissingHandlers(ids) => {
                write!(
                    f,
                    "the handlers it targets are not in this worker: {}",
                    ids.join(", ")
                )
            }
            Failure::Handlers(failures) => match failures.as_slice() {
                [one] => one.fmt(f),
                [first, ..] => write!(f, "{} handlers failed; the first: {first}", failures.len()),
                [] => f.write_str("no handler failed"),
            },
        }
    }
}

/// The slots for the next batch: waits for one, then takes every other free one.
async fn take_slots(slots: &Arc<Semaphore>) -> Vec<OwnedSemaphorePermit> {
    let first = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let mut permits = vec![first];
    while let Ok(permit) = slots.clone().try_acquire_owned() {
        permits.push(permit);
    }
    permits
}

/// An entry's fields as text, for its dead letter (binary values are kept lossily).
fn fields_as_text(fields: &HashMap<String, Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Value::SimpleString(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                other => format!("{other:?}"),
            };
            (k.clone(), text)
        })
        .collect();
    out.sort();
    out
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let terminate = tokio::signal::unix::SignalKind::terminate();
        let Ok(mut term) = tokio::signal::unix::signal(terminate) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.inner.queue)
            .field("consumer", &self.inner.consumer)
            .field("concurrency", &self.inner.concurrency)
            .field("visibility_timeout", &self.inner.visibility)
            .field("max_deliveries", &self.inner.max_deliveries)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
