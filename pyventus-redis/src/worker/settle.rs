//! Settling a delivery: acknowledge it, leave it for a retry after a backoff,
//! move it to the dead letters, or leave it pending for another worker.
//!
//! Only the entry's holder settles it. A worker whose lease was lost (another
//! worker claimed the entry while this one stalled) settles nothing, whatever
//! its handlers did: the new holder acknowledges, retries or dead-letters the
//! entry when its own run ends. Each step but the acknowledgement checks, in
//! the same script, that this consumer still holds the entry, so a loss not
//! noticed yet cannot take the entry back either. (An acknowledgement racing
//! such a loss is harmless: the handlers did succeed once.)
//!
//! Acknowledgements go in batches, as a database commits a group: a delivery
//! whose handlers succeeded adds its entry to the next `XACK`; the first to
//! find none in flight starts a task that sends it, and goes on sending what
//! the others added meanwhile until none is left. That task runs on
//! pyventus's own runtime, not on a thread a handler may block. So an entry is still acknowledged only after
//! its handlers ran, at once when the worker is quiet, and under load one
//! command (one write, one reply) acknowledges many: a kill between the two
//! leaves the entries pending, delivered again, as before.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyventus_core::remote::DeliveryFailure;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::TaskTracker;

use super::stats::Counters;
use super::{METRICS, Worker};
use crate::delivery::Lease;
use crate::stream::{DeadLetterArgs, Taken};
use crate::{Error, truncated};

/// How much of a failure's reason a log line keeps.
const LOGGED_REASON: usize = 1024;

/// How a delivery ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Done,
    Failed(DeliveryFailure),
    /// Cut short at the shutdown deadline.
    Abandoned,
}

impl Outcome {
    fn kind(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Abandoned => "cut short",
        }
    }
}

/// Settles a delivery; `slot` is freed before an acknowledgement (the handlers
/// are done: the next batch may start while it goes), after anything else.
pub(super) async fn settle(
    worker: &Worker,
    taken: &Taken,
    lease: &Lease,
    outcome: Outcome,
    slot: OwnedSemaphorePermit,
) {
    let inner = &worker.inner;
    let (id, deliveries) = (taken.id(), taken.deliveries);
    if lease.is_lost() {
        tracing::warn!(
            target: "pyventus",
            outcome = %outcome.kind(),
            "finished after another worker took the entry over; leaving it to that worker"
        );
        return;
    }
    match outcome {
        Outcome::Done => {
            drop(slot);
            inner.acks.ack(worker, id);
        }
        Outcome::Abandoned => {
            let ids = [id];
            let released = persist(worker, &ids, || {
                inner.stream.release(
                    &inner.consumer,
                    &ids,
                    Duration::ZERO,
                    inner.config.visibility,
                )
            })
            .await;
            if released == Some(1) {
                Counters::add(&inner.stats.abandoned, 1);
                tracing::warn!(target: "pyventus", "cut short at shutdown: left pending for another worker");
            }
        }
        Outcome::Failed(failure)
            if failure.is_permanent() || deliveries >= inner.config.max_deliveries =>
        {
            dead_letter(worker, taken, &failure).await;
        }
        Outcome::Failed(failure) => retry_later(worker, id, deliveries, &failure).await,
    }
}

/// The entries whose handlers succeeded, waiting for the next `XACK`, and the
/// task sending it.
#[derive(Debug, Default)]
pub(super) struct Acks {
    next: Mutex<Batch>,
    /// The task sending `XACK`s, while there is one: on pyventus's own
    /// runtime, so that a handler blocking a thread of the worker's runtime
    /// (an inline synchronous one, an async one that hogs it) holds up no
    /// acknowledgement of the other deliveries.
    flushers: TaskTracker,
}

#[derive(Debug, Default)]
struct Batch {
    ids: Vec<String>,
    /// A task is sending an `XACK`, and will send what is added meanwhile.
    sending: bool,
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.next.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Acknowledges `id`: in the `XACK` the sending task sends next, starting
    /// one if none is running.
    fn ack(&self, worker: &Worker, id: &str) {
        {
            let mut next = self.lock();
            next.ids.push(id.to_owned());
            if next.sending {
                return;
            }
            next.sending = true;
        }
        let worker = worker.clone();
        let flush = async move { worker.inner.acks.flush(&worker).await };
        drop(pyventus_core::runtime::spawn_on_io_runtime(
            self.flushers.track_future(flush),
        ));
    }

    /// Sends what the deliveries added until none is left.
    async fn flush(&self, worker: &Worker) {
        // Dropped mid-send (the process exiting), it lets the next delivery
        // start another; what it held stays pending, delivered again.
        let mut sender = Sender(Some(self));
        // The deliveries ready to finish now (the rest of a batch) join this
        // `XACK`.
        tokio::task::yield_now().await;
        loop {
            let ids = {
                let mut next = self.lock();
                if next.ids.is_empty() {
                    // In the same step as the look: an id added after it
                    // finds no sender, and starts one.
                    next.sending = false;
                    sender.0 = None;
                    return;
                }
                std::mem::take(&mut next.ids)
            };
            let inner = &worker.inner;
            if persist(worker, &ids, || inner.stream.ack(&ids))
                .await
                .is_some()
            {
                Counters::add(&inner.stats.processed, ids.len() as u64);
                for _ in &ids {
                    METRICS.acked();
                }
            }
        }
    }

