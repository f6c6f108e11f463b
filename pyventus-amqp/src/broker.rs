//! The broker's side, in one typed adapter: a queue's topology (its quorum
//! queue, dead-letter exchange and dead-letter queue), declared the same way by
//! the service, the workers and the dead letters; connecting; and publishing
//! with confirms.

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind,
    ExchangeKind, PublisherConfirm,
};

use crate::Error;

/// The longest queue name accepted: RabbitMQ names are at most 255 bytes, and
/// the dead-letter names add a prefix and a suffix.
const MAX_QUEUE: usize = 200;

/// The names of a queue's broker objects, and the arguments its quorum queue
/// is declared with.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    /// The quorum queue emissions are published to: `pyventus.<queue>`.
    pub(crate) queue: String,
    /// The dead-letter exchange (fanout): `pyventus.<queue>.dlx`.
    pub(crate) dlx: String,
    /// The dead-letter queue, bound to the exchange: `pyventus.<queue>.dead`.
    pub(crate) dead: String,
    /// Deliveries a message gets; the broker's `x-delivery-limit` is one less
    /// (it counts returns, and dead-letters at the first return past it).
    max_deliveries: u64,
}

impl Topology {
    /// The topology of `queue`, or why the name cannot be one.
    pub(crate) fn new(queue: &str, max_deliveries: u64) -> Result<Self, Error> {
        if queue.is_empty() || queue.len() > MAX_QUEUE || queue.chars().any(char::is_control) {
            return Err(Error::InvalidQueue(queue.to_owned()));
        }
        Ok(Topology {
            queue: format!("pyventus.{queue}"),
            dlx: format!("pyventus.{queue}.dlx"),
            dead: format!("pyventus.{queue}.dead"),
            max_deliveries,
        })
    }

    /// Declares everything, on a channel of its own (a refused declaration
    /// closes its channel): the dead-letter exchange and queue, then the queue.
    ///
    /// # Errors
    ///
    /// [`Error::TopologyMismatch`] if the queue exists with other arguments.
    pub(crate) async fn declare(&self, connection: &Connection) -> Result<(), Error> {
        let channel = connection.create_channel().await?;
        self.declare_dead(&channel).await?;
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), text("quorum"));
        let limit = i64::try_from(self.max_deliveries.saturating_sub(1)).unwrap_or(i64::MAX);
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit));
        args.insert("x-dead-letter-exchange".into(), text(&self.dlx));
        // Dead-lettering by the broker (a message past its delivery limit) is
        // at least once: it stays in the queue until the dead letters have it.
        args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        args.insert("x-overflow".into(), text("reject-publish"));
        channel
            .queue_declare(self.queue.as_str().into(), durable(), args)
            .await
            .map_err(|source| Self::mismatch(&self.queue, source))?;
        close(&channel).await;
        Ok(())
    }

    /// Declares the dead-letter exchange and queue, and binds them.
    pub(crate) async fn declare_dead(&self, channel: &Channel) -> Result<(), Error> {
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.dlx.as_str().into(),
                ExchangeKind::Fanout,
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|source| Self::mismatch(&self.dlx, source))?;
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), text("quorum"));
        channel
            .queue_declare(self.dead.as_str().into(), durable(), args)
            .await
            .map_err(|source| Self::mismatch(&self.dead, source))?;
        channel
            .queue_bind(
                self.dead.as_str().into(),
                self.dlx.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Whether the queue exists (a passive declaration, on a channel of its
    /// own: a queue that does not exist closes it).
    pub(crate) async fn exists(&self, connection: &Connection) -> Result<bool, Error> {
        let channel = connection.create_channel().await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(self.queue.as_str().into(), options, FieldTable::default())
            .await
        {
            Ok(_) => {
                close(&channel).await;
                Ok(true)
            }
            Err(err) if soft_error(&err) == Some(AMQPSoftError::NOTFOUND) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// A refused declaration: a mismatch if the broker said the object exists
    /// otherwise, the broker's error if not.
    fn mismatch(name: &str, source: lapin::Error) -> Error {
        if soft_error(&source) == Some(AMQPSoftError::PRECONDITIONFAILED) {
            Error::TopologyMismatch {
                queue: name.to_owned(),
                source,
            }
        } else {
            Error::Amqp(source)
        }
    }
}

/// The broker's channel-level error code, if that is what `err` is.
pub(crate) fn soft_error(err: &lapin::Error) -> Option<AMQPSoftError> {
    match err.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(soft) => Some(soft.clone()),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

/// Connects to `url`, within `timeout`, naming the connection
/// `pyventus <role>` for the broker's management UI and `rabbitmqctl`. The
/// connection's I/O runs on the current runtime.
pub(crate) async fn connect(url: &str, role: &str, timeout: Duration) -> Result<Connection, Error> {
    if url.starts_with("amqps:") && !cfg!(feature = "tls") {
        return Err(Error::InvalidConfig(
            "an `amqps://` URL needs the `tls` feature of pyventus-amqp".to_owned(),
        ));
    }
    let name = format!("pyventus {role}");
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let uri = with_heartbeat(url)?;
    match tokio::time::timeout(timeout, Connection::connect_uri(uri, properties)).await {
        Ok(connection) => Ok(connection?),
        Err(_) => Err(Error::Timeout {
            what: "connecting to RabbitMQ",
            after: timeout,
        }),
    }
}

/// The heartbeat a connection asks for when its URL names none
/// (`?heartbeat=`, in seconds; `0` takes the broker's, 60 s for RabbitMQ's
/// default), in seconds. A
/// connection that stops answering without closing (a network gone silent, a
/// NAT or a firewall that forgot the flow) is given up after two heartbeats
/// without a word from the broker: 20 s, where RabbitMQ's default of 60 s
/// would take two minutes, its deliveries stuck meanwhile.
pub(crate) const HEARTBEAT_SECS: u16 = 10;

/// `url` parsed, asking for [`HEARTBEAT_SECS`] when it names no heartbeat.
fn with_heartbeat(url: &str) -> Result<AMQPUri, Error> {
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|why| Error::InvalidConfig(format!("not an AMQP URL: {why}")))?;
    uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
    Ok(uri)
}

/// `<host>-<pid>-<random>`: unique per process, for consumer tags and
/// connection names.
pub(crate) fn process_name() -> String {
    use std::sync::OnceLock;
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".to_owned());
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &random[..8])
    })
    .clone()
}

