//! Settling: one task per relay writes what deliveries did, fenced, in
//! batches: every event delivered since the last write leaves the outbox in
//! one statement; a failure is written on its own (a retry after a backoff,
//! with the handlers that succeeded added to `done`, or a move to the dead
//! letters).
//!
//! Only the holder of a row's current fence settles it: a relay whose lease
//! was lost (another claimed the row while it stalled) writes nothing, and a
//! loss it has not noticed yet matches no row either.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Relay;
use super::claim::Claimed;
use super::deliver::Outcome;
use super::stats::{Counters, WORKER};
use crate::Error;
use crate::delivery::Lease;
use crate::sql::millis;
use pyventus_core::remote::{Backoff, DeliveryFailure, deadline};

/// How much of a failure's reason the outbox keeps.
const STORED_REASON: usize = 8 * 1024;

/// A finished delivery, waiting to be written.
pub(crate) struct Finished {
    pub(crate) claimed: Claimed,
    pub(crate) lease: Lease,
    pub(crate) ended: Ended,
    /// The delivery's slot, freed once it is written.
    pub(crate) _slot: OwnedSemaphorePermit,
}

/// How a delivery ended.
pub(crate) enum Ended {
    Ran(Outcome),
    /// Cut short at the shutdown deadline.
    Abandoned,
}

/// How many batches are written at once: while one waits for its round trip,
/// the next is being gathered and sent (each row is settled once, so their
/// order does not matter).
const WRITERS: usize = 4;

