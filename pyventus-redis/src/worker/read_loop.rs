//! The read loop: takes entries for the free slots, from the pending list
//! (entries idle past the visibility timeout, retries whose backoff ended)
//! then from the stream, and hands each to a delivery task; reconnects when
//! Redis goes away; drains at shutdown.
//!
//! Reclaiming sweeps the whole pending list, following `XAUTOCLAIM`'s cursor
//! from pass to pass: each pass looks at ten entries per free slot, so with a
//! cursor that always restarted at the beginning, an abandoned entry behind
//! enough live ones was never reached. A sweep starts every half visibility
//! timeout and whenever a retry this worker scheduled becomes due, and trims
//! the entries the group is done with when it ends.

use std::cmp::Reverse;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{Fuse, FusedFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use redis::aio::MultiplexedConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::execute::deliver;
use super::lease::start_keeper;
use super::settle::start_rescuer;
use super::stats::Counters;
use super::{Health, Worker};
use crate::Error;
use crate::connection::{self, Fault};
use crate::stream::Taken;

/// Where a sweep cursor starts.
const START: &str = "0-0";

pub(super) async fn run(worker: &Worker) -> Result<(), Error> {
    let inner = &worker.inner;
    if inner.running.swap(true, Ordering::AcqRel) {
        return Err(Error::AlreadyRunning);
    }
    let _running = RunGuard(&inner.running);
    let in_flight = TaskTracker::new();
    // A dropped run's deliveries go on to their end: their leases too.
    let keeper = start_keeper(worker).lasting_while(&in_flight);
    let rescuer = start_rescuer(worker);
    let slots = Arc::new(Semaphore::new(inner.config.concurrency));
    tracing::info!(
        target: "pyventus",
        queue = %worker.queue(),
        consumer = %inner.consumer,
        concurrency = inner.config.concurrency,
        "worker started"
    );
    let result = Loop::new(worker).run(&slots, &in_flight).await;
    worker.set_health(Health::Stopping);
    cut_short(worker, &in_flight).await;
    keeper.stop().await;
    // What finished is acknowledged before the loop returns.
    rescuer.stop().await;
    let inner = &worker.inner;
    let limit = inner.now.bound(inner.config.timeouts.response * 4);
    inner.acks.settled(worker, limit).await;
    worker.set_health(if result.is_ok() {
        Health::Stopped
    } else {
        Health::Failed
    });
    match &result {
        Ok(()) => {
            tracing::info!(target: "pyventus", queue = %worker.queue(), consumer = %inner.consumer, stats = ?worker.stats(), "worker stopped");
        }
        Err(err) => {
            tracing::error!(target: "pyventus", queue = %worker.queue(), consumer = %inner.consumer, stats = ?worker.stats(), "worker stopped: {err}");
        }
    }
    result
}

/// Marks the worker as not running when `run` returns or is dropped.
struct RunGuard<'a>(&'a AtomicBool);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The loop's state between batches.
struct Loop<'w> {
    worker: &'w Worker,
    /// The blocking reads' connection, once open.
    reader: Option<MultiplexedConnection>,
    /// Since when Redis has been unreachable, and how many attempts failed.
    outage: Option<(Instant, u32)>,
    /// The sweep in progress, if any, and when the next one starts.
    cursor: Option<String>,
    next_sweep: Instant,
}

impl<'w> Loop<'w> {
    fn new(worker: &'w Worker) -> Self {
        Loop {
            worker,
            reader: None,
            outage: None,
            cursor: None,
            next_sweep: Instant::now(),
        }
    }

    async fn run(mut self, slots: &Arc<Semaphore>, in_flight: &TaskTracker) -> Result<(), Error> {
        let inner = &self.worker.inner;
        loop {
            let permits = tokio::select! {
                biased;
                () = inner.shutdown.cancelled() => return Ok(()),
                permits = take_slots(slots) => permits,
            };
            // Not cut short by a shutdown: entries Redis handed over would stay
            // pending, unseen, for a visibility timeout. A read blocks for
            // `block` at most, plus the response timeout when Redis does not
            // answer; `shutdown_now` leaves it a moment, no more.
            let batch = tokio::select! {
                batch = self.next_batch(permits.len()) => batch,
                () = inner.now.grace_ended() => return Ok(()),
            };
            match batch {
                Ok(taken) => {
                    self.reachable();
                    if taken.is_empty() {
                        continue;
                    }
                    let worker = self.worker.clone();
                    in_flight.spawn(async move { run_batch(worker, taken, permits).await });
                }
                Err(err) => {
                    drop(permits);
                    self.unreachable(err).await?;
                }
            }
        }
    }

