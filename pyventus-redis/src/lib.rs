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
//!   consumer group `pyventus`. Redis 7.0 or newer.
//! - Delivery is at least once: an entry is acknowledged only after its handlers
//!   ran without failing; a failure leaves it pending for a retry after a
//!   backoff; after `max_deliveries` it moves to the dead letters, with its
//!   reason. Handlers must tolerate a repeat: the envelope id
//!   ([`current_delivery`]) lets them deduplicate.
//! - The queue is bounded ([`Overflow`]), entries are size-capped, workers
//!   reconnect after an outage and report their [`Health`].
//!
//! See `docs/redis.md` for the walk-through, and its "Operating workers"
//! section for restarts, timeouts, backoff and health signals.

mod backlog;
mod connection;
mod dead_letter;
mod dead_letters;
mod delivery;
mod entry;
mod envelope;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod reply;
mod service;
mod stream;
mod worker;

use std::borrow::Cow;

pub use backlog::Overflow;
pub use dead_letter::DeadLetter;
pub use dead_letters::DeadLetters;
pub use delivery::{Delivery, current_delivery};
pub use error::Error;
pub use pyventus_core::remote::{Backoff, InvalidBackoff};
pub use pyventus_core::remote::{ENVELOPE_VERSION, Envelope};
pub use service::{RedisProcessingService, RedisProcessingServiceBuilder, ServiceStats};
pub use worker::{Health, Worker, WorkerBuilder, WorkerStats};

/// The consumer group every worker of a queue joins.
pub const GROUP: &str = "pyventus";

/// The largest entry sent or run by default, in bytes: 1 MiB.
pub const DEFAULT_MAX_ENTRY_SIZE: usize = 1024 * 1024;

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

/// `text` cut to at most about `max` bytes (on a character boundary), saying
/// how long it was: what logs and letters keep of texts that may be huge (a
/// handler's error quoting a payload).
pub(crate) fn truncated(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes in all)", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    use super::truncated;

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("ééé", 3), "é… (6 bytes in all)");
    }
}
