//! `RedisProcessingService`: emissions enqueued on a Redis stream.

use std::fmt;
use std::sync::Arc;

use pyventus_core::remote::Envelope;
use pyventus_core::{EventEmission, ProcessingService};
use redis::aio::ConnectionManager;

use crate::{Error, check_queue, ensure_group, envelope, manager, stream_key};

/// Enqueues emissions on a Redis stream for [`Worker`](super::Worker) processes
/// to handle: Pyventus's Redis Queue and Celery emitters.
///
/// `emit` returns once Redis has taken the envelope (`XADD`), or with an error
/// if it could not: nothing is dropped silently. It runs no handler locally;
/// the workers run the link-time handlers of the event's name. A closure
/// subscribed at runtime cannot run in a worker, so emitting an event that has
/// one is an error ([`pyventus_core::Error::RuntimeSubscriberRemote`]).
///
/// Submitting blocks the calling thread for the round trip when called outside
/// a runtime, and steps out of the async context inside one; from async code,
/// prefer [`enqueue`](Self::enqueue).
///
/// # Examples
///
/// ```no_run
/// use pyventus_redis::RedisProcessingService;
/// use pyventus_core::EventEmitter;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_redis::Error> {
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
        let conn = pyventus_core::runtime::on_io_runtime(async move {
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
        for (field, value) in envelope::to_fields(envelope) {
            cmd.arg(field).arg(value);
        }
        Ok(cmd.query_async(&mut conn).await?)
    }
}

impl ProcessingService for RedisProcessingService {
    fn submit(&self, emission: EventEmission) -> Result<(), pyventus_core::Error> {
        // Refuses what a worker could not run before anything is sent.
        let envelope = Envelope::of(&emission)?;
        pyventus_core::runtime::block_on(self.enqueue(&envelope))?;
        // Whoever awaits it (`emit_and_wait`) learns it runs elsewhere. (Had
        // Redis refused it, dropping it would have been the refusal.)
        emission.handed_off();
        Ok(())
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
