//! `RedisProcessingService`: emissions enqueued on a Redis stream.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use pyventus_core::remote::Envelope;
use pyventus_core::{EventEmission, ProcessingService};
use tokio::runtime::RuntimeFlavor;

use crate::backlog::{Gauge, Overflow};
use crate::connection::{self, Timeouts};
use crate::stream::{Added, Stream};
use crate::{DEFAULT_MAX_ENTRY_SIZE, Error, check_queue, envelope};

/// Enqueues emissions on a Redis stream for [`Worker`](crate::Worker)
/// processes to handle: Pyventus's Redis Queue and Celery emitters.
///
/// `emit` returns once Redis has taken the envelope (`XADD`), or with an error
/// if it could not: nothing is dropped silently. Errors come back within the
/// [connect](RedisProcessingServiceBuilder::connect_timeout) or
/// [response](RedisProcessingServiceBuilder::response_timeout) timeout (one
/// second each by default) when Redis is unreachable; a connection that Redis
/// closed (a restart) is opened again and the command sent once more. It runs no
/// handler locally; the workers run the link-time handlers of the event's
/// name. A closure subscribed at runtime cannot run in a worker, so emitting an
/// event that has one is an error ([`pyventus_core::Error::RuntimeSubscriberRemote`]).
///
/// The queue is bounded: when the entries no worker has taken yet reach the
/// [`stream_cap`](RedisProcessingServiceBuilder::stream_cap), `emit` fails
/// with [`Error::QueueFull`] as its source, unless the service was built to
/// drop the oldest instead ([`Overflow::DropOldest`]). Entries larger than
/// [`max_entry_size`](RedisProcessingServiceBuilder::max_entry_size) are
/// refused ([`Error::EntryTooLarge`]).
///
/// `emit` blocks the calling thread for the round trip, on a blocking
/// connection of the service's (it steps out of the async context first when
/// called on a runtime's worker thread): no task, no other thread, takes part.
/// From async code, prefer [`enqueue`](Self::enqueue) (or `emit_async`).
///
/// # Examples
///
/// ```no_run
/// use pyventus_redis::{Error, RedisProcessingService};
/// use pyventus_core::EventEmitter;
///
/// # #[derive(Debug)] struct OrderPlaced;
/// # impl pyventus_core::Event for OrderPlaced { const NAME: &'static str = "OrderPlaced"; }
/// # #[tokio::main] async fn main() -> Result<(), pyventus_redis::Error> {
/// let redis = RedisProcessingService::builder("redis://127.0.0.1:6379")
///     .queue("orders")
///     .stream_cap(1_000_000)
///     .connect()
///     .await?;
/// let emitter = EventEmitter::new(redis);
/// match emitter.emit(OrderPlaced) {
///     Err(err) if matches!(Error::of(&err), Some(Error::QueueFull { .. })) => {
///         // Shed load: answer 503, try again later...
///     }
///     other => other?,
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisProcessingService {
    inner: Arc<Inner>,
}

/// The most idle blocking connections a service keeps for `emit`: a burst
/// from many threads opens one per thread emitting at once, and what is over
/// this is closed when its emit is done, so a service does not hold a burst's
/// connections open for good. More threads than this emitting all the time
/// open a connection for some of their emits.
const MAX_IDLE_BLOCKING: usize = 16;

struct Inner {
    stream: Stream,
    /// For the connections requests wait for their answers on, and the
    /// blocking ones.
    client: redis::Client,
    /// Idle blocking connections for `emit`, one per thread emitting at once
    /// at most, and [`MAX_IDLE_BLOCKING`] at most; only one that answered
    /// its last command comes back here.
    blocking: Mutex<Vec<redis::Connection>>,
    timeouts: Timeouts,
    cap: u64,
    overflow: Overflow,
    max_entry_size: usize,
    gauge: Gauge,
    enqueued: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    /// Milliseconds since `started` of the last drop warning (they are
    /// summarized at most once a second).
    warned_at: AtomicU64,
    started: Instant,
}

