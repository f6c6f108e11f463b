//! The Redis backend's error type.

use std::time::Duration;

/// What can go wrong setting up or running the Redis backend.
///
/// `emit` through a [`RedisProcessingService`](crate::RedisProcessingService)
/// returns pyventus's own [`pyventus_core::Error`]; when the cause is here, it
/// is [`pyventus_core::Error::Processor`] with this error as its source, which
/// [`Error::of`] finds again.
///
/// # Examples
///
/// ```
/// use pyventus_redis::{Error, RedisProcessingService};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = RedisProcessingService::builder("redis://127.0.0.1:6379")
///     .queue("{bad}")
///     .connect()
///     .await
///     .unwrap_err();
/// assert!(matches!(err, Error::InvalidQueue(_)));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A queue name that cannot name a stream.
    #[error("invalid queue name `{0}`: use a non-empty name without braces")]
    InvalidQueue(String),

    /// A setting that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// Redis refused the credentials (or the user may not run a command the
    /// backend needs): retrying cannot help, so nothing retries it.
    #[error(
        "Redis refused the credentials or the command: check the user and password in the URL and the user's ACL"
    )]
    Authentication(#[source] redis::RedisError),

    /// Redis refused a command or could not be reached.
    #[error("redis: {0}")]
    Redis(#[source] redis::RedisError),

    /// The queue holds `cap` entries that no worker has taken yet: the emission
    /// was refused, not enqueued. Retry later, add workers, or raise the cap
    /// ([`stream_cap`](crate::RedisProcessingServiceBuilder::stream_cap)).
    #[error(
        "queue `{queue}` is full: {backlog} entries wait for a worker (cap {cap}); retry later, add workers or raise the cap"
    )]
    QueueFull {
        /// The queue.
        queue: String,
        /// How many entries wait for a worker.
        backlog: u64,
        /// The cap they reached.
        cap: u64,
    },

    /// An entry larger than the configured maximum, refused before it was sent.
    #[error(
        "an entry of {size} bytes exceeds the maximum of {max} bytes (max_entry_size): send a reference to the data instead"
    )]
    EntryTooLarge {
        /// The entry's size: its fields' names and values, in bytes.
        size: usize,
        /// The maximum.
        max: usize,
    },

    /// A worker could not reach Redis for longer than its
    /// [`give_up_after`](crate::WorkerBuilder::give_up_after): `run` returned,
    /// so that whatever supervises the process can act.
    #[error("Redis has been unreachable for {:.1} s; the worker gave up", .after.as_secs_f64())]
    GaveUp {
        /// How long Redis had been unreachable.
        after: Duration,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },

    /// A dead letter without entry fields (Redis returned its entry without
    /// them): there is nothing to replay; remove it instead.
    #[error("dead letter {0} holds no entry to replay; remove it instead")]
    NothingToReplay(String),

    /// [`Worker::run`](crate::Worker::run) was called while the worker was
    /// already running.
    #[error("this worker is already running; build another worker to run a second loop")]
    AlreadyRunning,

    /// Redis answered a command with a reply of a shape this crate does not
    /// read (a Redis older than 7.0, or a proxy in between).
    #[error("unexpected reply to `{command}` from Redis (pyventus needs Redis 7.0 or newer)")]
    UnexpectedReply {
        /// The command.
        command: &'static str,
    },

    /// pyventus refused something (the global linker cannot be built, ...).
    #[error(transparent)]
    Pyventus(#[from] pyventus_core::Error),
}

impl Error {
    /// The Redis backend's error behind an error `emit` returned, if that is
    /// where it came from.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_redis::Error;
    ///
    /// let full = Error::QueueFull { queue: "orders".into(), backlog: 10, cap: 10 };
    /// let from_emit: pyventus_core::Error = full.into();
    /// assert!(matches!(Error::of(&from_emit), Some(Error::QueueFull { .. })));
    /// ```
    pub fn of(err: &pyventus_core::Error) -> Option<&Error> {
        match err {
            pyventus_core::Error::Processor { source, .. } => {
                let source: &(dyn std::error::Error + 'static) = &**source;
                source.downcast_ref::<Error>()
            }
            _ => None,
        }
    }

    /// Whether retrying can help: Redis was unreachable, slow or restarting,
    /// as opposed to a refusal (credentials, configuration, a full queue).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Redis(err) => crate::connection::is_transient(err),
            Error::GaveUp { .. } | Error::QueueFull { .. } => true,
            _ => false,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        if crate::connection::is_refusal(&err) {
            Error::Authentication(err)
        } else {
            Error::Redis(err)
        }
    }
}

impl From<Error> for pyventus_core::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Pyventus(err) => err,
            other => pyventus_core::Error::processor("redis", other),
        }
    }
}
