//! `RelayBuilder`: a relay's settings, their defaults and their checks.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use pyventus_core::remote::{Inbound, ShutdownNow};
use pyventus_core::{EmitKey, EventLinker, ProcessingService, Provided};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::deliver::Target;
use super::lease::Leases;
use super::stats::Counters;
use super::{Inner, Relay};
use crate::named::NamedTypes;
use crate::{Error, Outbox};

/// A relay's settings, checked.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) batch: usize,
    pub(crate) lease: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) retry_initial: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) handler_timeout: Option<Duration>,
    pub(crate) shutdown_deadline: Duration,
    pub(crate) give_up_after: Option<Duration>,
    pub(crate) archive: bool,
    pub(crate) sync_inline: bool,
}

/// Builds a [`Relay`]; see [`Relay`]'s example.
#[must_use]
pub struct RelayBuilder {
    outbox: Outbox,
    linker: Option<EventLinker>,
    target: Target,
    named: NamedTypes,
    name: Option<String>,
    states: Provided,
    config: Config,
}

impl RelayBuilder {
    pub(super) fn new(outbox: &Outbox) -> Self {
        RelayBuilder {
            outbox: outbox.clone(),
            linker: None,
            target: Target::Handlers,
            named: NamedTypes::default(),
            name: None,
            states: Provided::default(),
            config: Config {
                concurrency: 16,
                batch: 0,
                lease: Duration::from_secs(30),
                max_attempts: 5,
                retry_initial: Duration::from_secs(1),
                retry_max: Duration::from_mins(5),
                poll_interval: Duration::from_secs(1),
                handler_timeout: None,
                shutdown_deadline: Duration::from_secs(25),
                give_up_after: Some(Duration::from_mins(5)),
                archive: false,
                sync_inline: false,
            },
        }
    }

