//! The run loop: waits for work (the doorbell's `NOTIFY`, a poll, a retry
//! coming due, a keyed event leaving the outbox), claims a batch for the free
//! slots, hands each event to a delivery task; rides out outages with a
//! capped backoff; drains at shutdown.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::claim::{Claimed, claim};
use super::deliver::{Settings, deliver};
use super::settle::{Ended, Finished, settle};
use super::stats::{self, Counters, WORKER};
use super::{Relay, lease};
use crate::Error;
use crate::schema::check_schema;
use pyventus_core::remote::{Backoff, DeliveryFailure, deadline};

/// The claims in flight: each one's rows, and the slots it took for them.
type Claims = tokio::task::JoinSet<(Result<Vec<Claimed>, Error>, Vec<OwnedSemaphorePermit>)>;

/// How many claims a relay has in flight at most.
const CLAIMERS: usize = 2;

/// Clears the running flag however `run` ends.
struct Running<'a>(&'a Relay);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.inner.running.store(false, Ordering::Release);
    }
}

pub(super) async fn run(relay: &Relay) -> Result<(), Error> {
    let inner = &relay.inner;
    if inner.running.swap(true, Ordering::AcqRel) {
        return Err(Error::AlreadyRunning);
    }
    let _running = Running(relay);
    let mut state = State {
        relay,
        listener: None,
        outage: None,
    };
    // The schema first: a wrong version is the operator's to fix, not retried.
    loop {
        let checked = async {
            let mut conn = inner.outbox.pool().acquire().await?;
            check_schema(&mut conn, inner.outbox.schema()).await
        };
        // A server that does not answer holds the check until the pool's
        // acquire timeout, or for good: a shutdown does not wait for it.
        let checked = tokio::select! {
            checked = checked => checked,
            () = inner.shutdown.cancelled() => return Ok(()),
        };
        match checked {
            Ok(()) => break,
            Err(err) if err.is_transient() => {
                state.unreachable(err).await?;
                if inner.shutdown.is_cancelled() {
                    return Ok(());
                }
            }
            Err(err) => return Err(err),
        }
    }
    tracing::info!(target: "pyventus", relay = %inner.name, schema = %inner.outbox.schema(), "relay started");
    let (finished_tx, finished_rx) = mpsc::unbounded_channel();
    let settler = tokio::spawn(settle(relay.clone(), finished_rx));
    let stop_keeper = CancellationToken::new();
    let keeper = tokio::spawn(lease::keep(relay.clone(), stop_keeper.clone()));
    let slots = Arc::new(Semaphore::new(inner.config.concurrency));
    let in_flight = TaskTracker::new();
    // A dropped run's deliveries go on to their end: their leases too, and
    // no longer.
    let _keeper_after_drop = KeeperAfterDrop {
        stop: stop_keeper.clone(),
        in_flight: in_flight.clone(),
    };
    let claims = state.claim_loop(&slots, &in_flight, &finished_tx).await;
    let deadline = deadline(inner.config.shutdown_deadline);
    let result = match claims {
        Ok(claims) => {
            give_back(relay, claims, &finished_tx).await;
            Ok(())
        }
        Err(err) => Err(err),
    };
    drain(relay, &in_flight, deadline).await;
    drop(finished_tx);
    let settling = inner.config.shutdown_deadline.max(Duration::from_secs(5));
    let mut settler = settler;
    let settled = tokio::select! {
        _ = &mut settler => true,
        () = inner.now.bound(settling) => false,
    };
    if !settled {
        settler.abort();
        tracing::error!(target: "pyventus", "the relay's outcomes were still being written at the deadline; returning without them (their events will be claimed again)");
    }
    stop_keeper.cancel();
    let _ = keeper.await;
    tracing::info!(target: "pyventus", relay = %inner.name, stats = ?relay.stats(), "relay stopped");
    result
}

/// Stops the lease keeper of a `run` dropped midway once the deliveries it
/// started have ended; a run that returns has stopped it already.
struct KeeperAfterDrop {
    stop: CancellationToken,
    in_flight: TaskTracker,
}

