//! `WorkerBuilder`: a worker's settings, their defaults and their checks.

use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyventus_core::remote::{HealthWatch, Inbound, ShutdownNow};
use pyventus_core::{EventLinker, Provided};
use tokio_util::sync::CancellationToken;

use super::lease::Leases;
use super::settle::Acks;
use super::stats::Counters;
use super::{Inner, Worker};
use crate::connection::{self, Timeouts};
use crate::stream::Stream;
use crate::{Backoff, DEFAULT_MAX_ENTRY_SIZE, Error, check_queue};

/// A worker's settings, checked.
pub(super) struct Config {
    pub(super) concurrency: usize,
    pub(super) visibility: Duration,
    pub(super) max_deliveries: u64,
    pub(super) block: Duration,
    pub(super) dead_cap: usize,
    pub(super) timeouts: Timeouts,
    pub(super) give_up_after: Option<Duration>,
    pub(super) reconnect_backoff: Backoff,
    pub(super) retry_backoff: Backoff,
    pub(super) handler_timeout: Option<Duration>,
    pub(super) handler_timeouts: HashMap<String, Duration>,
    pub(super) shutdown_deadline: Duration,
    pub(super) max_entry_size: usize,
    pub(super) sync_inline: bool,
}

/// Builds a [`Worker`]; see [`Worker`]'s example.
#[must_use]
pub struct WorkerBuilder {
    client: Result<redis::Client, Error>,
    queue: String,
    linker: Option<EventLinker>,
    consumer: Option<String>,
    retry_backoff: Option<Backoff>,
    states: Provided,
    config: Config,
}

impl WorkerBuilder {
    pub(super) fn new(client: Result<redis::Client, Error>) -> Self {
        WorkerBuilder {
            client,
            queue: "default".to_owned(),
            linker: None,
            consumer: None,
            retry_backoff: None,
            states: Provided::default(),
            config: Config {
                concurrency: 8,
                visibility: Duration::from_secs(30),
                max_deliveries: 5,
                block: Duration::from_secs(1),
                dead_cap: 100_000,
                timeouts: Timeouts::DEFAULT,
                give_up_after: Some(Duration::from_mins(5)),
                reconnect_backoff: Backoff::exponential(
                    Duration::from_millis(100),
                    Duration::from_secs(5),
                ),
                retry_backoff: Backoff::exponential(Duration::ZERO, Duration::ZERO),
                handler_timeout: None,
                handler_timeouts: HashMap::new(),
                shutdown_deadline: Duration::from_secs(25),
                max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
                sync_inline: false,
            },
        }
    }