/// What a [`RedisProcessingService`] has done since it was built.
///
/// # Examples
///
/// ```
/// use pyventus_redis::ServiceStats;
///
/// let stats = ServiceStats { enqueued: 10, ..ServiceStats::default() };
/// assert_eq!(stats.dropped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Entries enqueued.
    pub enqueued: u64,
    /// Emissions refused because the queue was full ([`Error::QueueFull`]).
    pub rejected: u64,
    /// Entries no worker had taken, dropped to make room
    /// ([`Overflow::DropOldest`]).
    pub dropped: u64,
}

/// Builds a [`RedisProcessingService`]; see its example.
#[must_use]
pub struct RedisProcessingServiceBuilder {
    client: Result<redis::Client, Error>,
    queue: String,
    cap: u64,
    overflow: Overflow,
    max_entry_size: usize,
    timeouts: Timeouts,
}

impl RedisProcessingServiceBuilder {
    /// The queue's name (default `"default"`): the stream is `pyventus:{<queue>}:stream`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How many entries may wait for a worker (default one million): past it,
    /// what [`when_full`](Self::when_full) says. Entries the workers have
    /// handled do not count; the workers trim them from the stream.
    pub fn stream_cap(mut self, cap: u64) -> Self {
        self.cap = cap;
        self
    }

    /// What a full queue does to an emission (default [`Overflow::Reject`]).
    pub fn when_full(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The largest entry `emit` sends, in bytes of field names and values
    /// (default 1 MiB); larger ones are refused with [`Error::EntryTooLarge`].
    /// Workers refuse larger entries too (see
    /// [`WorkerBuilder::max_entry_size`](crate::WorkerBuilder::max_entry_size)).
    pub fn max_entry_size(mut self, bytes: usize) -> Self {
        self.max_entry_size = bytes;
        self
    }

    /// How long opening a connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// How long Redis may take to answer a command (default 1 s): the longest
    /// an `emit` waits when Redis does not answer.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.response = timeout;
        self
    }

    /// Connects, and creates the consumer group if missing (so entries enqueued
    /// before any worker exists wait for one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidQueue`]; [`Error::InvalidConfig`] for a cap, an entry
    /// size or a timeout of zero; [`Error::Authentication`] if Redis refuses
    /// the credentials; [`Error::Redis`] if it cannot be reached.
    pub async fn connect(self) -> Result<RedisProcessingService, Error> {
        check_queue(&self.queue)?;
        if self.cap == 0 || self.max_entry_size == 0 {
            return Err(Error::InvalidConfig(
                "stream_cap and max_entry_size must be more than zero".to_owned(),
            ));
        }
        self.timeouts.check()?;
        let client = self.client?;
        // Made on pyventus's private runtime, so `emit` from sync code can block
        // on it even on a current-thread runtime.
        let stream = Stream::new(
            connection::manager_on_io_runtime(&client, self.timeouts).await?,
            &self.queue,
        );
        stream.ensure_group().await?;
        Ok(RedisProcessingService {
            inner: Arc::new(Inner {
                stream,
                client,
                blocking: Mutex::new(Vec::new()),
                timeouts: self.timeouts,
                cap: self.cap,
                overflow: self.overflow,
                max_entry_size: self.max_entry_size,
                gauge: Gauge::new(self.cap),
                enqueued: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                warned_at: AtomicU64::new(0),
                started: Instant::now(),
            }),
        })
    }
}

impl RedisProcessingService {
    /// A builder connecting to `url` (`redis://[user:password@]host:port/db`,
    /// `rediss://` for TLS if the `redis` crate's TLS features are enabled).
    pub fn builder(url: &str) -> RedisProcessingServiceBuilder {
        Self::builder_with_client(redis::Client::open(url).map_err(Error::from))
    }

    /// A builder on a client configured elsewhere.
    pub fn builder_for(client: redis::Client) -> RedisProcessingServiceBuilder {
        Self::builder_with_client(Ok(client))
    }

