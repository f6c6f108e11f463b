//! Dead letters: the messages that failed their last allowed delivery, and
//! their format (the headers a worker adds when it dead-letters a message),
//! written and read here only.
//!
//! A worker dead-letters a message by publishing it, byte for byte, to the
//! queue's dead-letter exchange with these headers added, then acknowledging
//! it. A message the broker dead-lettered itself (its worker died on each of
//! its deliveries, so none reached the point of recording a reason) carries the
//! broker's `x-death` instead, which is read as its reason.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use pyventus_core::remote::{Envelope, EnvelopeError};

use crate::broker::{self, Topology};
use crate::{Error, envelope};

const REASON: &str = "x-pyventus-reason";
const DELIVERIES: &str = "x-pyventus-deliveries";
const FAILED_AT: &str = "x-pyventus-failed-at";
const LETTER: &str = "x-pyventus-letter";
/// Headers the broker adds when it dead-letters a message.
const BROKER_DEATH: [&str; 7] = [
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];
/// The longest reason kept in a header (a handler's error can be long).
const MAX_REASON: usize = 4096;

/// The properties of a message's dead letter: its own, with the reason, the
/// delivery count, the time and its letter id added, and the broker's stale
/// delivery count removed.
pub(crate) fn letter_properties(
    original: &BasicProperties,
    body: &[u8],
    reason: &str,
    deliveries: u64,
) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    let mut kept: FieldTable = headers
        .inner()
        .iter()
        .filter(|(name, _)| name.as_str() != envelope::DELIVERY_COUNT)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into();
    kept.insert(
        REASON.into(),
        AMQPValue::LongString(truncate(reason).into()),
    );
    kept.insert(
        DELIVERIES.into(),
        AMQPValue::LongLongInt(i64::try_from(deliveries).unwrap_or(i64::MAX)),
    );
    kept.insert(FAILED_AT.into(), AMQPValue::LongLongInt(now_millis()));
    kept.insert(
        LETTER.into(),
        AMQPValue::LongString(letter_id(original, body).into()),
    );
    headers = kept;
    original.clone().with_headers(headers)
}

/// The properties a dead letter is replayed with: its message's own, as it was
/// first published (dead-letter and broker headers removed).
fn replay_properties(letter: &BasicProperties) -> BasicProperties {
    let Some(headers) = letter.headers() else {
        return letter.clone();
    };
    let ours = [
        REASON,
        DELIVERIES,
        FAILED_AT,
        LETTER,
        envelope::DELIVERY_COUNT,
    ];
    let kept: std::collections::BTreeMap<_, _> = headers
        .inner()
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !ours.contains(&name) && !BROKER_DEATH.contains(&name)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    letter.clone().with_headers(kept.into())
}

/// The dead letters of a queue: the messages that failed their last allowed
/// delivery. Inspect them, replay them onto the queue once the cause is fixed,
/// or remove them.
///
/// A queue gives no random access, so each call reads the dead-letter queue
/// from its head on a channel of its own, holding the messages it read
/// (unacknowledged, so invisible to other readers) until it is done, then gives
/// back the ones it keeps and waits a moment for the broker to count them
/// again: two concurrent replays never replay one letter twice, and a call
/// right after another finds what the first one read.
///
/// # Examples
///
/// ```no_run
/// use pyventus_amqp::DeadLetters;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_amqp::Error> {
/// let dead = DeadLetters::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "orders").await?;
/// for letter in dead.list(100).await? {
///     println!("{} {}: {}", letter.id, letter.event(), letter.reason);
/// }
/// let replayed = dead.replay_all().await?;
/// println!("{replayed} replayed");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    connection: Arc<Connection>,
    queue: String,
    topology: Topology,
}