impl Drop for KeeperAfterDrop {
    fn drop(&mut self) {
        if self.stop.is_cancelled() {
            return;
        }
        self.in_flight.close();
        let (stop, in_flight) = (self.stop.clone(), self.in_flight.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move {
                in_flight.wait().await;
                stop.cancel();
            })),
            // Dropped outside any runtime: its tasks are going away with it.
            Err(_) => stop.cancel(),
        }
    }
}

struct State<'a> {
    relay: &'a Relay,
    listener: Option<PgListener>,
    /// Since when PostgreSQL has been unreachable, and how many tries failed.
    outage: Option<(Instant, u32)>,
}

impl State<'_> {
    async fn claim_loop(
        &mut self,
        slots: &Arc<Semaphore>,
        in_flight: &TaskTracker,
        finished: &mpsc::UnboundedSender<Finished>,
    ) -> Result<Claims, Error> {
        let inner = &self.relay.inner;
        let config = &inner.config;
        // After a full batch, wait for half a batch of free slots before the
        // next claim (fewer, larger claims); after a partial one, for one.
        let mut want = 1;
        // Up to `CLAIMERS` claims at once while there is a backlog (SKIP
        // LOCKED keeps them apart): one waits for its round trip while the
        // next is sent. Caught up (a partial batch), claim again only once
        // woken.
        let mut claims = Claims::new();
        let mut caught_up = false;
        loop {
            if inner.shutdown.is_cancelled() {
                return Ok(claims);
            }
            self.ensure_listener().await;
            if caught_up && claims.is_empty() {
                self.wait_for_work().await;
                caught_up = false;
                want = 1;
                continue;
            }
            tokio::select! {
                permits = take_slots(slots, want, config.batch), if !caught_up && claims.len() < CLAIMERS => {
                    let held = inner.leases.seqs();
                    let (pool, sql, name) = (inner.outbox.pool().clone(), inner.outbox.sql().clone(), inner.name.clone());
                    let (n, lease) = (permits.len(), config.lease);
                    claims.spawn(async move {
                        (claim(&pool, &sql, n, lease, &name, &held).await, permits)
                    });
                }
                Some(joined) = claims.join_next(), if !claims.is_empty() => {
                    let Ok((claimed, permits)) = joined else { continue };
                    match claimed {
                        Ok(claimed) => {
                            self.reachable();
                            let full = claimed.len() == permits.len();
                            self.start(claimed, permits, in_flight, finished);
                            if full {
                                want = (config.batch / 2).clamp(1, config.concurrency);
                            } else {
                                caught_up = true;
                            }
                        }
                        Err(err) => {
                            drop(permits);
                            self.unreachable(err).await?;
                        }
                    }
                }
                () = inner.shutdown.cancelled() => return Ok(claims),
            }
        }
    }

    /// Starts a delivery task per claimed row, each with its slot.
    fn start(
        &self,
        claimed: Vec<Claimed>,
        mut permits: Vec<OwnedSemaphorePermit>,
        in_flight: &TaskTracker,
        finished: &mpsc::UnboundedSender<Finished>,
    ) {
        let inner = &self.relay.inner;
        if claimed.is_empty() {
            return;
        }
        Counters::add(&inner.stats.claimed, claimed.len() as u64);
        stats::claimed(claimed.iter().map(|c| c.lag));
        if let Some(last) = claimed.last() {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a lag in milliseconds, clamped at zero"
            )]
            let lag = (last.lag.max(0.0) * 1_000.0) as u64;
            inner.stats.last_lag_ms.store(lag, Ordering::Relaxed);
        }
        for row in claimed {
            let Some(slot) = permits.pop() else { break };
            let relay = self.relay.clone();
            let finished = finished.clone();
            let lease = inner.leases.hold(row.seq, row.fence);
            in_flight.spawn(async move {
                let inner = &relay.inner;
                let running = WORKER.received();
                let ended = if i64::from(inner.config.max_attempts) < i64::from(row.attempts) {
                    // Claimed again after attempts that never finished: its
                    // handlers may crash the process. Not run again.
                    Ended::Ran(super::deliver::Outcome::Failed {
                        succeeded: Vec::new(),
                        failed: Vec::new(),
                        failure: DeliveryFailure::TooManyDeliveries {
                            deliveries: u64::try_from(row.attempts).unwrap_or(0),
                            max: inner.config.max_attempts.into(),
                        },
                    })
                } else {
                    let settings = Settings {
                        inbound: &inner.inbound,
                        named: &inner.named,
                        target: &inner.target,
                        timeout: inner.config.handler_timeout,
                    };
                    tokio::select! {
                        biased;
                        outcome = deliver(&row, &settings, lease.clone()) => Ended::Ran(outcome),
                        () = inner.abandon.cancelled() => Ended::Abandoned,
                    }
                };
                drop(running);
                // The settler is gone only once `run` has given up on it.
                let _ = finished.send(Finished {
                    claimed: row,
                    lease,
                    ended,
                    _slot: slot,
                });
            });
        }
    }

    /// Waits for a reason to claim again: a notification, a retry or the next
    /// poll coming due, a keyed event leaving the outbox, or a shutdown.
    async fn wait_for_work(&mut self) {
        let inner = &self.relay.inner;
        let until = self.until_next_due();
        match self.listener.as_mut() {
            Some(listener) => {
                tokio::select! {
                    notified = listener.recv() => {
                        if let Err(err) = notified {
                            tracing::debug!(target: "pyventus", "the relay's LISTEN connection failed (polling until it is back): {err}");
                            self.listener = None;
                        } else {
                            // Several commits, one claim: take what is already
                            // there (`timeout` polls once before its deadline).
                            while let Ok(Ok(Some(_))) =
                                tokio::time::timeout(Duration::ZERO, listener.try_recv()).await
                            {}
                        }
                    }
                    () = tokio::time::sleep(until) => {}
                    () = inner.nudge.notified() => {}
                    () = inner.shutdown.cancelled() => {}
                }
            }
            None => {
                tokio::select! {
                    () = tokio::time::sleep(until) => {}
                    () = inner.nudge.notified() => {}
                    () = inner.shutdown.cancelled() => {}
                }
            }
        }
    }

    /// How long until the next poll, or a retry this relay scheduled.
    fn until_next_due(&self) -> Duration {
        let inner = &self.relay.inner;
        let now = Instant::now();
        let mut due = inner
            .retries_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while due.peek().is_some_and(|Reverse(at)| *at <= now) {
            due.pop();
        }
        due.peek()
            .map_or(inner.config.poll_interval, |Reverse(at)| {
                at.saturating_duration_since(now)
            })
            .min(inner.config.poll_interval)
    }

    /// Listens for the doorbell, if not listening yet (a failure only means
    /// polling until the next try), on a connection of its own.
    async fn ensure_listener(&mut self) {
        if self.listener.is_some() {
            return;
        }
        let inner = &self.relay.inner;
        let listening = async {
            // On a pool of its own: a listener dropped on a silent connection
            // returns it to its pool with no time bound, and would hold a
            // slot of the application's pool for good.
            let own = PgPoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with((*inner.outbox.pool().connect_options()).clone());
            let mut listener = PgListener::connect_with(&own).await?;
            listener.listen(&inner.outbox.sql().channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        // Not answered: for as long as TCP retries, which would hold the
        // claims too. Given up after a lease (its own connection is then
        // dropped, nothing of the relay's waits on it); until the relay
        // listens, it polls.
        let listening = tokio::select! {
            listening = tokio::time::timeout(inner.config.lease, listening) => listening,
            () = inner.shutdown.cancelled() => return,
        };
        match listening {
            Ok(Ok(listener)) => self.listener = Some(listener),
            Ok(Err(err)) => {
                tracing::debug!(target: "pyventus", "the relay cannot LISTEN (polling meanwhile): {err}");
            }
            Err(_) => {
                tracing::debug!(target: "pyventus", "the relay's LISTEN got no answer within the lease (polling meanwhile)");
            }
        }
    }

    /// A statement succeeded: if PostgreSQL had been unreachable, it is back.
    fn reachable(&mut self) {
        if let Some((since, _)) = self.outage.take() {
            let inner = &self.relay.inner;
            Counters::add(&inner.stats.reconnects, 1);
            WORKER.reconnected();
            tracing::info!(target: "pyventus", relay = %inner.name, after = ?since.elapsed(), "PostgreSQL is reachable again");
        }
    }

    /// A statement failed: back off and try again, or give up.
    async fn unreachable(&mut self, err: Error) -> Result<(), Error> {
        let inner = &self.relay.inner;
        self.listener = None;
        let (since, attempts) = self.outage.get_or_insert((Instant::now(), 0));
        let (since, attempt) = (*since, *attempts);
        *attempts += 1;
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
        // From 100 ms, doubling, up to 2 s: back within seconds of the server.
        let pause =
            Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2)).delay(attempt);
        tracing::warn!(
            target: "pyventus",
            relay = %inner.name,
            down_for = ?down,
            retry_in = ?pause,
            "cannot reach PostgreSQL: {err}"
        );
        tokio::select! {
            () = inner.shutdown.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
        }
        Ok(())
    }
}

