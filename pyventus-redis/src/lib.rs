//! Distributed processing on Redis Streams: emissions enqueued by
//! [`RedisProcessingService`], handled by [`Worker`] processes built from the
//! same crates (Pyventus's Redis Queue and Celery emitters).
//!
//! A worker knows every link-time handler by its event's name, so an emission
//! crosses the network as an envelope (see [`Envelope`]): the event's name and
//! its JSON payload. Events that cross a process derive `Serialize` and
//! `Deserialize` beside `Event`.
//!
//! - Keys: the stream `pyventus:{<queue>}:stream`, the dead letters
//!   `pyventus:{<queue>}:dead` (the hash tag keeps both on one Cluster slot);
//!   consumer group `pyventus`.
//! - Delivery is at least once: an entry is acknowledged only after its handlers
//!   ran without failing; a failure leaves it pending for a retry once the
//!   visibility timeout has passed; after `max_deliveries` it moves to the dead
//!   letters, with its reason. Handlers must tolerate a repeat: the envelope id
//!   ([`current_delivery`]) lets them deduplicate.
//!
//! See `docs/redis.md` for the walk-through.

mod dead;
mod envelope;
mod error;
mod service;
mod worker;

pub use dead::{DeadLetter, DeadLetters};
pub use error::Error;
pub use pyventus_core::remote::{ENVELOPE_VERSION, Envelope};
pub use service::{RedisProcessingService, RedisProcessingServiceBuilder};
pub use worker::{Worker, WorkerBuilder, WorkerStats};

/// The consumer group every worker of a queue joins.
pub const GROUP: &str = "pyventus";

/// The Redis URL in `PYVENTUS_REDIS_URL`, or the local default.
///
/// # Examples
///
/// ```
/// let url = pyventus_redis::url_from_env();
/// assert!(url.starts_with("redis"));
/// ```
pub fn url_from_env() -> String {
    std::env::var("PYVENTUS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The stream of a queue.
pub(crate) fn stream_key(queue: &str) -> String {
    format!("pyventus:{{{queue}}}:stream")
}

/// The dead-letter stream of a queue.
pub(crate) fn dead_key(queue: &str) -> String {
    format!("pyventus:{{{queue}}}:dead")
}

/// Checks a queue name: non-empty, and no braces (they would break the hash tag).
pub(crate) fn check_queue(queue: &str) -> Result<(), Error> {
    if queue.is_empty() || queue.contains(['{', '}']) {
        return Err(Error::InvalidQueue(queue.to_owned()));
    }
    Ok(())
}

/// What a worker is delivering, for the handlers that want to know: the
/// envelope id is the same on every redelivery, so a handler can deduplicate.
///
/// # Examples
///
/// ```
/// use pyventus_redis::{Delivery, current_delivery};
///
/// /// Inside a handler a worker runs: skip an envelope already handled.
/// fn already_done(done: &std::collections::HashSet<String>) -> bool {
///     current_delivery().is_some_and(|d: Delivery| done.contains(&d.envelope_id))
/// }
/// assert!(!already_done(&Default::default()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The envelope's id: the same across redeliveries, for deduplication.
    pub envelope_id: String,
    /// The stream entry's id.
    pub entry_id: String,
    /// How many times the entry has been delivered, this time included.
    pub attempt: u64,
}

/// The delivery the calling handler runs in, when a [`Worker`] runs it:
/// asynchronous, synchronous and `blocking` handlers alike.
///
/// # Examples
///
/// ```
/// // Outside a worker there is none.
/// assert!(pyventus_redis::current_delivery().is_none());
/// ```
pub fn current_delivery() -> Option<Delivery> {
    pyventus_core::current_emission()?
        .context::<Delivery>()
        .map(|delivery| (*delivery).clone())
}

/// Connects the ordinary way (a `ConnectionManager`, which reconnects), with the
/// error a user can act on.
pub(crate) async fn manager(
    client: &redis::Client,
) -> Result<redis::aio::ConnectionManager, Error> {
    Ok(redis::aio::ConnectionManager::new(client.clone()).await?)
}

/// Creates the consumer group of a stream if it is missing, at the stream's
/// start, so entries enqueued before any worker existed are delivered.
pub(crate) async fn ensure_group(
    conn: &mut redis::aio::ConnectionManager,
    stream: &str,
) -> Result<(), Error> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}