/// Writes what deliveries did until every sender is gone.
pub(crate) async fn settle(relay: Relay, mut finished: UnboundedReceiver<Finished>) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let Ok(writer) = writers.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(256);
        if finished.recv_many(&mut batch, 512).await == 0 {
            break;
        }
        let relay = relay.clone();
        tasks.spawn(async move {
            write(&relay, &batch).await;
            drop(writer);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Writes a batch's outcomes: the deliveries done first, in one statement
/// (the most worth writing when time runs short, at `shutdown_now`: a
/// delivery done but not written runs again), then each failure, then the
/// events given back, in one statement. A row's lease is renewed until its
/// outcome is written (one whose outcome waits for the database to come back
/// is not claimed again meanwhile), and no longer once it is: a renewal would
/// find a deleted row gone, and report its lease lost.
async fn write(relay: &Relay, batch: &[Finished]) {
    let inner = &relay.inner;
    let mut done: Vec<&Finished> = Vec::new();
    let mut failures = Vec::new();
    let mut given_back: Vec<&Finished> = Vec::new();
    let mut nudge = false;
    for finished in batch {
        if finished.lease.is_lost() {
            tracing::warn!(
                target: "pyventus",
                seq = finished.claimed.seq,
                "finished after another relay took the event over; leaving it to that relay"
            );
            continue;
        }
        nudge |= finished.claimed.partition_key.is_some();
        match &finished.ended {
            Ended::Ran(Outcome::Done) => done.push(finished),
            Ended::Ran(Outcome::Failed {
                succeeded,
                failed,
                failure,
            }) => failures.push((finished, succeeded, failed, failure)),
            Ended::Abandoned => given_back.push(finished),
        }
    }
    if !done.is_empty() {
        complete(relay, &done).await;
        for finished in &done {
            inner.leases.release(finished.claimed.seq);
        }
    }
    for (finished, succeeded, failed, failure) in failures {
        let claimed = &finished.claimed;
        fail(relay, claimed, &finished.lease, succeeded, failed, failure).await;
        inner.leases.release(claimed.seq);
    }
    if !given_back.is_empty() {
        release(relay, &given_back).await;
    }
    // Every other one (given back, or lost to another relay).
    for finished in batch {
        inner.leases.release(finished.claimed.seq);
    }
    if nudge {
        // The next event of a key may be claimed now.
        inner.nudge.notify_one();
    }
}

/// Removes (or archives) delivered rows, in one statement.
async fn complete(relay: &Relay, done: &[&Finished]) {
    let inner = &relay.inner;
    let seqs: Vec<i64> = done.iter().map(|f| f.claimed.seq).collect();
    let fences: Vec<i64> = done.iter().map(|f| f.claimed.fence).collect();
    let sql = inner.outbox.sql();
    let statement = if inner.config.archive {
        &sql.archive
    } else {
        &sql.complete
    };
    let written = persist(relay, || {
        sqlx::query_scalar::<_, i64>(statement)
            .bind(&seqs)
            .bind(&fences)
            .fetch_all(inner.outbox.pool())
    })
    .await;
    let Some(written) = written else { return };
    let n = written.len() as u64;
    Counters::add(&inner.stats.delivered, n);
    for _ in 0..n {
        WORKER.acked();
    }
    // A row written by nobody: its fence moved on. Counted once, by whoever
    // notices first (the lease keeper may have).
    let stale = done
        .iter()
        .filter(|f| !written.contains(&f.claimed.seq) && f.lease.lose())
        .count() as u64;
    if stale > 0 {
        Counters::add(&inner.stats.leases_lost, stale);
        super::stats::leases_lost(stale);
        tracing::warn!(
            target: "pyventus",
            stale,
            "delivered, but another relay holds these events now (their fence moved on): it settles them"
        );
    }
}

async fn fail(
    relay: &Relay,
    claimed: &Claimed,
    lease: &Lease,
    succeeded: &[String],
    failed: &[String],
    failure: &DeliveryFailure,
) {
    let inner = &relay.inner;
    let config = &inner.config;
    let sql = inner.outbox.sql();
    let reason = failure.to_string();
    let stored = truncated(&reason, STORED_REASON);
    let attempts = u32::try_from(claimed.attempts).unwrap_or(0);
    if failure.is_permanent() || attempts >= config.max_attempts {
        let moved = persist(relay, || {
            sqlx::query(&sql.dead_letter)
                .bind(claimed.seq)
                .bind(claimed.fence)
                .bind(succeeded)
                .bind(failed)
                .bind(failure.label())
                .bind(stored.as_str())
                .execute(inner.outbox.pool())
        })
        .await;
        match moved.map(|r| r.rows_affected()) {
            Some(1) => {
                Counters::add(&inner.stats.dead_lettered, 1);
                WORKER.dead_lettered(failure.label());
                tracing::error!(
                    target: "pyventus",
                    seq = claimed.seq,
                    event = %claimed.event,
                    attempts,
                    "moved to the dead letters: {}",
                    truncated(&reason, 1024)
                );
            }
            Some(_) => lost(relay, claimed, lease, &reason),
            None => {}
        }
        return;
    }
    let delay = Backoff::exponential(config.retry_initial, config.retry_max)
        .delay(attempts.saturating_sub(1));
    let retried = persist(relay, || {
        sqlx::query(&sql.retry)
            .bind(claimed.seq)
            .bind(claimed.fence)
            .bind(succeeded)
            .bind(millis(delay))
            .bind(stored.as_str())
            .execute(inner.outbox.pool())
    })
    .await;
    match retried.map(|r| r.rows_affected()) {
        Some(1) => {
            relay.retry_due(deadline(delay).into_std());
            Counters::add(&inner.stats.retried, 1);
            if matches!(failure, DeliveryFailure::TimedOut(_)) {
                Counters::add(&inner.stats.timed_out, 1);
            }
            WORKER.retried();
            tracing::warn!(
                target: "pyventus",
                seq = claimed.seq,
                event = %claimed.event,
                attempts,
                max_attempts = config.max_attempts,
                retry_in = ?delay,
                "delivery failed, will be retried: {}",
                truncated(&reason, 1024)
            );
        }
        Some(_) => lost(relay, claimed, lease, &reason),
        None => {}
    }
}

/// Gives back events cut short at shutdown, in one statement: due at once,
/// the attempt not counted.
async fn release(relay: &Relay, given_back: &[&Finished]) {
    let inner = &relay.inner;
    let seqs: Vec<i64> = given_back.iter().map(|f| f.claimed.seq).collect();
    let fences: Vec<i64> = given_back.iter().map(|f| f.claimed.fence).collect();
    let released = persist(relay, || {
        sqlx::query_scalar::<_, i64>(&inner.outbox.sql().release)
            .bind(&seqs)
            .bind(&fences)
            .fetch_all(inner.outbox.pool())
    })
    .await;
    let Some(released) = released else { return };
    Counters::add(&inner.stats.abandoned, released.len() as u64);
    if !released.is_empty() {
        tracing::warn!(target: "pyventus", events = ?released, "cut short at shutdown: given back for another relay");
    }
}

fn lost(relay: &Relay, claimed: &Claimed, lease: &Lease, reason: &str) {
    if lease.lose() {
        Counters::add(&relay.inner.stats.leases_lost, 1);
        super::stats::leases_lost(1);
    }
    tracing::warn!(
        target: "pyventus",
        seq = claimed.seq,
        "delivery failed, but another relay holds the event now; it settles it: {}",
        truncated(reason, 1024)
    );
}

/// Runs a settling statement, again while the database is unreachable (a
/// restart) for as long as the lease lasts: until then the row is still this
/// relay's to settle, so its handlers need not run again. `None` if it failed
/// for good, which is logged: the row is claimed again once its lease ends.
async fn persist<T, F>(relay: &Relay, mut statement: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    let inner = &relay.inner;
    let give_up = deadline(inner.config.lease).into_std();
    let mut attempt = 0;
    loop {
        match statement().await {
            Ok(done) => return Some(done),
            Err(err)
                if crate::error::is_transient(&err)
                    && Instant::now() < give_up
                    && !inner.abandon.is_cancelled() =>
            {
                tokio::time::sleep(
                    Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1))
                        .delay(attempt),
                )
                .await;
                attempt += 1;
            }
            Err(err) => {
                tracing::error!(
                    target: "pyventus",
                    relay = %inner.name,
                    "cannot write a delivery's outcome; its events will be claimed again once their lease ends: {}",
                    Error::from(err)
                );
                return None;
            }
        }
    }
}

/// `text` cut to at most about `max` bytes, on a character boundary.
pub(crate) fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// Earliest first, for the retry heap.
pub(crate) type Due = Reverse<Instant>;
