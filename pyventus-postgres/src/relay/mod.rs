//! `Relay`: takes committed events from the outbox and delivers them.
//!
//! The relay's jobs live in files named for them: `builder` (settings and
//! their checks), `run_loop` (waking, claiming, reconnecting, draining),
//! `claim` (the claimed rows), `deliver` (running one delivery), `settle`
//! (writing outcomes under the fence), `lease` (keeping the events in
//! flight), `stats`. Why a delivery failed, the backoff and the run of one
//! event's handlers are the worker pipeline every broker shares
//! (`pyventus_core::remote`: `DeliveryFailure`, `Backoff`, `Inbound`).

mod builder;
mod claim;
mod deliver;
mod lease;
mod run_loop;
mod settle;
mod stats;

use std::collections::BinaryHeap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pyventus_core::remote::{Inbound, ShutdownNow, run_until_signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use builder::RelayBuilder;
pub use stats::RelayStats;

use crate::named::NamedTypes;
use crate::{Error, Outbox};
use builder::Config;
use deliver::Target;
use lease::Leases;
use stats::Counters;

/// Delivers the outbox's committed events: to the link-time handlers of its
/// linker, which it runs itself (PostgreSQL is then a distributed engine of
/// its own, with no broker), or to a processing service
/// ([`forward_to`](RelayBuilder::forward_to)).
///
/// Run as many relays as you like, in as many processes and machines: each
/// claims a batch of due rows with `FOR UPDATE SKIP LOCKED`, in `seq` order,
/// under a lease (the row's `due_at` moves to the lease's end) and a fence
/// (the row's `fence` goes up by one per claim). It renews the leases of the
/// rows in flight every third of the lease, and writes each outcome only
/// while the row's fence is still its own: a relay that stalled past its
/// lease loses the row to another and cannot complete it afterwards.
///
/// Delivery is at least once, with per-handler completion: an event leaves
/// the outbox once all its handlers succeeded; when some fail, those that
/// succeeded are recorded in the row's `done` and never run again for this
/// event, and the rest run again after a capped, jittered backoff, up to
/// [`max_attempts`](RelayBuilder::max_attempts), then the event moves to the
/// [dead letters](crate::DeadLetters) with each handler's error. An event
/// that cannot run (an unknown name, a payload that no longer decodes) fails
/// the same way, without stopping the relay. Handlers read the event's id
/// with [`current_delivery`](crate::current_delivery) to stay idempotent.
///
/// Events of one partition key are claimed one at a time, in commit order,
/// the next only once the previous one left the outbox (delivered or
/// dead-lettered); unkeyed events run in parallel, up to the
/// [`concurrency`](RelayBuilder::concurrency).
///
/// An idle relay waits on `LISTEN` for the outbox's doorbell (see
/// [`Outbox`]), and polls every [`poll_interval`](RelayBuilder::poll_interval)
/// as a safety net: about one statement a second when nothing happens.
///
/// Concurrency: a `Relay` is a cheap handle (clone it to stop the relay from
/// elsewhere or to read its stats); its counters are atomics, the set of
/// leases a mutex held only to add, remove or copy entries. No lock is held
/// while handlers run: asynchronous ones run on tasks of the runtime that
/// calls [`run`](Self::run), synchronous ones on pyventus's blocking
/// threads.
///
/// # Examples
///
/// ```no_run
/// use pyventus_postgres::{Outbox, Relay};
/// use std::time::Duration;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_postgres::Error> {
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/app").await?;
/// let outbox = Outbox::connect(&pool).await?;
/// let relay = Relay::builder(&outbox)
///     .concurrency(32)
///     .max_attempts(5)
///     .lease(Duration::from_secs(30))
///     .build()?;
/// relay.run_until_signal().await?; // until Ctrl-C or SIGTERM
/// println!("{:?}", relay.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    outbox: Outbox,
    /// Runs each event's handlers: the step every pyventus worker shares.
    inbound: Inbound,
    target: Target,
    named: NamedTypes,
    name: String,
    config: Config,
    /// Stop claiming.
    shutdown: CancellationToken,
    /// Cut the runs in flight short (the shutdown deadline passed, or
    /// `shutdown_now`).
    abandon: CancellationToken,
    /// `shutdown_now` was called: what is still being written (a claim's
    /// answer, outcomes, give-backs) has a moment, however the server answers.
    now: ShutdownNow,
    /// Claim again now: a keyed event left the outbox.
    nudge: Notify,
    leases: Leases,
    stats: Counters,
    /// When retries this relay scheduled become due.
    retries_due: Mutex<BinaryHeap<settle::Due>>,
    running: AtomicBool,
}

impl Relay {
    /// A builder of a relay on `outbox`'s tables and pool.
    pub fn builder(outbox: &Outbox) -> RelayBuilder {
        RelayBuilder::new(outbox)
    }

    /// The relay's name: the lease owner written on the rows it holds.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the relay has done so far.
    pub fn stats(&self) -> RelayStats {
        self.inner.stats.snapshot()
    }

    /// Asks [`run`](Self::run) to stop claiming, finish the events in flight
    /// (up to the shutdown deadline) and return.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Stops at once: claims nothing more and cuts the runs in flight short,
    /// giving their events back. What is still being written then (a claim's
    /// answer, outcomes, give-backs) has a second at most, so that `run`
    /// returns at once even when PostgreSQL does not answer; an event whose
    /// give-back is cut is claimed again once its lease ends.
    pub fn shutdown_now(&self) {
        let inner = &self.inner;
        inner.now.call();
        inner.shutdown.cancel();
        inner.abandon.cancel();
    }

    /// Runs until Ctrl-C (or, on Unix, SIGTERM), then shuts down gracefully;
    /// a second signal stops at once.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_until_signal(&self) -> Result<(), Error> {
        let (drain, stop) = (self.clone(), self.clone());
        run_until_signal(
            self.run(),
            move || drain.shutdown(),
            move || stop.shutdown_now(),
        )
        .await
    }

    /// Claims and delivers events until [`shutdown`](Self::shutdown); returns
    /// once the events in flight have finished or the shutdown deadline
    /// passed.
    ///
    /// Dropping the future instead stops claiming at once, with no deadline:
    /// the deliveries already started go on to their end on the runtime they
    /// run on, their leases renewed meanwhile, and their outcomes are written;
    /// rows still being claimed come back once their lease has run out.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaMissing`], [`Error::SchemaOutdated`] or
    /// [`Error::SchemaTooNew`] at startup; [`Error::GaveUp`] when PostgreSQL
    /// stayed unreachable past [`give_up_after`](RelayBuilder::give_up_after);
    /// [`Error::AlreadyRunning`].
    pub async fn run(&self) -> Result<(), Error> {
        run_loop::run(self).await
    }

    fn retry_due(&self, at: Instant) {
        self.inner
            .retries_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(std::cmp::Reverse(at));
    }
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("Relay")
            .field("name", &self.inner.name)
            .field("schema", &self.inner.outbox.schema())
            .field("concurrency", &config.concurrency)
            .field("lease", &config.lease)
            .field("max_attempts", &config.max_attempts)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