    /// Up to `count` entries: reclaimed ones first when a sweep is due, else
    /// new ones, waiting for them up to the block time.
    async fn next_batch(&mut self, count: usize) -> Result<Vec<Taken>, Error> {
        let inner = &self.worker.inner;
        let config = &inner.config;
        if self.reader.is_none() {
            self.reader = Some(self.connect().await?);
        }
        if self.sweep_due() {
            let cursor = self.cursor.take().unwrap_or_else(|| START.to_owned());
            let claimed = inner
                .stream
                .claim_idle(&inner.consumer, config.visibility, &cursor, count)
                .await?;
            if !claimed.deleted.is_empty() {
                tracing::warn!(
                    target: "pyventus",
                    queue = %self.worker.queue(),
                    entries = ?claimed.deleted,
                    "pending entries were deleted from the stream before they were handled"
                );
            }
            if claimed.cursor == START {
                self.next_sweep = Instant::now() + config.visibility / 2;
                self.trim().await;
            } else {
                self.cursor = Some(claimed.cursor);
            }
            if !claimed.taken.is_empty() {
                Counters::add(&inner.stats.reclaimed, claimed.taken.len() as u64);
                return Ok(claimed.taken);
            }
            if self.cursor.is_some() {
                // More of the pending list to see before blocking on new entries.
                return Ok(Vec::new());
            }
        }
        let block = config
            .block
            .min(self.until_next_due())
            .max(Duration::from_millis(1));
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        inner
            .stream
            .read_new(reader, &inner.consumer, count, block)
            .await
    }

    /// Opens the blocking reads' connection, and recreates the consumer group
    /// if Redis lost it.
    async fn connect(&self) -> Result<MultiplexedConnection, Error> {
        let inner = &self.worker.inner;
        let reader =
            connection::blocking_reader(&inner.client, inner.config.timeouts, inner.config.block)
                .await?;
        self.ensure_group().await?;
        Ok(reader)
    }

    async fn ensure_group(&self) -> Result<(), Error> {
        let inner = &self.worker.inner;
        if inner.stream.ensure_group().await? {
            Counters::add(&inner.stats.groups_recreated, 1);
            tracing::warn!(
                target: "pyventus",
                queue = %self.worker.queue(),
                "the consumer group had vanished (Redis restarted without its data, or it was \
                 destroyed): created it again; entries and pending deliveries Redis held before \
                 may have been lost with it"
            );
        }
        Ok(())
    }

    /// Whether to claim idle entries now: a sweep is in progress, the next is
    /// due, or a retry this worker scheduled is.
    fn sweep_due(&mut self) -> bool {
        let now = Instant::now();
        let mut due = self.cursor.is_some() || now >= self.next_sweep;
        let mut retries = self
            .worker
            .inner
            .retries_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while retries.peek().is_some_and(|Reverse(at)| *at <= now) {
            retries.pop();
            due = true;
        }
        due
    }

    /// How long until the next sweep or scheduled retry.
    fn until_next_due(&self) -> Duration {
        let retries = self
            .worker
            .inner
            .retries_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = retries
            .peek()
            .map_or(self.next_sweep, |Reverse(at)| (*at).min(self.next_sweep));
        next.saturating_duration_since(Instant::now())
    }

    /// Trims the entries the group is done with (a failure only delays it).
    async fn trim(&self) {
        if let Err(err) = self.worker.inner.stream.trim_handled().await {
            tracing::debug!(target: "pyventus", "cannot trim handled entries: {err}");
        }
    }

    /// A round trip succeeded: if Redis had been unreachable, it is back.
    fn reachable(&mut self) {
        if let Some((since, _)) = self.outage.take() {
            Counters::add(&self.worker.inner.stats.reconnects, 1);
            super::METRICS.reconnected();
            tracing::info!(
                target: "pyventus",
                queue = %self.worker.queue(),
                after = ?since.elapsed(),
                "Redis is reachable again"
            );
        }
        self.worker.set_health(Health::Ready);
    }

