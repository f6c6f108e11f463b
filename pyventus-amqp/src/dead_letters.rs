//! `DeadLetters`: a queue's dead letters, to inspect, replay once the cause is
//! fixed, or remove.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use crate::Error;
use crate::broker::{self, Topology};
use crate::dead_letter::{DeadLetter, id_of, replay_properties};

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
