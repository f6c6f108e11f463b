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
//! whose handlers succeeded adds its entry to the next `XACK`, which the task
//! running its read's deliveries sends whenever none of them is ready to go
//! on (once per read when the handlers are quick, as a hand-written consumer
//! does), on the worker's own connection: no other runtime is woken for it.
//! That task may be held up: a handler blocking its thread (an inline
//! synchronous one, an async one hogging it), or its `XACK` waiting behind
//! one. So a rescuer on pyventus's own runtime, with the lease keeper's
//! connection, sends what has waited unsent for `RESCUE_AFTER`, or
//! unanswered for `RESEND_AFTER` (acknowledging an entry twice is harmless,
//! and it is counted once); it ticks only while acknowledgements wait or
//! fly. An entry is still acknowledged only after its handlers ran: a kill
//! before its `XACK` leaves it pending, delivered again, as before.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyventus_core::remote::DeliveryFailure;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::background::Background;
use super::stats::Counters;
use super::{METRICS, Worker};
use crate::delivery::Lease;
use crate::stream::{DeadLetterArgs, Stream, Taken};
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
            inner.acks.ack(id);
        }
        // Boxed, the rare outcomes' commands leave a delivery's future small
        // (a task node per delivery holds it; docs/benchmarks.md).
        Outcome::Abandoned => Box::pin(abandon(worker, id)).await,
        Outcome::Failed(failure)
            if failure.is_permanent() || deliveries >= inner.config.max_deliveries =>
        {
            Box::pin(dead_letter(worker, taken, &failure)).await;
        }
        Outcome::Failed(failure) => Box::pin(retry_later(worker, id, deliveries, &failure)).await,
    }
}