    fn builder_with_client(client: Result<redis::Client, Error>) -> RedisProcessingServiceBuilder {
        RedisProcessingServiceBuilder {
            client,
            queue: "default".to_owned(),
            cap: 1_000_000,
            overflow: Overflow::Reject,
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            timeouts: Timeouts::DEFAULT,
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        self.inner.stream.queue()
    }

    /// The client and timeouts of the connections requests wait on.
    pub(crate) fn reply_client(&self) -> (&redis::Client, Timeouts) {
        (&self.inner.client, self.inner.timeouts)
    }

    /// Deletes a request's reply list (its caller stopped waiting).
    pub(crate) async fn delete_reply(&self, key: &str) {
        if let Err(err) = self.inner.stream.delete(key).await {
            tracing::warn!(target: "pyventus", key, "could not delete a reply list: {err}");
        }
    }

    /// What the service has done so far.
    pub fn stats(&self) -> ServiceStats {
        let inner = &self.inner;
        ServiceStats {
            enqueued: inner.enqueued.load(Ordering::Relaxed),
            rejected: inner.rejected.load(Ordering::Relaxed),
            dropped: inner.dropped.load(Ordering::Relaxed),
        }
    }

    /// Enqueues an envelope, returning its stream entry's id.
    ///
    /// # Errors
    ///
    /// [`Error::EntryTooLarge`], [`Error::QueueFull`], or Redis's.
    pub async fn enqueue(&self, envelope: &Envelope) -> Result<String, Error> {
        let fields = self.fields(envelope)?;
        match self.add(&fields).await {
            // Redis closed the connection (a restart): the manager opens a new
            // one for the next command. A repeat is harmless (same envelope id).
            Err(Error::Redis(err)) if err.is_connection_dropped() => self.add(&fields).await,
            other => other,
        }
    }

    /// [`enqueue`](Self::enqueue) on a blocking connection, on the calling
    /// thread: what `emit` does.
    fn enqueue_blocking(&self, envelope: &Envelope) -> Result<String, Error> {
        let fields = self.fields(envelope)?;
        let idle = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (mut conn, reused) = match idle {
            Some(conn) => (conn, true),
            None => (self.open_blocking()?, false),
        };
        let added = match self.add_blocking(&mut conn, &fields) {
            // Closed while idle (a restart): once more on a new connection. A
            // repeat is harmless (same envelope id).
            Err(Error::Redis(err)) if reused && err.is_connection_dropped() => {
                conn = self.open_blocking()?;
                self.add_blocking(&mut conn, &fields)
            }
            other => other,
        };
        if matches!(added, Ok(_) | Err(Error::QueueFull { .. })) {
            // One that failed may hold a late answer, or none: it goes. So
            // does one over the idle limit, closed outside the lock.
            let surplus = {
                let mut idle = self
                    .inner
                    .blocking
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if idle.len() < MAX_IDLE_BLOCKING {
                    idle.push(conn);
                    None
                } else {
                    Some(conn)
                }
            };
            drop(surplus);
        }
        added
    }

    /// A blocking connection with the service's timeouts.
    fn open_blocking(&self) -> Result<redis::Connection, Error> {
        let timeouts = self.inner.timeouts;
        let conn = self
            .inner
            .client
            .get_connection_with_timeout(timeouts.connect)?;
        conn.set_read_timeout(Some(timeouts.response))?;
        conn.set_write_timeout(Some(timeouts.response))?;
        Ok(conn)
    }

    /// The entry's fields of `envelope`, unless it is too large.
    fn fields(&self, envelope: &Envelope) -> Result<Vec<envelope::Field>, Error> {
        let fields = envelope::to_fields(envelope);
        let size = envelope::size(&fields);
        if size > self.inner.max_entry_size {
            return Err(Error::EntryTooLarge {
                size,
                max: self.inner.max_entry_size,
            });
        }
        Ok(fields)
    }

    async fn add(&self, fields: &[envelope::Field]) -> Result<String, Error> {
        let inner = &self.inner;
        if !inner.gauge.must_check() {
            let id = inner.stream.add(fields).await?;
            return Ok(self.added_unchecked(id));
        }
        let added = inner
            .stream
            .add_checked(fields, inner.cap, inner.overflow)
            .await?;
        self.added(added)
    }

    fn add_blocking(
        &self,
        conn: &mut redis::Connection,
        fields: &[envelope::Field],
    ) -> Result<String, Error> {
        let inner = &self.inner;
        if !inner.gauge.must_check() {
            let id = inner.stream.add_blocking(conn, fields)?;
            return Ok(self.added_unchecked(id));
        }
        let added = inner
            .stream
            .add_checked_blocking(conn, fields, inner.cap, inner.overflow)?;
        self.added(added)
    }

    /// Counts an entry enqueued without a look at the backlog.
    fn added_unchecked(&self, id: String) -> String {
        self.inner.gauge.added();
        self.inner.enqueued.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// Counts what the enqueue script did.
    fn added(&self, added: Added) -> Result<String, Error> {
        let inner = &self.inner;
        match added {
            Added::Enqueued {
                id,
                backlog,
                dropped,
            } => {
                inner.gauge.checked(backlog);
                inner.enqueued.fetch_add(1, Ordering::Relaxed);
                if dropped > 0 {
                    self.dropped(dropped);
                }
                Ok(id)
            }
            Added::Full { backlog } => {
                inner.gauge.checked(backlog);
                inner.rejected.fetch_add(1, Ordering::Relaxed);
                Err(Error::QueueFull {
                    queue: self.queue().to_owned(),
                    backlog,
                    cap: inner.cap,
                })
            }
        }
    }

    /// Counts entries dropped to make room, and says so (once a second at most).
    fn dropped(&self, dropped: u64) {
        let inner = &self.inner;
        let total = inner.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
        let now = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1_000;
        let last = inner.warned_at.load(Ordering::Relaxed);
        if now - last >= 1_000
            && inner
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                target: "pyventus",
                queue = %self.queue(),
                dropped,
                dropped_total = total,
                cap = inner.cap,
                "queue full: dropped the oldest entries no worker had taken (Overflow::DropOldest)"
            );
        }
    }
}