/// One dead letter, as [`DeadLetters::list`] returns it (see its example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id among the dead letters (for [`DeadLetters::replay`] and
    /// [`DeadLetters::remove`]): its message's id (an envelope's id; a hash of
    /// the body for a message without one). Two letters with one id are one
    /// message dead-lettered twice (a worker lost between publishing the
    /// letter and acknowledging the message): [`DeadLetters::replay_all`]
    /// replays it once; [`DeadLetters::replay`] and [`DeadLetters::remove`]
    /// take the first.
    pub id: String,
    /// Why its last delivery failed.
    pub reason: String,
    /// How many deliveries it had (0 if the broker dead-lettered it: see
    /// `reason`).
    pub deliveries: u64,
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub failed_at: u64,
    /// The envelope it carries, or what is wrong with it (that may be why it
    /// is here).
    pub envelope: Result<Envelope, EnvelopeError>,
    /// The message's body, byte for byte.
    pub body: Vec<u8>,
}

impl DeadLetter {
    /// The event's name, if the message had one.
    pub fn event(&self) -> &str {
        self.envelope
            .as_ref()
            .map_or("<none>", |envelope| envelope.event.as_str())
    }

    fn from_message(properties: &BasicProperties, body: Vec<u8>) -> Self {
        let empty = FieldTable::default();
        let headers = properties.headers().as_ref().unwrap_or(&empty).inner();
        let text = |name: &str| headers.get(name).and_then(envelope::text);
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(envelope::integer)
                .and_then(|n| u64::try_from(n).ok())
        };
        let death = broker_death(headers.get("x-death"));
        let id = id_of(properties, &body);
        let reason = text(REASON).unwrap_or_else(|| match &death {
            Some((reason, _)) if reason == "delivery_limit" => {
                "dead-lettered by the broker at its delivery limit: no delivery was settled (the worker crashed, lost its connection or hit its shutdown timeout on each)".to_owned()
            }
            Some((reason, _)) => format!("dead-lettered by the broker: {reason}"),
            None => "unknown".to_owned(),
        });
        DeadLetter {
            id,
            reason,
            deliveries: number(DELIVERIES).unwrap_or(0),
            failed_at: number(FAILED_AT)
                .or_else(|| death.map(|(_, seconds)| seconds.saturating_mul(1000)))
                .unwrap_or(0),
            envelope: envelope::from_message(properties, &body),
            body,
        }
    }
}

/// A message's letter id: its `message_id` (an envelope's id), or a hash of its
/// body if it has none. The same for every letter of one message, whoever
/// wrote it (a worker, or the broker at its delivery limit), so a message
/// dead-lettered twice is seen as such, and replayed once.
fn letter_id(properties: &BasicProperties, body: &[u8]) -> String {
    match properties.message_id() {
        Some(id) => id.to_string(),
        None => format!("body-{:016x}", fnv1a(body)),
    }
}

/// The id of a dead letter: the one its worker wrote, or its message's (the
/// broker writes none).
fn id_of(properties: &BasicProperties, body: &[u8]) -> String {
    properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(LETTER))
        .and_then(envelope::text)
        .unwrap_or_else(|| letter_id(properties, body))
}

/// The reason and time (seconds) of the broker's latest dead-lettering.
fn broker_death(x_death: Option<&AMQPValue>) -> Option<(String, u64)> {
    let AMQPValue::FieldArray(deaths) = x_death? else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    let reason = latest.inner().get("reason").and_then(envelope::text)?;
    let time = match latest.inner().get("time") {
        Some(AMQPValue::Timestamp(seconds)) => *seconds,
        _ => 0,
    };
    Some((reason, time))
}

impl DeadLetters {
    /// Connects to the dead letters of `queue`, declaring them if missing.
    pub async fn connect(url: &str, queue: &str) -> Result<Self, Error> {
        let topology = Topology::new(queue, 1)?;
        let connection = broker::connect(
            url,
            &format!("dead letters {}", broker::process_name()),
            Duration::from_secs(10),
        )
        .await?;
        let channel = connection.create_channel().await?;
        topology.declare_dead(&channel).await?;
        broker::close(&channel).await;
        Ok(DeadLetters {
            connection: Arc::new(connection),
            queue: queue.to_owned(),
            topology,
        })
    }

