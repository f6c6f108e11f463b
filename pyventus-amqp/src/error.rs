//! The RabbitMQ backend's error type.

use std::time::Duration;

use pyventus_core::remote::Envelope;

/// What can go wrong setting up or running the RabbitMQ backend.
///
/// `emit` through an [`AmqpProcessingService`](crate::AmqpProcessingService)
/// returns pyventus's own [`pyventus_core::Error`]; when RabbitMQ is the cause,
/// it is [`pyventus_core::Error::Processor`] with this error as its source.
///
/// # Examples
///
/// ```
/// use pyventus_amqp::{AmqpProcessingService, Error};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = AmqpProcessingService::builder("amqp://127.0.0.1:5672/%2f")
///     .queue("")
///     .connect()
///     .await
///     .unwrap_err();
/// assert!(matches!(err, Error::InvalidQueue(_)));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A queue name that cannot name a RabbitMQ queue.
    #[error(
        "invalid queue name `{0}`: use a non-empty name of at most 200 bytes, without control characters"
    )]
    InvalidQueue(String),

    /// A setting that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// RabbitMQ refused an operation or could not be reached.
    #[error("rabbitmq: {0}")]
    Amqp(#[from] lapin::Error),

    /// The queue exists with other arguments than this process declares (a
    /// different `max_deliveries`, or a queue that is not a quorum queue).
    #[error(
        "queue `{queue}` exists with other arguments: give every worker and emitter of a queue the same `max_deliveries` (its `x-delivery-limit`), or delete the queue so that it is declared anew"
    )]
    TopologyMismatch {
        /// The RabbitMQ queue.
        queue: String,
        /// The broker's refusal.
        #[source]
        source: lapin::Error,
    },

    /// An envelope whose id or event name does not fit the AMQP property that
    /// carries it (a short string: at most 255 bytes). Nothing was published.
    #[error(
        "the {field} `{}` is {} bytes long, more than the 255 bytes of the AMQP short string that carries it: nothing was published; {}",
        abbreviated(value),
        value.len(),
        if *field == "event name" {
            "give the event a shorter name (`#[event(name = \"...\")]`)"
        } else {
            "use a shorter id"
        }
    )]
    FieldTooLong {
        /// Which: `"event name"` or `"envelope id"`.
        field: &'static str,
        /// The value, whole.
        value: String,
    },

    /// The broker refused a message it was sent (a negative publisher confirm).
    #[error("the broker refused a message for queue `{queue}` (nack): it was not stored")]
    Nacked {
        /// The RabbitMQ queue.
        queue: String,
    },

    /// The broker did not say whether it stored a message: no confirm within
    /// the confirm timeout (a memory or disk alarm blocks publishers), or the
    /// connection was lost while waiting for it. It may have been stored, and
    /// will then be delivered. Retry by publishing this same envelope again
    /// ([`AmqpProcessingService::publish`](crate::AmqpProcessingService::publish)),
    /// never by emitting the event anew: a new emission is a new envelope id,
    /// which handlers deduplicating by envelope id cannot tell from another
    /// event.
    #[error(
        "the broker did not confirm a message for queue `{queue}` ({cause}): it may still have been stored, and then it will be delivered; to retry, publish the same envelope (id {}) again with `AmqpProcessingService::publish`, not a new emission, so that deduplicating by envelope id catches a repeat",
        envelope.id
    )]
    Unconfirmed {
        /// The RabbitMQ queue.
        queue: String,
        /// The envelope published: what to publish again.
        envelope: Box<Envelope>,
        /// Why no confirm came: [`Error::Timeout`] or [`Error::Amqp`].
        #[source]
        cause: Box<Error>,
    },

    /// No queue took a message (it was returned as unroutable).
    #[error(
        "no queue took a message for `{queue}` ({reply}): the queue was deleted; connect a worker or a processing service to declare it again"
    )]
    Unroutable {
        /// The RabbitMQ queue.
        queue: String,
        /// The broker's reply text.
        reply: String,
    },

    /// The broker cancelled the worker's consumer (its queue was deleted).
    #[error("the broker cancelled the consumer of queue `{queue}` (was it deleted?)")]
    ConsumerCancelled {
        /// The RabbitMQ queue.
        queue: String,
    },

    /// An operation took longer than allowed.
    #[error("timed out after {after:?} {what}")]
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The limit.
        after: Duration,
    },

    /// A worker could not reach RabbitMQ for longer than its give-up time.
    #[error("gave up after {down_for:?} without a working connection to RabbitMQ: {source}")]
    GaveUp {
        /// How long it had tried.
        down_for: Duration,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },

    /// pyventus refused something (the global linker cannot be built, ...).
    #[error(transparent)]
    Pyventus(#[from] pyventus_core::Error),
}

impl Error {
    /// The envelope of a message the broker did not confirm
    /// ([`Error::Unconfirmed`]), from the error `emit` returned (or one of this
    /// crate's errors inside it): what to publish again, with its id, to retry.
    /// `None` for any other error: then nothing was stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_amqp::{Envelope, Error};
    ///
    /// let envelope = Envelope::new("OrderPlaced", "{}");
    /// let unconfirmed = Error::Unconfirmed {
    ///     queue: "pyventus.orders".to_owned(),
    ///     envelope: Box::new(envelope.clone()),
    ///     cause: Box::new(Error::Timeout { what: "waiting for a confirm", after: Default::default() }),
    /// };
    /// // What `emit` returns: pyventus's error, with this one as its source.
    /// let from_emit: pyventus_core::Error = unconfirmed.into();
    /// assert_eq!(Error::unconfirmed_envelope(&from_emit), Some(&envelope));
    /// assert_eq!(Error::unconfirmed_envelope(&pyventus_core::Error::ProcessorClosed), None);
    /// ```
    pub fn unconfirmed_envelope<'a>(
        err: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a Envelope> {
        let mut current = Some(err);
        while let Some(err) = current {
            if let Some(Error::Unconfirmed { envelope, .. }) = err.downcast_ref::<Error>() {
                return Some(envelope);
            }
            current = err.source();
        }
        None
    }
}

/// The first 40 characters of a long value, for an error message.
fn abbreviated(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_owned(),
    }
}

impl From<Error> for pyventus_core::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Pyventus(err) => err,
            other => pyventus_core::Error::processor("amqp", other),
        }
    }
}
