//! `AmqpProcessingService`: emissions published to a RabbitMQ quorum queue,
//! with publisher confirms.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use pyventus_core::remote::Envelope;
use pyventus_core::{EventEmission, ProcessingService};

use crate::broker::{self, Topology};
use crate::publisher::{Declare, Publisher};
use crate::{Error, envelope};

/// Publishes emissions to a RabbitMQ queue for [`Worker`](crate::Worker)
/// processes to handle: Pyventus's Celery emitter.
///
/// Each emission travels as a persistent message on a durable quorum queue,
/// and `emit` returns once the broker has confirmed it (publisher confirms),
/// or with an error if it did not: refused, unroutable, or no answer within
/// the confirm timeout. Nothing is dropped silently. Without an answer the
/// message may still have been stored, and will then be delivered: the error
/// ([`Error::Unconfirmed`], see [`Error::unconfirmed_envelope`]) carries the
/// envelope, to publish again with its id rather than emit anew. It runs no handler
/// locally; the workers run the link-time handlers of the event's name. A
/// closure subscribed at runtime cannot run in a worker, so emitting an event
/// that has one is an error ([`pyventus_core::Error::RuntimeSubscriberRemote`]).
///
/// The service declares the queue if it does not exist yet (so messages
/// published before any worker started wait for one), and reconnects by itself
/// on the next `emit` after the broker closed its connection.
///
/// Submitting blocks the calling thread for the round trip when called outside
/// a runtime, and steps out of the async context inside one; from async code,
/// prefer [`publish`](Self::publish), which lets many messages be in flight.
///
/// # Concurrency
///
/// A clone shares one connection and one channel in confirm mode; publishes
/// from many tasks are pipelined on it. A mutex guards only the handle to the
/// current channel (never held across I/O); reconnecting is serialized so that
/// one caller reconnects while the others wait for it. The connection only
/// publishes: a broker alarm that blocks it blocks no consumer.
///
/// # Examples
///
/// ```no_run
/// use pyventus_amqp::AmqpProcessingService;
/// use pyventus_core::EventEmitter;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_amqp::Error> {
/// let rabbit = AmqpProcessingService::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .queue("orders")
///     .connect()
///     .await?;
/// let emitter = EventEmitter::new(rabbit);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AmqpProcessingService {
    inner: Arc<Inner>,
}

struct Inner {
    queue: String,
    topology: Topology,
    confirm_timeout: Duration,
    publisher: Publisher,
    /// Requests' own connection, consuming their answers (direct reply-to).
    requests: crate::reply::Requests,
}

/// Builds an [`AmqpProcessingService`].
#[must_use]
pub struct AmqpProcessingServiceBuilder {
    url: String,
    queue: String,
    max_deliveries: u64,
    connect_timeout: Duration,
    confirm_timeout: Duration,
}

impl AmqpProcessingServiceBuilder {
    /// The queue's name (default `"default"`): the RabbitMQ queue is
    /// `pyventus.<queue>`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The deliveries a message gets before it is dead-lettered (default 5),
    /// used only if this service declares the queue: it must be the workers'
    /// [`max_deliveries`](crate::WorkerBuilder::max_deliveries), since the
    /// broker keeps it as the queue's `x-delivery-limit`.
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = n;
        self
    }

    /// How long connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long `emit` waits for the broker's confirm (default 10 s); a broker
    /// that blocks publishers (a memory or disk alarm) makes `emit` fail after
    /// it rather than hang, with [`Error::Unconfirmed`]: the message may still
    /// have been stored, so retry with its envelope (see
    /// [`publish_blocking`](AmqpProcessingService::publish_blocking)).
    pub fn confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// Connects, and declares the queue and its dead letters if the queue does
    /// not exist.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidQueue`], [`Error::InvalidConfig`] for a
    /// `max_deliveries` of 0 or a zero timeout; [`Error::Amqp`] or
    /// [`Error::Timeout`] if RabbitMQ cannot be reached.
    pub async fn connect(self) -> Result<AmqpProcessingService, Error> {
        if self.max_deliveries == 0 {
            return Err(Error::InvalidConfig(
                "max_deliveries must be at least 1 (1: no retry)".to_owned(),
            ));
        }
        if self.connect_timeout.is_zero() || self.confirm_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "the connect and confirm timeouts must be more than zero".to_owned(),
            ));
        }
        let topology = Topology::new(&self.queue, self.max_deliveries)?;
        let publisher = Publisher::new(
            &self.url,
            format!("emitter {}", broker::process_name()),
            topology.clone(),
            Declare::QueueIfMissing,
            self.connect_timeout,
        );
        publisher.link().await?;
        Ok(AmqpProcessingService {
            inner: Arc::new(Inner {
                queue: self.queue,
                topology,
                confirm_timeout: self.confirm_timeout,
                publisher,
                requests: crate::reply::Requests::new(&self.url, self.connect_timeout),
            }),
        })
    }
}

impl AmqpProcessingService {
    /// Its requests, and the RabbitMQ queue they go to.
    pub(crate) fn requests(&self) -> (&crate::reply::Requests, &str) {
        (&self.inner.requests, &self.inner.topology.queue)
    }