    /// Provides `value` to the worker's linker, for its handlers that take a
    /// [`State<T>`](pyventus_core::State): a database pool, a mail client,
    /// made in this process as the web process makes its own.
    /// [`connect`](Self::connect) refuses to start while a handler of the
    /// linker takes a state nobody provided.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn doc() -> Result<(), pyventus_redis::Error> {
    /// struct Mailer;
    /// let worker = pyventus_redis::Worker::builder("redis://127.0.0.1:6379")
    ///     .state(Mailer)
    ///     .connect()
    ///     .await?;
    /// # drop(worker); Ok(()) }
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.add(value);
        self
    }

    /// The queue to take entries from (default `"default"`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The linker whose handlers run (default: the global one).
    pub fn linker(mut self, linker: EventLinker) -> Self {
        self.linker = Some(linker);
        self
    }

    /// The consumer's name in the group; unique per process by default
    /// (`<host>-<pid>-<random>`). Two live workers must not share one.
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// How many entries run at once (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    /// How long an entry may stay with a worker that shows no sign of life
    /// before another worker claims it (default 30 s). A live worker renews
    /// its entries' leases every third of it, whatever its handlers do. Also
    /// the longest [`retry_backoff`](Self::retry_backoff) can wait.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.config.visibility = timeout;
        self
    }

    /// How many deliveries an entry gets before it moves to the dead letters
    /// (default 5). An entry delivered more often than this without finishing
    /// (its handlers crash the process) is dead-lettered before it runs again.
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.config.max_deliveries = n;
        self
    }

    /// The pause before a failed entry runs again, growing with each delivery
    /// (default: from 1 s, doubling, capped at the visibility timeout, jitter
    /// 0.5; from a quarter of the visibility timeout if that is under 4 s). The
    /// entry stays pending meanwhile; its cap may not exceed the visibility
    /// timeout, which is the longest Redis lets an entry wait unclaimed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use pyventus_redis::{Backoff, Worker};
    /// use std::time::Duration;
    ///
    /// # async fn build() -> Result<(), pyventus_redis::Error> {
    /// // Retries after about 5 s, 10 s, 20 s, 40 s, then every minute.
    /// let worker = Worker::builder("redis://127.0.0.1:6379")
    ///     .visibility_timeout(Duration::from_secs(60))
    ///     .retry_backoff(Backoff::exponential(Duration::from_secs(5), Duration::from_secs(60)))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn retry_backoff(mut self, backoff: Backoff) -> Self {
        self.retry_backoff = Some(backoff);
        self
    }

    /// The pause between attempts to reach Redis again after losing it
    /// (default: from 100 ms, doubling, capped at 5 s, jitter 0.5).
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.config.reconnect_backoff = backoff;
        self
    }

    /// How long Redis may stay unreachable before [`run`](Worker::run) gives up
    /// and returns [`Error::GaveUp`] (default 5 minutes; `None`: never), so
    /// that whatever supervises the process (systemd, Kubernetes) can act.
    pub fn give_up_after(mut self, after: impl Into<Option<Duration>>) -> Self {
        self.config.give_up_after = after.into();
        self
    }

    /// How long one entry's handlers may run before the delivery counts as
    /// failed (default: no limit). Asynchronous handlers are cancelled at the
    /// deadline; synchronous ones cannot be, and finish on their thread
    /// unobserved while the entry is retried.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.handler_timeout = Some(timeout);
        self
    }

    /// A timeout for one handler, by its id (`crate::module::function`),
    /// instead of [`handler_timeout`](Self::handler_timeout). An entry whose
    /// handlers have different timeouts gets the longest; one with any handler
    /// without a timeout gets none.
    pub fn handler_timeout_for(mut self, handler_id: impl Into<String>, timeout: Duration) -> Self {
        self.config
            .handler_timeouts
            .insert(handler_id.into(), timeout);
        self
    }

    /// Runs synchronous handlers on the worker's runtime threads instead of
    /// blocking threads (default `false`). For handlers that return in
    /// microseconds (counting, caching): it saves the hand-off to those
    /// threads, measured at 3 to 4 µs of CPU per entry with a trivial handler
    /// (see `docs/benchmarks.md`). A synchronous handler that blocks
    /// then holds a runtime thread while it runs, delaying the other
    /// deliveries on it, and a handler timeout cannot interrupt it until it
    /// returns, nor can a shutdown (keep this for handlers that return at
    /// once); leases are renewed regardless. Handlers declared
    /// `#[on(Event, blocking)]` always run on blocking threads.
    pub fn sync_handlers_inline(mut self, inline: bool) -> Self {
        self.config.sync_inline = inline;
        self
    }

    /// How long a shutdown waits for the entries in flight (default 25 s,
    /// Sidekiq's, within Kubernetes' default 30 s grace period). Past it, their
    /// runs are cut short and their entries left pending, claimable by another
    /// worker at once; they are never acknowledged.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.config.shutdown_deadline = deadline;
        self
    }

    /// How long one read waits for new entries (default 1 s); also the longest
    /// a shutdown waits for the loop to notice it.
    pub fn block(mut self, block: Duration) -> Self {
        self.config.block = block;
        self
    }

    /// About how many entries the dead-letter stream keeps (default 100,000);
    /// older letters are trimmed, and the worker logs how many.
    pub fn dead_letter_cap(mut self, cap: usize) -> Self {
        self.config.dead_cap = cap;
        self
    }

    /// The largest entry the worker runs, in bytes of field names and values
    /// (default 1 MiB); larger ones are dead-lettered unread.
    pub fn max_entry_size(mut self, bytes: usize) -> Self {
        self.config.max_entry_size = bytes;
        self
    }

    /// How long opening a connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.connect = timeout;
        self
    }

    /// How long Redis may take to answer a command (default 1 s; a blocking
    /// read gets its block time on top).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.response = timeout;
        self
    }

    /// Connects, and creates the consumer group if missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for settings that cannot work (a concurrency,
    /// `max_deliveries`, block, timeout or size of 0, a visibility timeout
    /// under 10 ms, a retry backoff longer than the visibility timeout);
    /// [`Error::InvalidQueue`]; [`Error::Authentication`] if Redis refuses the
    /// credentials; [`Error::Redis`] if it cannot be reached.
    pub async fn connect(mut self) -> Result<Worker, Error> {
        check_queue(&self.queue)?;
        let visibility = self.config.visibility;
        self.config.retry_backoff = self.retry_backoff.unwrap_or_else(|| {
            let initial = Duration::from_secs(1).min(visibility / 4);
            Backoff::exponential(initial, visibility)
        });
        check(&self.config)?;
        let client = self.client?;
        let conn = connection::manager(&client, self.config.timeouts).await?;
        let replies = Arc::new(crate::reply::Replies::new(conn.clone()));
        let stream = Stream::new(conn, &self.queue);
        stream.ensure_group().await?;
        let keeper_conn = connection::manager_on_io_runtime(&client, self.config.timeouts).await?;
        let linker = match self.linker {
            Some(linker) => linker,
            None => EventLinker::try_global()?,
        };
        self.states.provide_to(&linker);
        linker.check_states()?;
        let config = &self.config;
        let inbound = config.handler_timeouts.iter().fold(
            Inbound::new(linker, "redis-worker")
                .blocking(!config.sync_inline)
                .handler_timeout(config.handler_timeout)
                .reply_sender(replies),
            |inbound, (id, timeout)| inbound.handler_timeout_for(id.clone(), *timeout),
        );
        Ok(Worker {
            inner: Arc::new(Inner {
                keeper_stream: stream.with_connection(keeper_conn),
                stream,
                config: self.config,
                client,
                inbound,
                consumer: self.consumer.unwrap_or_else(consumer_name),
                shutdown: CancellationToken::new(),
                abandon: CancellationToken::new(),
                now: ShutdownNow::default(),
                health: HealthWatch::new(),
                stats: Counters::default(),
                leases: Leases::default(),
                acks: Acks::default(),
                retries_due: Mutex::new(BinaryHeap::new()),
                running: AtomicBool::new(false),
            }),
        })
    }
}

