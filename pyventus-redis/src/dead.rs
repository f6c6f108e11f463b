//! Dead letters: the entries that failed their last allowed delivery.

use std::collections::HashMap;
use std::fmt;

use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply};

use crate::{Error, check_queue, dead_key, manager, stream_key};

/// The dead letters of a queue: the entries that failed their last allowed
/// delivery. Inspect them, replay them onto the queue once the cause is fixed,
/// or remove them.
///
/// # Examples
///
/// ```no_run
/// use pyventus_redis::DeadLetters;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_redis::Error> {
/// let dead = DeadLetters::connect("redis://127.0.0.1:6379", "orders").await?;
/// for letter in dead.list(100).await? {
///     println!("{} {}: {}", letter.id, letter.event(), letter.reason);
/// }
/// let replayed = dead.replay_all().await?;
/// println!("{replayed} replayed");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    conn: ConnectionManager,
    queue: String,
    stream: String,
    dead: String,
}

/// One dead letter, as [`DeadLetters::list`] returns it (see its example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// Why its last delivery failed.
    pub reason: String,
    /// How many deliveries it had.
    pub deliveries: u64,
    /// When it was moved here, in milliseconds since the Unix epoch.
    pub failed_at: u64,
    /// The id it had in the queue's stream.
    pub entry: String,
    /// The envelope's fields as they were (`v`, `id`, `event`, `payload`,
    /// `emitted_at`; possibly malformed: that may be why it is here).
    pub envelope: HashMap<String, String>,
}

impl DeadLetter {
    /// The event's name, if the envelope had one.
    pub fn event(&self) -> &str {
        self.envelope.get("event").map_or("<none>", String::as_str)
    }

    fn from_entry(entry: &StreamId) -> Self {
        let mut fields: HashMap<String, String> = entry
            .map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    redis::from_redis_value(v.clone()).unwrap_or_default(),
                )
            })
            .collect();
        let mut take = |name: &str| fields.remove(name).unwrap_or_default();
        DeadLetter {
            id: entry.id.clone(),
            reason: take("reason"),
            deliveries: take("deliveries").parse().unwrap_or(0),
            failed_at: take("failed_at").parse().unwrap_or(0),
            entry: take("entry"),
            envelope: fields,
        }
    }
}

impl DeadLetters {
    /// Connects to the dead letters of `queue`.
    pub async fn connect(url: &str, queue: &str) -> Result<Self, Error> {
        check_queue(queue)?;
        let client = redis::Client::open(url).map_err(Error::from)?;
        Ok(DeadLetters {
            conn: manager(&client).await?,
            queue: queue.to_owned(),
            stream: stream_key(queue),
            dead: dead_key(queue),
        })
    }

    /// How many dead letters there are.
    pub async fn len(&self) -> Result<u64, Error> {
        redis::cmd("XLEN")
            .arg(&self.dead)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::from)
    }

    /// Whether there are none.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// The oldest `count` dead letters.
    pub async fn list(&self, count: usize) -> Result<Vec<DeadLetter>, Error> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::from)?;
        Ok(reply.ids.iter().map(DeadLetter::from_entry).collect())
    }

    /// Puts a dead letter back on the queue, with its envelope as it was (same
    /// envelope id), and removes it from the dead letters, atomically. Returns
    /// whether it existed.
    pub async fn replay(&self, id: &str) -> Result<bool, Error> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.dead)
            .arg(id)
            .arg(id)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::from)?;
        let Some(entry) = reply.ids.first() else {
            return Ok(false);
        };
        let letter = DeadLetter::from_entry(entry);
        let mut add = redis::cmd("XADD");
        add.arg(&self.stream).arg("*");
        let mut fields: Vec<_> = letter.envelope.iter().collect();
        fields.sort();
        for (field, value) in fields {
            add.arg(field).arg(value);
        }
        redis::pipe()
            .atomic()
            .add_command(add)
            .ignore()
            .cmd("XDEL")
            .arg(&self.dead)
            .arg(id)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(Error::from)?;
        Ok(true)
    }

    /// Replays every dead letter; returns how many.
    pub async fn replay_all(&self) -> Result<usize, Error> {
        let mut replayed = 0;
        loop {
            let batch = self.list(100).await?;
            if batch.is_empty() {
                return Ok(replayed);
            }
            for letter in batch {
                if self.replay(&letter.id).await? {
                    replayed += 1;
                }
            }
        }
    }

    /// Removes a dead letter for good. Returns whether it existed.
    pub async fn remove(&self, id: &str) -> Result<bool, Error> {
        let removed: u64 = redis::cmd("XDEL")
            .arg(&self.dead)
            .arg(id)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(Error::from)?;
        Ok(removed > 0)
    }
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}