/// Leaves an entry cut short at shutdown pending for another worker, at once.
async fn abandon(worker: &Worker, id: &str) {
    let inner = &worker.inner;
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

/// How long a finished entry's acknowledgement may wait, unsent, before the
/// rescuer sends it: its batch's task is held up (a handler blocking its
/// thread). Also how often the rescuer looks, while some wait or fly.
const RESCUE_AFTER: Duration = Duration::from_millis(20);

/// How long an `XACK` may go unanswered before the rescuer sends its entries
/// again: it may wait behind a handler blocking the thread its connection's
/// task was woken on. Longer than a round trip under load, so that a slow
/// Redis does not get every acknowledgement twice.
const RESEND_AFTER: Duration = Duration::from_millis(200);

/// The entries whose handlers succeeded, waiting for the next `XACK`, and the
/// `XACK`s under way.
#[derive(Debug, Default)]
pub(super) struct Acks {
    state: Mutex<AckState>,
    /// Wakes the rescuer when acknowledgements start waiting.
    waiting: Notify,
}

#[derive(Debug, Default)]
struct AckState {
    ids: Vec<String>,
    /// When the first of `ids` was added.
    since: Option<Instant>,
    /// The `XACK`s sent and not answered yet: the rescuer sends those held up
    /// too long again (acknowledging twice is harmless).
    flights: Vec<Flight>,
    /// The number of the next flight.
    next_flight: u64,
    /// The rescuer is watching; when not, the next acknowledgement wakes it.
    watched: bool,
}

/// One `XACK` under way.
#[derive(Debug)]
struct Flight {
    number: u64,
    sent: Instant,
    ids: Arc<[String]>,
}

impl AckState {
    /// Removes flight `number`; whether it was still there (not rescued).
    fn land(&mut self, number: u64) -> bool {
        let Some(at) = self.flights.iter().position(|f| f.number == number) else {
            return false;
        };
        self.flights.swap_remove(at);
        true
    }
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Acknowledges `id`: in the next `XACK` its batch's task sends, or the
    /// rescuer if that task is held up.
    fn ack(&self, id: &str) {
        let wake = {
            let mut state = self.lock();
            if state.ids.is_empty() {
                state.since = Some(Instant::now());
            }
            state.ids.push(id.to_owned());
            !std::mem::replace(&mut state.watched, true)
        };
        if wake {
            self.waiting.notify_one();
        }
    }

    /// Whether acknowledgements wait for an `XACK`.
    pub(super) fn waiting(&self) -> bool {
        !self.lock().ids.is_empty()
    }

    /// Sends the acknowledgements waiting, in one `XACK` on the worker's
    /// connection: what a batch's task does whenever none of its deliveries
    /// is ready to go on.
    pub(super) async fn send(&self, worker: &Worker) {
        let Some((number, ids)) = self.take_off() else {
            return;
        };
        let acked = xack(worker, &worker.inner.stream, &ids).await;
        // Counted by whoever lands the flight: this task, or the rescuer that
        // took it over.
        if self.lock().land(number) && acked {
            acknowledged(worker, ids.len());
        }
    }

    /// Takes the acknowledgements waiting into a new flight: its number, and
    /// its ids.
    fn take_off(&self) -> Option<(u64, Arc<[String]>)> {
        let mut state = self.lock();
        if state.ids.is_empty() {
            return None;
        }
        state.since = None;
        let ids: Arc<[String]> = std::mem::take(&mut state.ids).into();
        let number = state.next_flight;
        state.next_flight += 1;
        state.flights.push(Flight {
            number,
            sent: Instant::now(),
            ids: ids.clone(),
        });
        Some((number, ids))
    }

    /// Takes what has waited too long: the ids no one sent for
    /// `RESCUE_AFTER`, and the flights not answered for `RESEND_AFTER`.
    /// `None` when nothing waits or flies any more (the rescuer then sleeps
    /// until the next acknowledgement).
    fn overdue(&self) -> Option<Vec<String>> {
        let now = Instant::now();
        let mut state = self.lock();
        let mut rescued = Vec::new();
        if state
            .since
            .is_some_and(|since| now.duration_since(since) >= RESCUE_AFTER)
        {
            state.since = None;
            rescued = std::mem::take(&mut state.ids);
        }
        state.flights.retain(|flight| {
            let late = now.duration_since(flight.sent) >= RESEND_AFTER;
            if late {
                rescued.extend(flight.ids.iter().cloned());
            }
            !late
        });
        if rescued.is_empty() && state.ids.is_empty() && state.flights.is_empty() {
            state.watched = false;
            return None;
        }
        Some(rescued)
    }

    /// Sends, on pyventus's own runtime and connection, the acknowledgements
    /// held up (see [`overdue`](Self::overdue)): so a handler blocking a
    /// thread of the worker's runtime (an inline synchronous one, an async
    /// one hogging it) holds up no acknowledgement of the other deliveries.
    /// It watches only while acknowledgements wait or fly, until `stop`.
    async fn rescue(&self, worker: &Worker, stop: &CancellationToken) {
        let inner = &worker.inner;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.waiting.notified() => {}
            }
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RESCUE_AFTER) => {}
                }
                let Some(ids) = self.overdue() else { break };
                if ids.is_empty() {
                    continue;
                }
                let acked = tokio::select! {
                    acked = xack(worker, &inner.keeper_stream, &ids) => acked,
                    () = stop.cancelled() => {
                        // Sent at shutdown with the rest.
                        self.lock().ids.extend(ids);
                        return;
                    }
                };
                if acked {
                    acknowledged(worker, ids.len());
                }
            }
        }
    }

    /// Takes every acknowledgement waiting or flying, at the end of a run.
    fn leftovers(&self) -> Vec<String> {
        let mut state = self.lock();
        state.since = None;
        let flights = std::mem::take(&mut state.flights);
        let mut ids = std::mem::take(&mut state.ids);
        ids.extend(flights.iter().flat_map(|f| f.ids.iter().cloned()));
        ids
    }

    /// Clears the watch, as a run's rescuer starts: one of an earlier run,
    /// stopped or dropped while it watched, left it set, and this run's first
    /// acknowledgement must wake the new one.
    fn unwatched(&self) {
        self.lock().watched = false;
    }

    /// Sends what is left at shutdown, once the deliveries and the rescuer
    /// have ended (until `limit` completes).
    pub(super) async fn settled(&self, worker: &Worker, limit: impl Future<Output = ()>) {
        let ids = self.leftovers();
        if ids.is_empty() {
            return;
        }
        let sent = tokio::select! {
            acked = xack(worker, &worker.inner.stream, &ids) => {
                if acked {
                    acknowledged(worker, ids.len());
                }
                true
            }
            () = limit => false,
        };
        if !sent {
            tracing::error!(target: "pyventus", "acknowledgements still being sent after the shutdown; returning without them (their entries stay pending, delivered again)");
        }
    }
}