    /// How many dead letters there are (those another reader holds excepted).
    pub async fn len(&self) -> Result<u64, Error> {
        let channel = self.connection.create_channel().await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare(
                self.topology.dead.as_str().into(),
                options,
                FieldTable::default(),
            )
            .await?;
        broker::close(&channel).await;
        Ok(queue.message_count().into())
    }

    /// Whether there are none.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// The oldest `count` dead letters (they stay dead letters).
    pub async fn list(&self, count: usize) -> Result<Vec<DeadLetter>, Error> {
        let before = self.len().await?;
        let channel = self.connection.create_channel().await?;
        let mut letters = Vec::new();
        let mut last_tag = None;
        while letters.len() < count {
            let Some(message) = self.take(&channel).await? else {
                break;
            };
            let delivery = message.delivery;
            last_tag = Some(delivery.delivery_tag);
            letters.push(DeadLetter::from_message(
                &delivery.properties,
                delivery.data,
            ));
        }
        self.give_back(&channel, last_tag, before).await?;
        Ok(letters)
    }

    /// Puts a dead letter back on the queue, with its message as it was first
    /// published (same envelope id), then removes it from the dead letters.
    /// Returns whether it existed.
    pub async fn replay(&self, id: &str) -> Result<bool, Error> {
        self.settle_one(id, true).await
    }

    /// Replays the dead letters there are when it starts (not those that die
    /// again meanwhile); returns how many. A letter whose id was replayed
    /// already in this call (one message dead-lettered twice: see
    /// [`DeadLetter::id`]) is removed without being replayed again, and not
    /// counted.
    pub async fn replay_all(&self) -> Result<usize, Error> {
        let channel = self.confirming_channel().await?;
        let mut replayed = HashSet::new();
        let todo = self.len().await?;
        let mut taken = 0;
        while taken < todo {
            let Some(message) = self.take(&channel).await? else {
                break;
            };
            taken += 1;
            let letter = &message.delivery;
            let id = id_of(&letter.properties, &letter.data);
            if replayed.contains(&id) {
                tracing::info!(target: "pyventus", letter = %id, "a repeat of a dead letter replayed already: removed");
            } else {
                self.republish(&channel, letter).await?;
                replayed.insert(id);
            }
            letter.acker.ack(BasicAckOptions::default()).await?;
        }
        broker::close(&channel).await;
        Ok(replayed.len())
    }

    /// Removes a dead letter for good. Returns whether it existed.
    pub async fn remove(&self, id: &str) -> Result<bool, Error> {
        self.settle_one(id, false).await
    }

    /// Finds the letter `id`, replays it or not, and acknowledges it; the
    /// letters read before it go back when the channel closes.
    async fn settle_one(&self, id: &str, replay: bool) -> Result<bool, Error> {
        let before = self.len().await?;
        let channel = self.confirming_channel().await?;
        let mut last_tag = None;
        let found = loop {
            let Some(message) = self.take(&channel).await? else {
                break false;
            };
            let delivery = message.delivery;
            let letter = DeadLetter::from_message(&delivery.properties, delivery.data.clone());
            if letter.id != id {
                // Held until given back; the one found is acknowledged instead.
                last_tag = Some(delivery.delivery_tag);
                continue;
            }
            if replay {
                self.republish(&channel, &delivery).await?;
            }
            delivery.acker.ack(BasicAckOptions::default()).await?;
            break true;
        };
        self.give_back(&channel, last_tag, before.saturating_sub(u64::from(found)))
            .await?;
        Ok(found)
    }

