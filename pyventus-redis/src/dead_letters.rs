//! `DeadLetters`: inspecting, replaying and removing a queue's dead letters.

use std::fmt;
use std::time::Duration;

use crate::connection::{self, Timeouts};
use crate::stream::Stream;
use crate::{DeadLetter, Error, check_queue};

/// The dead letters of a queue: the entries that failed their last allowed
/// delivery, or could never run. Inspect them, replay them onto the queue once
/// the cause is fixed, or remove them.
///
/// Letters keep their entries byte for byte, so a replay enqueues exactly what
/// was enqueued first (binary data included). A replay takes the letter and
/// enqueues its entry in one step: replays running at once (two operators, two
/// scripts) enqueue each letter once.
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
    stream: Stream,
}

impl DeadLetters {
    /// Connects to the dead letters of `queue` (with the default one-second
    /// timeouts).
    pub async fn connect(url: &str, queue: &str) -> Result<Self, Error> {
        Self::connect_with(redis::Client::open(url)?, queue, Duration::from_secs(1)).await
    }

    /// Connects through a client configured elsewhere, with `timeout` for
    /// connecting and for each answer.
    pub async fn connect_with(
        client: redis::Client,
        queue: &str,
        timeout: Duration,
    ) -> Result<Self, Error> {
        check_queue(queue)?;
        let timeouts = Timeouts {
            connect: timeout,
            response: timeout,
        };
        timeouts.check()?;
        Ok(DeadLetters {
            stream: Stream::new(connection::manager(&client, timeouts).await?, queue),
        })
    }

    /// How many dead letters there are.
    pub async fn len(&self) -> Result<u64, Error> {
        self.stream.dead_len().await
    }

    /// Whether there are none.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// The oldest `count` dead letters.
    pub async fn list(&self, count: usize) -> Result<Vec<DeadLetter>, Error> {
        self.list_from("-", count).await
    }

    /// Up to `count` dead letters from the one with id `start` on (inclusive):
    /// to page through them, start the next page just after the last id seen
    /// (`(<id>`).
    pub async fn list_from(&self, start: &str, count: usize) -> Result<Vec<DeadLetter>, Error> {
        self.range(start, "+", count).await
    }

    async fn range(&self, start: &str, end: &str, count: usize) -> Result<Vec<DeadLetter>, Error> {
        Ok(self
            .stream
            .dead_range(start, end, count)
            .await?
            .into_iter()
            .map(DeadLetter::from_entry)
            .collect())
    }

    /// Puts a dead letter back on the queue with its entry as it was (same
    /// envelope id, same bytes), and removes it from the dead letters, in one
    /// step. Returns whether it was there (another replay or a removal may
    /// have taken it first).
    ///
    /// A replay does not count against the queue's
    /// [`stream_cap`](crate::RedisProcessingServiceBuilder::stream_cap): the
    /// letters were in the queue once already.
    pub async fn replay(&self, id: &str) -> Result<bool, Error> {
        let Some(letter) = self.range(id, id, 1).await?.pop() else {
            return Ok(false);
        };
        if letter.fields.is_empty() {
            return Err(Error::NothingToReplay(letter.id));
        }
        Ok(self
            .stream
            .replay(&letter.id, &letter.fields)
            .await?
            .is_some())
    }

    /// Replays every dead letter there is when it starts (letters added while
    /// it runs, by entries that fail again, wait for the next call); returns
    /// how many this call replayed. Letters with nothing to replay are left.
    pub async fn replay_all(&self) -> Result<usize, Error> {
        let Some(newest) = self.stream.dead_last().await? else {
            return Ok(0);
        };
        let mut replayed = 0;
        let mut start = "-".to_owned();
        loop {
            let batch = self.range(&start, &newest, 100).await?;
            let Some(last) = batch.last() else {
                return Ok(replayed);
            };
            start = format!("({}", last.id);
            for letter in batch.iter().filter(|letter| !letter.fields.is_empty()) {
                if self
                    .stream
                    .replay(&letter.id, &letter.fields)
                    .await?
                    .is_some()
                {
                    replayed += 1;
                }
            }
        }
    }

    /// Removes a dead letter for good. Returns whether it existed.
    pub async fn remove(&self, id: &str) -> Result<bool, Error> {
        self.stream.dead_remove(id).await
    }
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("queue", &self.stream.queue())
            .finish_non_exhaustive()
    }
}