/// Refuses settings that cannot work, saying which and why.
fn check(config: &Config) -> Result<(), Error> {
    let invalid = |what: String| Err(Error::InvalidConfig(what));
    if config.concurrency == 0 {
        return invalid("a worker's concurrency must be at least 1".into());
    }
    if config.max_deliveries == 0 {
        return invalid("max_deliveries must be at least 1 (1: no retry)".into());
    }
    if config.visibility < Duration::from_millis(10) {
        return invalid(
            "the visibility timeout must be at least 10 ms (leases are renewed every third)".into(),
        );
    }
    if config.block.is_zero() {
        return invalid("block must be more than zero (a read without BLOCK would spin)".into());
    }
    config.timeouts.check()?;
    if config.dead_cap == 0 || config.max_entry_size == 0 {
        return invalid("dead_letter_cap and max_entry_size must be more than zero".into());
    }
    if config.give_up_after.is_some_and(|after| after.is_zero()) {
        return invalid("give_up_after must be more than zero (None: never give up)".into());
    }
    let zero_timeout = config.handler_timeout.is_some_and(|t| t.is_zero())
        || config.handler_timeouts.values().any(Duration::is_zero);
    if zero_timeout {
        return invalid("a handler timeout must be more than zero".into());
    }
    for (name, backoff) in [
        ("retry_backoff", &config.retry_backoff),
        ("reconnect_backoff", &config.reconnect_backoff),
    ] {
        if let Err(why) = backoff.check() {
            return invalid(format!("{name}: {why}"));
        }
    }
    if config.retry_backoff.max() > config.visibility {
        return invalid(format!(
            "the retry backoff's cap ({:?}) exceeds the visibility timeout ({:?}): a pending entry \
             is claimable once it has been idle that long; raise the visibility timeout or lower the cap",
            config.retry_backoff.max(),
            config.visibility
        ));
    }
    Ok(())
}

/// `<host>-<pid>-<random>`: unique per process.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}