/// Publishes a message and waits for the broker's confirm (the channel is in
/// confirm mode), within `timeout`: [`send`], then [`confirmed`].
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
    timeout: Duration,
) -> Result<(), Error> {
    let confirmation = async {
        send(channel, exchange, queue, body, properties)
            .await?
            .await
            .map_err(Error::from)
    };
    let confirmation = tokio::time::timeout(timeout, confirmation)
        .await
        .map_err(|_| Error::Timeout {
            what: "waiting for the broker to confirm a message",
            after: timeout,
        })??;
    confirmed(queue, confirmation)
}

/// Publishes a message on a channel in confirm mode, to `exchange` (to
/// `queue` through the default exchange if `exchange` is empty), and returns
/// its confirm to wait for. `mandatory`: a message no queue takes comes back
/// (see [`confirmed`]) instead of vanishing.
pub(crate) async fn send(
    channel: &Channel,
    exchange: &str,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<PublisherConfirm, Error> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let routing_key = if exchange.is_empty() { queue } else { "" };
    Ok(channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            body,
            properties,
        )
        .await?)
}

/// What a confirm says: stored, or [`Error::Unroutable`] (returned: no queue
/// took it) or [`Error::Nacked`] (refused); either way it was not stored.
pub(crate) fn confirmed(queue: &str, confirmation: Confirmation) -> Result<(), Error> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(Error::Unroutable {
            queue: queue.to_owned(),
            reply: returned.reply_text.as_str().to_owned(),
        }),
        Confirmation::Nack(_) | Confirmation::NotRequested => Err(Error::Nacked {
            queue: queue.to_owned(),
        }),
    }
}

/// Closes a channel, ignoring a failure: it is closed either way.
pub(crate) async fn close(channel: &Channel) {
    let _ = channel.close(200, "OK".into()).await;
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_checked() {
        let topology = Topology::new("orders", 5).unwrap();
        assert_eq!(topology.queue, "pyventus.orders");
        assert_eq!(topology.dlx, "pyventus.orders.dlx");
        assert_eq!(topology.dead, "pyventus.orders.dead");
        for bad in ["", "a\nb", &"x".repeat(201)] {
            assert!(matches!(Topology::new(bad, 5), Err(Error::InvalidQueue(_))));
        }
    }

    #[test]
    fn a_process_keeps_its_name() {
        assert_eq!(process_name(), process_name());
        assert!(process_name().contains(&std::process::id().to_string()));
    }

    #[test]
    fn a_url_without_a_heartbeat_asks_for_the_default() {
        let uri = with_heartbeat("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(uri.query.heartbeat, Some(HEARTBEAT_SECS));
        assert_eq!(uri.authority.port, 5672);
    }

    #[test]
    fn a_url_that_names_a_heartbeat_keeps_it_even_zero() {
        let uri = with_heartbeat("amqp://127.0.0.1/%2f?heartbeat=30").unwrap();
        assert_eq!(uri.query.heartbeat, Some(30));
        let off = with_heartbeat("amqp://127.0.0.1/%2f?heartbeat=0").unwrap();
        assert_eq!(off.query.heartbeat, Some(0));
    }

    #[test]
    fn a_malformed_url_is_a_configuration_error() {
        let err = with_heartbeat("amqp://127.0.0.1:notaport/").unwrap_err();
        assert!(err.to_string().contains("not an AMQP URL"), "{err}");
    }
}