/// Starts the rescuer of the worker's held-up acknowledgements, on
/// pyventus's own runtime, until the returned task is stopped.
pub(super) fn start_rescuer(worker: &Worker) -> Background {
    worker.inner.acks.unwatched();
    let worker = worker.clone();
    Background::start("the acknowledgements' rescuer", move |stop| async move {
        worker.inner.acks.rescue(&worker, &stop).await;
    })
}

/// Sends one `XACK` of `ids` on `stream` (see [`persist`]): whether Redis
/// took it.
async fn xack(worker: &Worker, stream: &Stream, ids: &[String]) -> bool {
    persist(worker, ids, || stream.ack(ids)).await.is_some()
}

/// Counts `n` entries acknowledged.
fn acknowledged(worker: &Worker, n: usize) {
    Counters::add(&worker.inner.stats.processed, n as u64);
    for _ in 0..n {
        METRICS.acked();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(limit: Duration) {
        std::thread::sleep(limit + Duration::from_millis(5));
    }

    #[test]
    fn the_rescuer_takes_what_waited_too_long_unsent_or_unanswered() {
        let acks = Acks::default();
        acks.ack("1-0");
        acks.ack("2-0");
        let (number, flying) = acks.take_off().expect("two waiting");
        assert_eq!(&flying[..], ["1-0", "2-0"]);
        assert!(!acks.waiting());
        acks.ack("3-0");
        // Too early: nothing taken, but still watched.
        assert_eq!(acks.overdue(), Some(Vec::new()));
        pause(RESCUE_AFTER);
        // Unsent past its limit; the flight is not late yet.
        assert_eq!(acks.overdue(), Some(vec!["3-0".to_owned()]));
        pause(RESEND_AFTER);
        assert_eq!(
            acks.overdue(),
            Some(vec!["1-0".to_owned(), "2-0".to_owned()])
        );
        // The flight's own answer comes late: the rescuer counts it, not its sender.
        assert!(!acks.lock().land(number));
        // Nothing waits or flies: the rescuer sleeps, and the next
        // acknowledgement wakes it.
        assert_eq!(acks.overdue(), None);
        assert!(!acks.lock().watched);
        acks.ack("4-0");
        assert!(acks.lock().watched);
    }

    #[test]
    fn a_flight_answered_in_time_is_its_senders() {
        let acks = Acks::default();
        acks.ack("1-0");
        let (number, _) = acks.take_off().expect("one waiting");
        assert_eq!(acks.take_off(), None);
        assert!(acks.lock().land(number));
        pause(RESEND_AFTER);
        assert_eq!(acks.overdue(), None);
    }

    #[test]
    fn a_run_leaves_nothing_for_the_next_but_a_rescuer_to_wake() {
        let acks = Acks::default();
        acks.ack("1-0");
        let _flying = acks.take_off();
        acks.ack("2-0");
        assert_eq!(acks.leftovers(), ["2-0", "1-0"]);
        assert!(!acks.waiting());
        // The next run's first acknowledgement wakes its rescuer.
        acks.unwatched();
        assert!(!acks.lock().watched);
        acks.ack("3-0");
        assert!(acks.lock().watched);
        assert_eq!(acks.overdue(), Some(Vec::new()));
    }
}