/// Waits for `want` free slots (fewer if the relay has fewer), then takes
/// every other free one up to `batch`.
async fn take_slots(
    slots: &Arc<Semaphore>,
    want: usize,
    batch: usize,
) -> Vec<OwnedSemaphorePermit> {
    let want = u32::try_from(want.max(1)).unwrap_or(1);
    let first = slots
        .clone()
        .acquire_many_owned(want)
        .await
        .expect("the semaphore is never closed");
    let mut permits: Vec<OwnedSemaphorePermit> = Vec::with_capacity(batch);
    let mut first = first;
    while first.num_permits() > 1 {
        if let Some(one) = first.split(1) {
            permits.push(one);
        }
    }
    permits.push(first);
    while permits.len() < batch {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    permits
}

/// How long a shutdown waits for the claims in flight at least, whatever its
/// deadline: a claim answers in milliseconds, and one dropped unanswered
/// leaves the rows it took leased for a lease.
const CLAIMS_AT_LEAST: Duration = Duration::from_secs(5);

/// At shutdown, gives back what the claims still in flight took: due at
/// once, the attempt not counted. Claims are waited for up to the shutdown
/// deadline, [`CLAIMS_AT_LEAST`] at least, or the grace after
/// `shutdown_now`: one unanswered then (a network gone silent) is dropped,
/// and the rows it took, if any, are claimed again once their lease ends.
async fn give_back(relay: &Relay, mut claims: Claims, finished: &mpsc::UnboundedSender<Finished>) {
    let inner = &relay.inner;
    let limit = inner
        .now
        .bound(inner.config.shutdown_deadline.max(CLAIMS_AT_LEAST));
    tokio::pin!(limit);
    loop {
        let joined = tokio::select! {
            biased;
            joined = claims.join_next() => joined,
            () = &mut limit => {
                tracing::warn!(
                    target: "pyventus",
                    relay = %inner.name,
                    unanswered = claims.len(),
                    "claims still unanswered at shutdown: dropped (the rows they took are claimed again once their lease ends)"
                );
                return; // dropping `claims` aborts them
            }
        };
        let Some(joined) = joined else { return };
        let Ok((Ok(claimed), mut permits)) = joined else {
            continue;
        };
        for row in claimed {
            let Some(slot) = permits.pop() else { break };
            let lease = inner.leases.hold(row.seq, row.fence);
            let _ = finished.send(Finished {
                claimed: row,
                lease,
                ended: Ended::Abandoned,
                _slot: slot,
            });
        }
    }
}

/// Waits for the deliveries in flight up to the shutdown deadline, then cuts
/// the rest short (their events are given back).
async fn drain(relay: &Relay, in_flight: &TaskTracker, deadline: tokio::time::Instant) {
    let inner = &relay.inner;
    in_flight.close();
    if tokio::time::timeout_at(deadline, in_flight.wait())
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        target: "pyventus",
        relay = %inner.name,
        running = in_flight.len(),
        deadline = ?inner.config.shutdown_deadline,
        "shutdown deadline passed: cutting the deliveries in flight short; their events are given back"
    );
    inner.abandon.cancel();
    if tokio::time::timeout(Duration::from_secs(5), in_flight.wait())
        .await
        .is_err()
    {
        tracing::error!(target: "pyventus", "deliveries still running after the shutdown deadline; returning without them");
    }
}