    /// A command failed: recreate the group, back off and reconnect, or stop
    /// (credentials refused, or unreachable past the give-up).
    async fn unreachable(&mut self, err: Error) -> Result<(), Error> {
        let inner = &self.worker.inner;
        let fault = match &err {
            Error::Redis(redis) => connection::fault(redis),
            Error::Authentication(_) => Fault::Refused,
            _ => Fault::Other,
        };
        match fault {
            Fault::Refused => return Err(err),
            Fault::NoGroup => match self.ensure_group().await {
                Ok(()) => return Ok(()),
                Err(again) => return Box::pin(self.unreachable(again)).await,
            },
            Fault::Transient | Fault::Other => {}
        }
        self.reader = None;
        self.cursor = None;
        let (since, attempts) = self.outage.get_or_insert((Instant::now(), 0));
        let (since, attempt) = (*since, *attempts);
        *attempts += 1;
        self.worker.set_health(Health::Reconnecting {
            since,
            attempts: *attempts,
        });
        let down = since.elapsed();
        if inner
            .config
            .give_up_after
            .is_some_and(|limit| down >= limit)
        {
            return Err(Error::GaveUp {
                after: down,
                source: Box::new(err),
            });
        }
        let pause = inner.config.reconnect_backoff.delay(attempt);
        tracing::warn!(
            target: "pyventus",
            queue = %self.worker.queue(),
            down_for = ?down,
            retry_in = ?pause,
            "cannot reach Redis: {err}"
        );
        tokio::select! {
            () = inner.shutdown.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
        }
        Ok(())
    }
}

/// The slots for the next batch: waits for one, then takes every other free one.
async fn take_slots(slots: &Arc<Semaphore>) -> Vec<OwnedSemaphorePermit> {
    let first = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let mut permits = vec![first];
    while let Ok(permit) = slots.clone().try_acquire_owned() {
        permits.push(permit);
    }
    permits
}

/// Runs one read's deliveries, concurrently in one task: a task spawned per
/// entry cost more than a trivial handler (docs/benchmarks.md). Each frees its
/// slot once its handlers ended, so the next batch fills it. Whenever none is
/// ready to go on, the task sends the acknowledgements waiting in one `XACK`,
/// on the worker's own connection (no other runtime woken; the deliveries go
/// on meanwhile): as the floor of a hand-written consumer does, once per read
/// when the handlers are quick.
async fn run_batch(worker: Worker, taken: Vec<Taken>, permits: Vec<OwnedSemaphorePermit>) {
    let mut running = taken
        .into_iter()
        .zip(permits)
        .map(|(taken, permit)| {
            let worker = worker.clone();
            async move { deliver(worker, taken, permit).await }
        })
        .collect::<FuturesUnordered<_>>();
    let acks = &worker.inner.acks;
    let mut finished = false;
    let mut sending = pin!(Fuse::terminated());
    loop {
        tokio::select! {
            biased;
            next = running.next(), if !finished => finished = next.is_none(),
            () = &mut sending, if !sending.is_terminated() => {}
            // Only when no delivery is ready: the branches above come first.
            () = std::future::ready(()), if sending.is_terminated() && acks.waiting() => {
                sending.set(acks.send(&worker).fuse());
            }
            else => return,
        }
    }
}

/// Waits for the deliveries in flight up to the shutdown deadline, then cuts
/// the rest short.
async fn cut_short(worker: &Worker, in_flight: &TaskTracker) {
    let inner = &worker.inner;
    in_flight.close();
    let finished = tokio::select! {
        () = in_flight.wait() => true,
        () = inner.now.bound(inner.config.shutdown_deadline) => false,
    };
    if finished {
        return;
    }
    if !inner.now.is_called() {
        tracing::warn!(
            target: "pyventus",
            queue = %worker.queue(),
            running = in_flight.len(),
            deadline = ?inner.config.shutdown_deadline,
            "shutdown deadline passed: cutting the deliveries in flight short; their entries stay pending for another worker"
        );
        inner.abandon.cancel();
    }
    // Each leaves its entry with one command, within the response timeout.
    let settling = inner.config.timeouts.response * 4;
    let settled = tokio::select! {
        () = in_flight.wait() => true,
        () = inner.now.bound(settling) => false,
    };
    if !settled {
        tracing::error!(target: "pyventus", "deliveries still settling at the end of the shutdown; returning without them (their entries stay pending, delivered again)");
    }
}
