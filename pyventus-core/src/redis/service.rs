use std::fmt;
use std::sync::Arc;

use redis::aio::ConnectionManager;

use super::{Envelope, check_queue, ensure_group, manager, stream_key};
use crate::{Error, EventEmission, ProcessingService};

/// Enqueues emissions on a Redis stream for [`Worker`](super::Worker) processes
/// to handle: Pyventus's Redis Queue and Celery emitters.
///
/// `emit` returns once Redis has taken the envelope (`XADD`), or with an error
/// if it could not: nothing is dropped silently. It runs no handler locally;
/// the workers run the link-time handlers of the event's name. A closure
/// subscribed at runtime cannot run in a worker, so emitting an event that has
/// one is an error ([`Error::RuntimeSubscriberRemote`]).
///
/// Submitting blocks the calling thread for the round trip when called outside
/// a runtime, and steps out of the async context inside one; from async code,
/// prefer [`enqueue`](Self::enqueue).
///
/// # Examples
///
/// ```no_run
/// use pyventus_core::redis::RedisProcessingService;
/// use pyventus_core::EventEmitter;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_core::Error> {
/// let redis = RedisProcessingService::builder("redis://127.0.0.1:6379")
///     .queue("orders")
///     .stream_cap(1_000_000)
///     .connect()
///     .await?;
/// let emitter = EventEmitter::new(redis);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisProcessingService {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    queue: String,
    stream: String,
    cap: usize,
}

/// Builds a [`RedisProcessingService`].
#[must_use]
pub struct RedisProcessingServiceBuilder {
    client: Result<redis::Client, Error>,
    queue: String,
    cap: usize,
}

impl RedisProcessingServiceBuilder {
    /// The queue's name (default `"default"`): the stream is `pyventus:{<queue>}:stream`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// About how many entries the stream keeps (`XADD ... MAXLEN ~ cap`);
    /// default one million. Entries past it are trimmed, handled or not: size
    /// it above the backlog the workers may face.
    pub fn stream_cap(mut self, cap: usize) -> Self {
        self.cap = cap;
        self
    }

    /// Connects, and creates the consumer group if missing (so entries enqueued
    /// before any worker exists wait for one).
    pub async fn connect(self) -> Result<RedisProcessingService, Error> {
        check_queue(&self.queue)?;
        let client = self.client?;
        let stream = stream_key(&self.queue);
        // Made on pyventus's private runtime, so `emit` from sync code can block
        // on it even on a current-thread runtime.
        let group_stream = stream.clone();
        let conn = crate::runtime::on_private(async move {
            let mut conn = manager(&client).await?;
            ensure_group(&mut conn, &group_stream).await?;
            Ok::<_, Error>(conn)
        })
        .await?;
        Ok(RedisProcessingService {
            inner: Arc::new(Inner {
                conn,
                queue: self.queue,
                stream,
                cap: self.cap,
            }),
        })
    }
}

impl RedisProcessingService {
    /// A builder connecting to `url` (`redis://host:port/db`, `rediss://` for TLS
    /// if the `redis` crate's TLS features are enabled).
    pub fn builder(url: &str) -> RedisProcessingServiceBuilder {
        Self::builder_with_client(redis::Client::open(url).map_err(Error::redis))
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
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// Enqueues an envelope, returning its stream entry's id.
    pub async fn enqueue(&self, envelope: &Envelope) -> Result<String, Error> {
        let mut conn = self.inner.conn.clone();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.inner.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.inner.cap)
            .arg("*");
        for (field, value) in envelope.to_fields() {
            cmd.arg(field).arg(value);
        }
        cmd.query_async(&mut conn).await.map_err(Error::redis)
    }

    /// The envelope of `emission`, refusing what a worker could not run.
    fn envelope_of(emission: &EventEmission) -> Result<Envelope, Error> {
        if emission.has_runtime_subscribers() {
            return Err(Error::RuntimeSubscriberRemote {
                event: emission.event_name().to_owned(),
            });
        }
        Envelope::of(emission)
    }
}

impl ProcessingService for RedisProcessingService {
    fn submit(&self, mut emission: EventEmission) -> Result<(), Error> {
        let envelope = Self::envelope_of(&emission)?;
        // Whoever awaits it (`emit_and_wait`) learns it ran elsewhere.
        emission.release_waiter();
        crate::runtime::block_on(self.enqueue(&envelope)).map(drop)
    }

    fn runs_remotely(&self) -> bool {
        true
    }
}

impl fmt::Debug for RedisProcessingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisProcessingService")
            .field("queue", &self.inner.queue)
            .field("stream_cap", &self.inner.cap)
            .finish_non_exhaustive()
    }
}
