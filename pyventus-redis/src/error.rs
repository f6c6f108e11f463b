//! The Redis backend's error type.

/// What can go wrong setting up or running the Redis backend.
///
/// `emit` through a [`RedisProcessingService`](crate::RedisProcessingService)
/// returns pyventus's own [`pyventus_core::Error`]; when Redis is the cause, it
/// is [`pyventus_core::Error::Processor`] with this error as its source.
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

    /// Redis refused a command or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),

    /// pyventus refused something (the global linker cannot be built, ...).
    #[error(transparent)]
    Pyventus(#[from] pyventus_core::Error),
}

impl From<Error> for pyventus_core::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Pyventus(err) => err,
            other => pyventus_core::Error::processor("redis", other),
        }
    }
}
