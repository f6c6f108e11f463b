//! The doorbell: how relays learn, within milliseconds, that an emitting
//! transaction committed, without a `NOTIFY` in that transaction.
//!
//! `NOTIFY` takes a cluster-wide lock that is held through `COMMIT`, so
//! transactions that notify commit one at a time (measured: 0.39× of an
//! outbox row's rate at 8 connections). Instead, each emit takes a *shared*
//! transaction-level advisory lock on its transaction's token (drawn at
//! random by its first emit and kept in a setting local to the transaction:
//! one lock however many events it emits; shared locks never wait for each
//! other, and cost no WAL), and hands its token to this process's doorbell
//! task. The task, on a connection of its own, waits for those
//! tokens' transactions to end (an exclusive lock on each, granted when its
//! transaction commits or rolls back) and then sends `pg_notify` from its own
//! short transaction, with `synchronous_commit = off` (it needs no flush of
//! its own, so it does not take turns at the disk with the emitters'
//! commits). Emitters never wait for the doorbell, and the doorbell's
//! `NOTIFY`s serialize only among themselves: one per batch of commits.
//!
//! A doorbell that cannot ring (its connection is down, a transaction stays
//! open past the lock timeout) costs latency, never an event: relays also
//! poll, and a rolled-back emit rings for nothing.
//!
//! Concurrency: the sender is behind a mutex held only to clone or replace
//! it; the task owns its connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use tokio::sync::mpsc;

use crate::schema::{LockKind, lock_key};
use crate::sql::Sql;

/// How long the doorbell waits for one batch of transactions before it
/// checks which have ended (a transaction that stays open after its emit).
const WAIT: Duration = Duration::from_millis(100);

/// How long a token of a transaction that stays open is watched; past it, the
/// relays' poll delivers its events.
const WATCH: Duration = Duration::from_mins(1);

/// The most tokens one ring waits for.
const BATCH: usize = 256;

#[derive(Debug)]
pub(crate) struct Doorbell {
    options: PgConnectOptions,
    sql: Arc<Sql>,
    sender: Mutex<Option<mpsc::UnboundedSender<i32>>>,
}

impl Doorbell {
    pub(crate) fn new(options: PgConnectOptions, sql: Arc<Sql>) -> Self {
        Doorbell {
            options,
            sql,
            sender: Mutex::new(None),
        }
    }

    /// Rings once the transaction holding `token` ends.
    pub(crate) fn ring_after(&self, token: i32) {
        let mut sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = sender.as_ref()
            && tx.send(token).is_ok()
        {
            return;
        }
        // Not started, or its runtime is gone: start it on the caller's.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(token);
        runtime.spawn(ring(rx, self.options.clone(), self.sql.clone()));
        *sender = Some(tx);
    }
}

async fn ring(mut rx: mpsc::UnboundedReceiver<i32>, options: PgConnectOptions, sql: Arc<Sql>) {
    let mut conn: Option<PgConnection> = None;
    // Tokens of transactions still open after a wait, and since when.
    let mut open: Vec<(i32, Instant)> = Vec::new();
    let mut tokens: Vec<i32> = Vec::new();
    loop {
        if open.is_empty() {
            match rx.recv().await {
                Some(token) => tokens.push(token),
                None => return,
            }
        } else {
            // Something is still open: look again soon, or sooner if more comes.
            tokio::select! {
                token = rx.recv() => match token {
                    Some(token) => tokens.push(token),
                    None => return,
                },
                () = tokio::time::sleep(WAIT) => {}
            }
        }
        while tokens.len() < BATCH {
            match rx.try_recv() {
                Ok(token) => tokens.push(token),
                Err(_) => break,
            }
        }
        open.retain(|(_, since)| since.elapsed() < WATCH);
        tokens.extend(open.iter().map(|(token, _)| *token));
        tokens.sort_unstable();
        tokens.dedup();
        let connection = match conn.as_mut() {
            Some(connection) => connection,
            None => match connect(&options).await {
                Ok(connection) => conn.insert(connection),
                Err(err) => {
                    tracing::debug!(target: "pyventus", "the outbox doorbell cannot connect (relays fall back to polling): {err}");
                    tokens.clear();
                    open.clear();
                    tokio::time::sleep(WAIT).await;
                    continue;
                }
            },
        };
        let rang = sqlx::query(&sql.ring)
            .bind(&tokens)
            .bind(&sql.channel)
            .execute(&mut *connection)
            .await;
        match rang {
            Ok(_) => open.clear(),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => {
                // Lock timeout: some transaction is still open. Ring for the
                // ones that ended, and keep watching the others.
                match still_open(connection, &sql, &tokens).await {
                    Ok(still) => {
                        let now = Instant::now();
                        open.retain(|(token, _)| still.contains(token));
                        for token in still {
                            if !open.iter().any(|(t, _)| *t == token) {
                                open.push((token, now));
                            }
                        }
                    }
                    Err(_) => {
                        conn = None;
                        open.clear();
                    }
                }
            }
            Err(err) => {
                tracing::debug!(target: "pyventus", "the outbox doorbell failed to ring (relays fall back to polling): {err}");
                conn = None;
                open.clear();
            }
        }
        tokens.clear();
    }
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    let mut conn = options
        .clone()
        .application_name("pyventus-doorbell")
        .connect()
        .await?;
    sqlx::query(&format!("SET lock_timeout = {}", WAIT.as_millis()))
        .execute(&mut conn)
        .await?;
    // A ring's transaction writes nothing worth a flush of its own: its
    // commit need not wait for the disk (and so does not take turns at it
    // with the emitters' commits). A ring lost in a crash costs a poll.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// The tokens whose transactions are still open; notifies the relays for the
/// others, in the same statement.
async fn still_open(
    conn: &mut PgConnection,
    sql: &Sql,
    tokens: &[i32],
) -> Result<Vec<i32>, sqlx::Error> {
    let doorbell = lock_key(&sql.schema, LockKind::Doorbell);
    sqlx::query_scalar(&format!(
        "WITH s AS (
             SELECT t, pg_try_advisory_xact_lock({doorbell}, t) AS ended FROM unnest($1::int4[]) AS t
         ), n AS (
             SELECT pg_notify($2, '') FROM s WHERE ended LIMIT 1
         )
         SELECT t FROM s WHERE NOT ended AND (SELECT count(*) FROM n) >= 0"
    ))
    .bind(tokens)
    .bind(&sql.channel)
    .fetch_all(conn)
    .await
}
