//! `DeadLetters`: events a relay gave up on, to inspect, replay or purge.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::PgPool;
use sqlx::Row;
use uuid::Uuid;

use crate::Error;
use crate::sql::{Sql, millis};

/// The dead letters of an outbox (the table `<schema>.dead_letters`): events
/// whose handlers failed on every allowed attempt, or that could not run at
/// all (an unknown event, a payload that no longer decodes). Each keeps its
/// event, its id and payload, which of its handlers had succeeded and which
/// failed, and why, until it is replayed or purged.
///
/// Replaying moves a letter back into the outbox under its own `seq`, with
/// its attempts reset: only the handlers that had not succeeded run again,
/// and a keyed event keeps its place among the events of its key.
///
/// # Examples
///
/// ```no_run
/// # async fn ops(outbox: pyventus_postgres::Outbox) -> Result<(), pyventus_postgres::Error> {
/// let dead = outbox.dead_letters();
/// for letter in dead.list(100).await? {
///     println!("{} {} ({}): {}", letter.seq, letter.event, letter.kind, letter.reason);
/// }
/// let replayed = dead.replay_all().await?; // after the fix is deployed
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetters {
    sql: Arc<Sql>,
    pool: PgPool,
}

/// One dead letter, as [`DeadLetters::list`] reads it.
///
/// # Examples
///
/// ```no_run
/// # async fn show(dead: pyventus_postgres::DeadLetters) -> Result<(), pyventus_postgres::Error> {
/// if let Some(letter) = dead.list(1).await?.first() {
///     assert!(letter.attempts >= 1 || letter.kind != "failed");
///     println!("{letter:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its row in the outbox, kept when it is replayed.
    pub seq: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's name.
    pub event: String,
    /// The event's payload, as JSON.
    pub payload: String,
    /// Its partition key, if any.
    pub partition_key: Option<String>,
    /// When it was emitted.
    pub emitted_at: SystemTime,
    /// How many times it was claimed.
    pub attempts: i32,
    /// The handlers that had succeeded (not run again on replay).
    pub done: Vec<String>,
    /// The handlers that failed on the last attempt (empty when the event
    /// could not run at all).
    pub failed: Vec<String>,
    /// What kind of failure: `failed` (handlers failed), `timed_out`,
    /// `malformed` (a payload that does not decode), `unknown_event`,
    /// `unresolved`, `missing_handler`, `max_attempts` (claimed too often
    /// without finishing), `forward` (a processing service refused it).
    pub kind: String,
    /// Why, in words: each failed handler's error, or the decoding error.
    pub reason: String,
    /// When it was dead-lettered.
    pub dead_at: SystemTime,
}

impl DeadLetters {
    pub(crate) fn new(sql: Arc<Sql>, pool: PgPool) -> Self {
        DeadLetters { sql, pool }
    }

    /// The first `limit` dead letters, oldest event first.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// See [`DeadLetters`].
    pub async fn list(&self, limit: i64) -> Result<Vec<DeadLetter>, Error> {
        self.list_after(0, limit).await
    }

    /// Up to `limit` dead letters whose `seq` is after `seq`: the next page.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn all(dead: pyventus_postgres::DeadLetters) -> Result<(), pyventus_postgres::Error> {
    /// let mut after = 0;
    /// loop {
    ///     let page = dead.list_after(after, 500).await?;
    ///     let Some(last) = page.last() else { break };
    ///     after = last.seq;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_after(&self, seq: i64, limit: i64) -> Result<Vec<DeadLetter>, Error> {
        let rows = sqlx::query(&self.sql.dead_list)
            .bind(seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(letter).collect()
    }

    /// How many dead letters there are.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn alert(dead: pyventus_postgres::DeadLetters) -> Result<(), pyventus_postgres::Error> {
    /// if dead.count().await? > 0 { /* page someone */ }
    /// # Ok(()) }
    /// ```
    pub async fn count(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar(&self.sql.dead_count)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Moves these dead letters back into the outbox and wakes the relays;
    /// returns how many were moved (a `seq` that is not a dead letter is
    /// skipped).
    ///
    /// # Errors
    ///
    /// [`Error::Database`]; nothing is moved then.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn again(dead: pyventus_postgres::DeadLetters) -> Result<(), pyventus_postgres::Error> {
    /// let letters = dead.list(10).await?;
    /// let seqs: Vec<i64> = letters.iter().filter(|l| l.event == "OrderPlaced").map(|l| l.seq).collect();
    /// dead.replay(&seqs).await?;
    /// # Ok(()) }
    /// ```
    pub async fn replay(&self, seqs: &[i64]) -> Result<u64, Error> {
        let moved = sqlx::query(&self.sql.dead_replay)
            .bind(seqs)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if moved > 0 {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(&self.sql.channel)
                .execute(&self.pool)
                .await?;
        }
        Ok(moved)
    }

    /// Moves every dead letter back into the outbox, a thousand at a time.
    ///
    /// # Errors
    ///
    /// [`Error::Database`]; the pages moved before it stay moved.
    ///
    /// # Examples
    ///
    /// See [`DeadLetters`].
    pub async fn replay_all(&self) -> Result<u64, Error> {
        let mut moved = 0;
        loop {
            let page: Vec<i64> = self.list(1_000).await?.iter().map(|l| l.seq).collect();
            if page.is_empty() {
                return Ok(moved);
            }
            moved += self.replay(&page).await?;
        }
    }

    /// Deletes these dead letters for good; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn drop_one(dead: pyventus_postgres::DeadLetters) -> Result<(), pyventus_postgres::Error> {
    /// dead.purge(&[42]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn purge(&self, seqs: &[i64]) -> Result<u64, Error> {
        Ok(sqlx::query(&self.sql.dead_purge)
            .bind(seqs)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Deletes every dead letter; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn clear(dead: pyventus_postgres::DeadLetters) -> Result<(), pyventus_postgres::Error> {
    /// dead.purge_all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn purge_all(&self) -> Result<u64, Error> {
        Ok(sqlx::query(&self.sql.dead_purge_all)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Deletes the dead letters older than `age` (by when they were
    /// dead-lettered); returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn retention(dead: pyventus_postgres::DeadLetters) -> Result<(), pyventus_postgres::Error> {
    /// dead.purge_older_than(std::time::Duration::from_secs(30 * 24 * 3600)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn purge_older_than(&self, age: Duration) -> Result<u64, Error> {
        Ok(sqlx::query(&self.sql.purge_dead_older)
            .bind(millis(age))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

fn letter(row: &sqlx::postgres::PgRow) -> Result<DeadLetter, Error> {
    let at = |ms: i64| UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Ok(DeadLetter {
        seq: row.try_get(0)?,
        event_id: row.try_get(1)?,
        event: row.try_get(2)?,
        payload: row.try_get(3)?,
        partition_key: row.try_get(4)?,
        emitted_at: at(row.try_get(5)?),
        attempts: row.try_get(6)?,
        done: row.try_get(7)?,
        failed: row.try_get(8)?,
        kind: row.try_get(9)?,
        reason: row.try_get(10)?,
        dead_at: at(row.try_get(11)?),
    })
}