impl ProcessingService for RedisProcessingService {
    fn remote_requests(&self) -> Option<Arc<dyn pyventus_core::remote::RemoteRequests>> {
        Some(Arc::new(self.clone()))
    }

    fn submit(&self, emission: EventEmission) -> Result<(), pyventus_core::Error> {
        // Refuses what a worker could not run before anything is sent.
        #[cfg_attr(not(feature = "opentelemetry"), expect(unused_mut))]
        let mut envelope = Envelope::of(&emission)?;
        // The worker's delivery span continues the emitter's trace.
        #[cfg(feature = "opentelemetry")]
        pyventus_core::remote::trace::inject_current(&mut envelope);
        let enqueue = || self.enqueue_blocking(&envelope);
        match tokio::runtime::Handle::try_current() {
            // A worker thread of the runtime steps out of it: its other tasks
            // go on meanwhile. (A current-thread runtime waits, as it would
            // for any blocking call.)
            Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(enqueue)?;
            }
            _ => {
                enqueue()?;
            }
        }
        // Whoever awaits it (`emit_and_wait`) learns it runs elsewhere. (Had
        // Redis refused it, dropping it would have been the refusal.)
        emission.handed_off();
        Ok(())
    }

    fn submit_async(
        &self,
        emission: EventEmission,
    ) -> BoxFuture<'static, Result<(), pyventus_core::Error>> {
        // Taken at the call: refused here, before anything is sent, if a
        // worker could not run it; and traced in the caller's span.
        #[cfg_attr(not(feature = "opentelemetry"), expect(unused_mut))]
        let mut envelope = match Envelope::of(&emission) {
            Ok(envelope) => envelope,
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        #[cfg(feature = "opentelemetry")]
        pyventus_core::remote::trace::inject_current(&mut envelope);
        let service = self.clone();
        Box::pin(async move {
            match service.enqueue(&envelope).await {
                Ok(_) => {
                    emission.handed_off();
                    Ok(())
                }
                Err(err) => {
                    // Refused: the caller learns it; nothing was lost.
                    emission.discard();
                    Err(err.into())
                }
            }
        })
    }

    fn runs_remotely(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

impl fmt::Debug for RedisProcessingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisProcessingService")
            .field("queue", &self.queue())
            .field("stream_cap", &self.inner.cap)
            .field("when_full", &self.inner.overflow)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