    /// Provides `value` to the relay's linker, for its handlers that take a
    /// [`State<T>`](pyventus_core::State), made in this process as the web
    /// process makes its own. [`build`](Self::build) refuses a linker whose
    /// handlers take a state nobody provided.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.add(value);
        self
    }

    /// The linker whose link-time handlers the relay runs, and in which it
    /// resolves events it forwards (default: the global one).
    pub fn linker(mut self, linker: EventLinker) -> Self {
        self.linker = Some(linker);
        self
    }

    /// Hands each event to `service` (inline, tokio, thread pool, Redis,
    /// RabbitMQ, or your own) instead of running the handlers itself; an
    /// event leaves the outbox once the service ran it (a local service) or
    /// took it (a broker). See "Relaying to a processing service" in
    /// `docs/postgres.md` for what that guarantees.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use pyventus_core::ExecutorProcessingService;
    /// use pyventus_postgres::{Outbox, Relay};
    ///
    /// # async fn f(outbox: Outbox) -> Result<(), pyventus_postgres::Error> {
    /// let relay = Relay::builder(&outbox)
    ///     .forward_to(ExecutorProcessingService::with_threads(2))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn forward_to(mut self, service: impl ProcessingService) -> Self {
        self.target = Target::Service(Arc::new(service));
        self
    }

    /// Decodes the payload of the named event `name` as a `T`, as
    /// [`Outbox::emit_named`] wrote it: its handlers (`#[on("name")] fn f(p: &T)`)
    /// receive it as they would in the emitting process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(outbox: pyventus_postgres::Outbox) -> Result<(), pyventus_postgres::Error> {
    /// let relay = pyventus_postgres::Relay::builder(&outbox).named::<String>("Greet").build()?;
    /// # Ok(()) }
    /// ```
    pub fn named<T: DeserializeOwned + Send + Sync + 'static>(mut self, name: &str) -> Self {
        self.named.add::<T>(name);
        self
    }

    /// [`named`](Self::named) for the name of a key (a
    /// [`NamedKey<T>`](pyventus_core::NamedKey) gives the type too).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// pyventus_core::named_key!(static TICK: pyventus_core::NamedKey<u64> = "Tick");
    /// # fn f(outbox: pyventus_postgres::Outbox) -> Result<(), pyventus_postgres::Error> {
    /// let relay = pyventus_postgres::Relay::builder(&outbox).named_key(&TICK).build()?;
    /// # Ok(()) }
    /// ```
    pub fn named_key<T: DeserializeOwned + Send + Sync + 'static, K: EmitKey<T> + ?Sized>(
        mut self,
        key: &K,
    ) -> Self {
        self.named.add::<T>(key.event_key().name());
        self
    }

    /// The relay's name, written as the lease owner of the rows it holds
    /// (default `<host>-<pid>-<random>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many events run at once (default 16).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    /// The most events one claim takes (default: the concurrency).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch = n;
        self
    }

    /// How long an event stays with a relay that shows no sign of life before
    /// another relay claims it (default 30 s). A live relay renews its leases
    /// every third of it, whatever its handlers do.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// How many attempts an event gets before it moves to the dead letters
    /// (default 5). An event claimed more often than this without finishing
    /// (its handlers crash the process) is dead-lettered before it runs again.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// The pause before a failed event runs again: from `initial`, doubling
    /// at each attempt, capped at `max`, each shortened by up to half at
    /// random (default 1 s to 5 minutes).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.retry_initial = initial;
        self.config.retry_max = max;
        self
    }

    /// How often an idle relay looks for events without being woken (default
    /// 1 s): the safety net for wake-ups lost across reconnects, and the
    /// delay before it sees retries other relays scheduled.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.config.poll_interval = every;
        self
    }

    /// How long one event's handlers may run before the attempt counts as
    /// failed (default: no limit). Asynchronous handlers are cancelled at the
    /// deadline; synchronous ones cannot be, and finish unobserved.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.handler_timeout = Some(timeout);
        self
    }

    /// How long a shutdown waits for the events in flight (default 25 s);
    /// past it, their runs are cut short and the events given back.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.config.shutdown_deadline = deadline;
        self
    }

    /// How long PostgreSQL may stay unreachable before [`run`](Relay::run)
    /// returns [`Error::GaveUp`] (default 5 minutes; `None`: never).
    pub fn give_up_after(mut self, after: impl Into<Option<Duration>>) -> Self {
        self.config.give_up_after = after.into();
        self
    }

    /// Moves delivered events to `<schema>.delivered` instead of deleting
    /// them (default `false`); [`Outbox::purge_older_than`] trims it.
    pub fn archive(mut self, archive: bool) -> Self {
        self.config.archive = archive;
        self
    }

    /// Runs synchronous handlers on the relay's runtime threads instead of
    /// blocking threads (default `false`): for handlers that return in
    /// microseconds.
    pub fn sync_handlers_inline(mut self, inline: bool) -> Self {
        self.config.sync_inline = inline;
        self
    }

    /// The relay, without asking the database anything ([`run`](Relay::run)
    /// checks the schema's version first).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for settings that cannot work (a concurrency,
    /// batch, attempts, lease or poll interval of zero; a lease under 100 ms;
    /// a backoff whose start exceeds its cap); [`Error::Pyventus`] if the
    /// global linker cannot be built.
    pub fn build(mut self) -> Result<Relay, Error> {
        if self.config.batch == 0 {
            self.config.batch = self.config.concurrency;
        }
        check(&self.config)?;
        let linker = match self.linker {
            Some(linker) => linker,
            None => EventLinker::try_global()?,
        };
        self.states.provide_to(&linker);
        if matches!(self.target, Target::Handlers) {
            linker.check_states()?;
        }
        let inbound = Inbound::new(linker, "postgres-relay")
            .blocking(!self.config.sync_inline)
            .handler_timeout(self.config.handler_timeout);
        Ok(Relay {
            inner: Arc::new(Inner {
                outbox: self.outbox,
                inbound,
                target: self.target,
                named: self.named,
                name: self.name.unwrap_or_else(relay_name),
                config: self.config,
                shutdown: CancellationToken::new(),
                abandon: CancellationToken::new(),
                now: ShutdownNow::default(),
                nudge: Notify::new(),
                leases: Leases::default(),
                stats: Counters::default(),
                retries_due: std::sync::Mutex::new(std::collections::BinaryHeap::new()),
                running: AtomicBool::new(false),
            }),
        })
    }
}

fn check(config: &Config) -> Result<(), Error> {
    let invalid = |what: &str| Err(Error::InvalidConfig(what.to_owned()));
    if config.concurrency == 0 || config.batch == 0 {
        return invalid("concurrency and batch_size must be at least 1");
    }
    if config.max_attempts == 0 {
        return invalid("max_attempts must be at least 1 (1: no retry)");
    }
    if config.lease < Duration::from_millis(100) {
        return invalid("the lease must be at least 100 ms (it is renewed every third)");
    }
    if config.poll_interval.is_zero() {
        return invalid("poll_interval must be more than zero");
    }
    if config.retry_initial > config.retry_max {
        return invalid("the retry backoff's initial delay must not exceed its cap");
    }
    if config.handler_timeout.is_some_and(|t| t.is_zero()) {
        return invalid("a handler timeout must be more than zero");
    }
    if config.give_up_after.is_some_and(|t| t.is_zero()) {
        return invalid("give_up_after must be more than zero (None: never give up)");
    }
    Ok(())
}

/// `<host>-<pid>-<random>`: unique per process.
fn relay_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "relay".to_owned());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}