    /// Returns the letters `channel` holds (every one up to `last_tag` not
    /// acknowledged), and waits, a moment at most, until the queue counts
    /// `expected` again: the broker applies returns asynchronously, and a call
    /// right after this one must find them.
    async fn give_back(
        &self,
        channel: &Channel,
        last_tag: Option<u64>,
        expected: u64,
    ) -> Result<(), Error> {
        if let Some(tag) = last_tag {
            let options = BasicNackOptions {
                multiple: true,
                requeue: true,
            };
            // Closing the channel returns them anyway, should this fail.
            let _ = channel.basic_nack(tag, options).await;
        }
        broker::close(channel).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.len().await? < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn republish(
        &self,
        channel: &Channel,
        letter: &lapin::message::Delivery,
    ) -> Result<(), Error> {
        broker::publish_confirmed(
            channel,
            "",
            &self.topology.queue,
            &letter.data,
            replay_properties(&letter.properties),
            Duration::from_secs(10),
        )
        .await
    }

    /// The next dead letter, held unacknowledged on `channel`.
    async fn take(
        &self,
        channel: &Channel,
    ) -> Result<Option<lapin::message::BasicGetMessage>, Error> {
        Ok(channel
            .basic_get(
                self.topology.dead.as_str().into(),
                BasicGetOptions::default(),
            )
            .await?)
    }

    async fn confirming_channel(&self) -> Result<Channel, Error> {
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

fn truncate(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stable id for a message that has none (FNV-1a: the same in every process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_reads_back_what_was_written() {
        let envelope = Envelope::new("Doomed", r#"{"id":7}"#);
        let mut original = envelope::properties(&envelope).unwrap();
        let mut headers = original.headers().clone().unwrap_or_default();
        headers.insert(envelope::DELIVERY_COUNT.into(), AMQPValue::LongLongInt(2));
        original = original.with_headers(headers);

        let body = envelope.payload.as_bytes();
        let letter_props = letter_properties(&original, body, "handler `x` failed: no", 3);
        let letter = DeadLetter::from_message(&letter_props, envelope.payload.clone().into_bytes());
        assert_eq!(letter.reason, "handler `x` failed: no");
        assert_eq!(letter.deliveries, 3);
        assert!(letter.failed_at > 0);
        assert_eq!(letter.event(), "Doomed");
        assert_eq!(letter.envelope.as_ref().unwrap(), &envelope);
        assert_eq!(letter.id, envelope.id, "the letter id is its envelope's");
        // Dead-lettered again (a repeat): the same letter id.
        let again = letter_properties(&original, body, "handler `x` failed: again", 3);
        assert_eq!(
            DeadLetter::from_message(&again, body.to_vec()).id,
            letter.id
        );

        // Replayed as first published: no dead-letter or delivery-count header.
        assert_eq!(
            replay_properties(&letter_props),
            envelope::properties(&envelope).unwrap()
        );
    }

    #[test]
    fn a_letter_the_broker_wrote_has_its_reason() {
        let mut death = FieldTable::default();
        death.insert(
            "reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        death.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        let properties = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_headers(headers);
        let letter = DeadLetter::from_message(&properties, b"raw".to_vec());
        assert_eq!(letter.id, "m-1");
        assert!(
            letter.reason.contains("delivery limit"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.failed_at, 1_700_000_000_000);
        assert!(letter.envelope.is_err());
        assert_eq!(letter.event(), "<none>");
    }

    #[test]
    fn a_message_without_ids_gets_a_stable_one() {
        let a = DeadLetter::from_message(&BasicProperties::default(), b"x".to_vec());
        let b = DeadLetter::from_message(&BasicProperties::default(), b"x".to_vec());
        assert_eq!(a.id, b.id);
        assert!(a.id.starts_with("body-"));
    }

    #[test]
    fn long_reasons_are_cut_on_a_character() {
        let reason = "é".repeat(MAX_REASON);
        assert!(truncate(&reason).len() <= MAX_REASON);
        assert!(truncate(&reason).chars().all(|c| c == 'é'));
    }
}
