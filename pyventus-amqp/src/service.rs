//! `AmqpProcessingService`: emissions published to a RabbitMQ quorum queue,
//! with publisher confirms.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection};
use pyventus_core::remote::Envelope;
use pyventus_core::{EventEmission, ProcessingService};

use crate::broker::{self, Topology};
use crate::{Error, envelope};

/// Publishes emissions to a RabbitMQ queue for [`Worker`](crate::Worker)
/// processes to handle: Pyventus's Celery emitter.
///
/// Each emission travels as a persistent message on a durable quorum queue,
/// and `emit` returns once the broker has confirmed it (publisher confirms),
/// or with an error if it did not: refused, unroutable, or no answer within
/// the confirm timeout. Nothing is dropped silently. It runs no handler
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
/// one caller reconnects while the others wait for it.
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
    url: String,
    queue: String,
    topology: Topology,
    connect_timeout: Duration,
    confirm_timeout: Duration,
    link: Mutex<Option<Link>>,
    reconnecting: tokio::sync::Mutex<()>,
}

/// A connection and its channel in confirm mode.
#[derive(Clone)]
struct Link {
    /// Kept so that the connection lives as long as the channel is in use; its
    /// address tells one link from the next.
    connection: Arc<Connection>,
    channel: Channel,
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
    /// it rather than hang.
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
        let service = AmqpProcessingService {
            inner: Arc::new(Inner {
                url: self.url,
                queue: self.queue,
                topology,
                connect_timeout: self.connect_timeout,
                confirm_timeout: self.confirm_timeout,
                link: Mutex::new(None),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        };
        service.link().await?;
        Ok(service)
    }
}

impl AmqpProcessingService {
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
    /// # Errors
    ///
    /// [`Error::FieldTooLong`] if its id or event name is longer than 255
    /// bytes (nothing is published); [`Error::Nacked`], [`Error::Unroutable`]
    /// or [`Error::Timeout`] if the broker did not confirm it; [`Error::Amqp`] if the connection failed
    /// (the next publish reconnects).
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), Error> {
        let properties = envelope::properties(envelope)?;
        let link = self.link().await?;
        let published = broker::publish_confirmed(
            &link.channel,
            "",
            &self.inner.topology.queue,
            envelope::body(envelope),
            properties,
            self.inner.confirm_timeout,
        )
        .await;
        if let Err(err) = &published {
            // Whatever went wrong, the next publish starts on a fresh channel
            // (and redeclares the queue if it was deleted).
            tracing::warn!(target: "pyventus", queue = %self.inner.queue, "publish failed: {err}");
            self.forget(&link);
        }
        published
    }

    /// The current channel, connecting first if there is none or it closed.
    async fn link(&self) -> Result<Link, Error> {
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let _one_at_a_time = self.inner.reconnecting.lock().await;
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let (url, topology, timeout) = (
            self.inner.url.clone(),
            self.inner.topology.clone(),
            self.inner.connect_timeout,
        );
        // Made on pyventus's own runtime, so that a synchronous `emit` can block
        // on it from any runtime, a current-thread one included.
        let link = pyventus_core::runtime::on_io_runtime(async move {
            let connection = broker::connect(
                &url,
                &format!("emitter {}", broker::process_name()),
                timeout,
            )
            .await?;
            if !topology.exists(&connection).await? {
                topology.declare(&connection).await?;
            }
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, Error>(Link {
                connection: Arc::new(connection),
                channel,
            })
        })
        .await?;
        *self.slot() = Some(link.clone());
        Ok(link)
    }

    fn current(&self) -> Option<Link> {
        self.slot()
            .as_ref()
            .filter(|link| link.channel.status().connected())
            .cloned()
    }

    /// Drops `link` if it is still the current one.
    fn forget(&self, link: &Link) {
        let mut slot = self.slot();
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(&current.connection, &link.connection))
        {
            *slot = None;
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Link>> {
        self.inner
            .link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

    fn runs_remotely(&self) -> bool {
        true
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
