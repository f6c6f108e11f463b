//! Distributed processing on RabbitMQ: emissions published by
//! [`AmqpProcessingService`], handled by [`Worker`] processes built from the
//! same crates (Pyventus's Celery emitter, on Celery's usual broker).
//!
//! A worker knows every link-time handler by its event's name, so an emission
//! crosses the network as an [`Envelope`]: the event's name and its JSON
//! payload, the same envelope the Redis backend carries. Events that cross a
//! process derive `Serialize` and `Deserialize` beside `Event`.
//!
//! - Topology, per queue `<q>`: a durable quorum queue `pyventus.<q>` with a
//!   delivery limit and a dead-letter exchange `pyventus.<q>.dlx` (fanout) bound
//!   to the quorum queue `pyventus.<q>.dead`. Messages are persistent and
//!   published with confirms: `emit` returns once the broker has them.
//! - Delivery is at least once (Celery's `acks_late`): a message is acknowledged
//!   only after its handlers ran without failing. A failure returns it to the
//!   queue (`nack` with requeue) for another delivery; the broker counts the
//!   deliveries. After `max_deliveries` the worker moves it to the dead letters
//!   with its reason; a message whose worker died on every delivery is
//!   dead-lettered by the broker itself (`x-delivery-limit`). Handlers must
//!   tolerate a repeat: the envelope id ([`current_delivery`]) lets them
//!   deduplicate.
//! - An `emit` the broker did not confirm ([`Error::Unconfirmed`]: the confirm
//!   timeout passed under a broker alarm, or the connection was lost) may still
//!   have been stored: retry it by publishing the same envelope
//!   ([`Error::unconfirmed_envelope`], [`AmqpProcessingService::publish`]),
//!   never by emitting anew, so that its envelope id stays one.
//! - Publishing and consuming never share a connection: a broker alarm blocks
//!   the publishing ones only, so workers keep acknowledging through it.
//!
//! This crate is written against `pyventus-core`'s public API alone, as any
//! third-party backend could be. See `docs/amqp.md` for the walk-through.

mod broker;
mod dead_letter;
mod dead_letters;
mod envelope;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod publisher;
mod reply;
mod service;
mod worker;

pub use dead_letter::DeadLetter;
pub use dead_letters::DeadLetters;
pub use error::Error;
pub use pyventus_core::remote::{ENVELOPE_VERSION, Envelope, EnvelopeError};
pub use service::{AmqpProcessingService, AmqpProcessingServiceBuilder};
pub use worker::{Health, Worker, WorkerBuilder, WorkerStats};

/// The RabbitMQ URL in `PYVENTUS_AMQP_URL`, or the local default
/// (`amqp://guest:guest@127.0.0.1:5672/%2f`, the default virtual host).
///
/// # Examples
///
/// ```
/// let url = pyventus_amqp::url_from_env();
/// assert!(url.starts_with("amqp"));
/// ```
pub fn url_from_env() -> String {
    std::env::var("PYVENTUS_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// What a worker is delivering, for the handlers that want to know: the
/// envelope id is the same on every redelivery, so a handler can deduplicate.
///
/// # Examples
///
/// ```
/// use pyventus_amqp::{Delivery, current_delivery};
///
/// /// Inside a handler a worker runs: skip an envelope already handled.
/// fn already_done(done: &std::collections::HashSet<String>) -> bool {
///     current_delivery().is_some_and(|d: Delivery| done.contains(&d.envelope_id))
/// }
/// assert!(!already_done(&Default::default()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The envelope's id (the message's `message_id`): the same across
    /// redeliveries, for deduplication.
    pub envelope_id: String,
    /// The delivery's tag on the worker's channel.
    pub delivery_tag: u64,
    /// How many times the message has been delivered, this time included
    /// (the broker's `x-delivery-count`, plus one).
    pub attempt: u64,
}

/// The delivery the calling handler runs in, when a [`Worker`] runs it:
/// asynchronous, synchronous and `blocking` handlers alike.
///
/// # Examples
///
/// ```
/// // Outside a worker there is none.
/// assert!(pyventus_amqp::current_delivery().is_none());
/// ```
pub fn current_delivery() -> Option<Delivery> {
    pyventus_core::remote::attached()
}

/// A handler takes its delivery as a parameter after its event, as it takes
/// a [`State`](pyventus_core::State): `fn charge(e: &OrderPlaced, delivery:
/// Delivery)`. Outside a RabbitMQ worker (an in-process emitter, say) the
/// delivery fails with an error that says so, before the handler runs; a
/// handler that runs in both places reads [`current_delivery`] instead.
///
/// # Examples
///
/// ```
/// use pyventus_core::FromDelivery;
/// use pyventus_amqp::Delivery;
///
/// fn assert_extractor<T: FromDelivery>() {}
/// assert_extractor::<Delivery>();
/// ```
impl pyventus_core::FromDelivery for Delivery {
    fn from_delivery(
        _: &pyventus_core::DeliveryContext<'_>,
    ) -> Result<Self, pyventus_core::anyhow::Error> {
        pyventus_core::remote::attached_in_worker("pyventus::amqp::Delivery", "RabbitMQ")
    }
}