    /// Waits (until `limit` completes) for the acknowledgements of the
    /// deliveries that have finished: at shutdown, once none is in flight.
    pub(super) async fn settled(&self, limit: impl Future<Output = ()>) {
        self.flushers.close();
        let sent = tokio::select! {
            () = self.flushers.wait() => true,
            () = limit => false,
        };
        if !sent {
            tracing::error!(target: "pyventus", "acknowledgements still being sent after the shutdown; returning without them (their entries stay pending, delivered again)");
        }
        self.flushers.reopen();
    }
}

/// Marks the batch as no longer being sent if its sender is dropped.
struct Sender<'a>(Option<&'a Acks>);

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        if let Some(acks) = self.0 {
            acks.lock().sending = false;
        }
    }
}

/// Leaves a failed entry pending, claimable once its backoff has passed.
async fn retry_later(worker: &Worker, id: &str, deliveries: u64, failure: &DeliveryFailure) {
    let inner = &worker.inner;
    let config = &inner.config;
    let attempt = u32::try_from(deliveries.saturating_sub(1)).unwrap_or(u32::MAX);
    let delay = config.retry_backoff.delay(attempt);
    let ids = [id];
    let released = persist(worker, &ids, || {
        inner
            .stream
            .release(&inner.consumer, &ids, delay, config.visibility)
    })
    .await;
    match released {
        Some(1) => {
            worker.push_retry(Instant::now() + delay);
            Counters::add(&inner.stats.retried, 1);
            METRICS.retried();
            tracing::warn!(
                target: "pyventus",
                deliveries,
                max_deliveries = config.max_deliveries,
                retry_in = ?delay,
                "delivery failed, will be retried: {}",
                truncated(&failure.to_string(), LOGGED_REASON)
            );
        }
        Some(_) => lost(failure),
        None => {}
    }
}

/// Moves the entry to the dead letters, acknowledging it in the same step.
async fn dead_letter(worker: &Worker, taken: &Taken, failure: &DeliveryFailure) {
    let inner = &worker.inner;
    let reason = failure.to_string();
    let fields = taken.entry.as_ref().map_or(&[][..], |entry| &entry.fields);
    let letter = DeadLetterArgs {
        entry_id: taken.id(),
        fields,
        reason: &reason,
        deliveries: taken.deliveries,
        failed_at: now_millis(),
    };
    let moved = persist(worker, &[taken.id()], || {
        inner
            .stream
            .dead_letter(&inner.consumer, &letter, inner.config.dead_cap)
    })
    .await;
    match moved {
        Some(Some(trimmed)) => {
            Counters::add(&inner.stats.dead_lettered, 1);
            METRICS.dead_lettered(failure.label());
            tracing::error!(
                target: "pyventus",
                deliveries = taken.deliveries,
                "moved to the dead letters: {}",
                truncated(&reason, LOGGED_REASON)
            );
            if trimmed > 0 {
                tracing::warn!(
                    target: "pyventus",
                    trimmed,
                    cap = inner.config.dead_cap,
                    "the oldest dead letters were trimmed to keep the dead-letter stream under its cap"
                );
            }
        }
        Some(None) => lost(failure),
        None => {}
    }
}

fn lost(failure: &DeliveryFailure) {
    tracing::warn!(
        target: "pyventus",
        "delivery failed, but another worker holds the entry now; it settles it: {}",
        truncated(&failure.to_string(), LOGGED_REASON)
    );
}

/// The entries `ids`, as a settling command's failure names them: every one.
fn described(ids: &[impl AsRef<str>]) -> String {
    match ids {
        [id] => format!("the entry {}; it stays", id.as_ref()),
        ids => {
            let all: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
            format!("the {} entries {}; they stay", ids.len(), all.join(", "))
        }
    }
}

/// Runs a settling command, again after a short pause if Redis blinked (up to
/// three tries); `None` if it failed, which is logged with every entry it was
/// for: they stay pending, to be delivered again.
async fn persist<T, F: Future<Output = Result<T, Error>>>(
    worker: &Worker,
    ids: &[impl AsRef<str>],
    mut command: impl FnMut() -> F,
) -> Option<T> {
    const TRIES: u32 = 3;
    let backoff = worker.inner.config.reconnect_backoff;
    for attempt in 0..TRIES {
        match command().await {
            Ok(done) => return Some(done),
            Err(err) if err.is_transient() && attempt + 1 < TRIES => {
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
            Err(err) => {
                tracing::error!(
                    target: "pyventus",
                    "cannot settle {} pending and will be delivered again: {err}",
                    described(ids)
                );
                return None;
            }
        }
    }
    None
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