    /// A builder connecting to `url` (`amqp://user:password@host:port/vhost`,
    /// the default virtual host being `%2f`; `amqps://` with the `tls` feature).
    pub fn builder(url: &str) -> AmqpProcessingServiceBuilder {
        AmqpProcessingServiceBuilder {
            url: url.to_owned(),
            queue: "default".to_owned(),
            max_deliveries: 5,
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(10),
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// Publishes an envelope and waits for the broker's confirm. Many publishes
    /// may be in flight at once (they are pipelined on one channel).
    ///
    /// Publishing an envelope again publishes the same message, with the same
    /// envelope id: how to retry a publish (or an `emit`) that failed with
    /// [`Error::Unconfirmed`], so that handlers deduplicating by envelope id
    /// ([`current_delivery`](crate::current_delivery)) see one id however many
    /// copies were stored.
    ///
    /// # Errors
    ///
    /// [`Error::FieldTooLong`] if its id or event name is longer than 255
    /// bytes; [`Error::Nacked`] or [`Error::Unroutable`] if the broker refused
    /// or returned it; [`Error::Amqp`] or [`Error::Timeout`] if it could not be
    /// sent: in those cases it was not stored. [`Error::Unconfirmed`] if it was
    /// sent but not confirmed (the confirm timeout passed, or the connection
    /// was lost while waiting): it may have been stored. After a failure the
    /// next publish starts on a fresh connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use pyventus_amqp::{AmqpProcessingService, Envelope, Error};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// let rabbit = AmqpProcessingService::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .queue("orders")
    ///     .connect()
    ///     .await?;
    /// let envelope = Envelope::new("OrderPlaced", r#"{"order_id":1}"#);
    /// let mut attempts = 0;
    /// loop {
    ///     match rabbit.publish(&envelope).await {
    ///         // Not confirmed, maybe stored: the same envelope again, never a new one.
    ///         Err(Error::Unconfirmed { .. }) if attempts < 3 => attempts += 1,
    ///         other => break other?,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), Error> {
        let properties = envelope::properties(envelope)?;
        let inner = &self.inner;
        let link = inner.publisher.link().await?;
        let published = async {
            let sent = broker::send(
                &link.channel,
                "",
                &inner.topology.queue,
                envelope::body(envelope),
                properties,
            );
            // Sending can wait too: on a connection the broker blocked.
            let confirm = match tokio::time::timeout(inner.confirm_timeout, sent).await {
                Ok(sent) => sent?,
                Err(_) => return Err(self.unconfirmed(envelope, self.timed_out())),
            };
            match tokio::time::timeout(inner.confirm_timeout, confirm).await {
                Ok(Ok(confirmation)) => broker::confirmed(&inner.topology.queue, confirmation),
                Ok(Err(lost)) => Err(self.unconfirmed(envelope, lost.into())),
                Err(_) => Err(self.unconfirmed(envelope, self.timed_out())),
            }
        }
        .await;
        if let Err(err) = &published {
            // Whatever went wrong, the next publish starts on a fresh channel
            // (and redeclares the queue if it was deleted).
            tracing::warn!(target: "pyventus", queue = %inner.queue, "publish failed: {err}");
            inner.publisher.forget(&link);
        }
        published
    }

    /// [`publish`](Self::publish), from synchronous code: blocks the calling
    /// thread until the broker confirmed the envelope (stepping out of the
    /// async context inside a runtime, as `emit` does).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// Retrying an `emit` the broker did not confirm, with the same envelope:
    ///
    /// ```
    /// use pyventus_amqp::{AmqpProcessingService, Error};
    ///
    /// /// After `emitter.emit(...)` returned `err`.
    /// fn retry(rabbit: &AmqpProcessingService, err: pyventus_core::Error) -> Result<(), pyventus_core::Error> {
    ///     match Error::unconfirmed_envelope(&err) {
    ///         Some(envelope) => Ok(rabbit.publish_blocking(envelope)?), // same id: deduplicated
    ///         None => Err(err), // not stored: emit again, or give up
    ///     }
    /// }
    /// ```
    pub fn publish_blocking(&self, envelope: &Envelope) -> Result<(), Error> {
        pyventus_core::runtime::block_on(self.publish(envelope))
    }

    fn timed_out(&self) -> Error {
        Error::Timeout {
            what: "waiting for the broker to confirm a message",
            after: self.inner.confirm_timeout,
        }
    }

    fn unconfirmed(&self, envelope: &Envelope, cause: Error) -> Error {
        Error::Unconfirmed {
            queue: self.inner.queue.clone(),
            envelope: Box::new(envelope.clone()),
            cause: Box::new(cause),
        }
    }
}

impl ProcessingService for AmqpProcessingService {
    fn submit(&self, emission: EventEmission) -> Result<(), pyventus_core::Error> {
        // Refuses what a worker could not run before anything is sent.
        #[cfg_attr(not(feature = "opentelemetry"), expect(unused_mut))]
        let mut envelope = Envelope::of(&emission)?;
        // The worker's delivery span continues the emitter's trace.
        #[cfg(feature = "opentelemetry")]
        pyventus_core::remote::trace::inject_current(&mut envelope);
        pyventus_core::runtime::block_on(self.publish(&envelope))?;
        // Whoever awaits it (`emit_and_wait`) learns it runs elsewhere. (Had the
        // broker refused it, dropping it would have been the refusal.)
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
            match service.publish(&envelope).await {
                Ok(()) => {
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

    fn remote_requests(&self) -> Option<Arc<dyn pyventus_core::remote::RemoteRequests>> {
        Some(Arc::new(self.clone()))
    }

    fn name(&self) -> &'static str {
        "amqp"
    }
}

impl fmt::Debug for AmqpProcessingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpProcessingService")
            .field("queue", &self.inner.queue)
            .field("confirm_timeout", &self.inner.confirm_timeout)
            .finish_non_exhaustive()
    }
}
