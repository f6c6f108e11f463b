//! Metrics of emissions and deliveries, on the [`metrics`](https://docs.rs/metrics)
//! facade: install any recorder (Prometheus, `StatsD`, ...) and they appear.
//!
//! Processing services (labels `event` and `processor`; the gauges have
//! `processor` only):
//!
//! | Name | Kind | What it counts |
//! |------|------|----------------|
//! | [`pyventus_emissions_total`](EMISSIONS) | counter | emissions a processing service accepted |
//! | [`pyventus_emissions_dropped_total`](DROPPED) | counter | accepted emissions lost before they finished (a runtime shut down, a thread died) |
//! | [`pyventus_deliveries_total`](DELIVERIES) | counter | subscribers run, whatever their outcome |
//! | [`pyventus_deliveries_succeeded_total`](SUCCEEDED) | counter | subscribers that returned `Ok` |
//! | [`pyventus_deliveries_failed_total`](FAILED) | counter | subscribers that returned an error |
//! | [`pyventus_deliveries_panicked_total`](PANICKED) | counter | subscribers that panicked |
//! | [`pyventus_emission_duration_seconds`](DURATION) | histogram | from an emission's start to its last subscriber's end |
//! | [`pyventus_emissions_queued`](QUEUED) | gauge | accepted emissions not started yet (the queue depth) |
//! | [`pyventus_emissions_in_flight`](IN_FLIGHT) | gauge | accepted emissions not finished yet (queued or running) |
//!
//! `processor` is [`ProcessingService::name`](crate::ProcessingService::name):
//! `inline`, `tokio`, `executor`, `axum`, `redis`, `amqp`, or your own
//! service's. An emission one service hands to another counts as emitted
//! once, under the first (axum's, which runs it after the response on its
//! tokio service), and runs under the second. An emission a broker carries counts on both sides: accepted (and
//! in flight until the broker confirmed it) by the emitting process's service,
//! run by the worker (`processor` is `redis-worker` or `amqp-worker`). The
//! workers add their own counters (label `backend`: `redis` or `amqp`):
//!
//! | Name | Kind | What it counts |
//! |------|------|----------------|
//! | [`pyventus_worker_received_total`](WORKER_RECEIVED) | counter | broker deliveries taken by a worker (redeliveries included) |
//! | [`pyventus_worker_acked_total`](WORKER_ACKED) | counter | deliveries finished and acknowledged |
//! | [`pyventus_worker_retried_total`](WORKER_RETRIED) | counter | failed deliveries given back for another attempt |
//! | [`pyventus_worker_dead_lettered_total`](WORKER_DEAD_LETTERED) | counter | deliveries moved to the dead letters (label `reason`) |
//! | [`pyventus_worker_reconnects_total`](WORKER_RECONNECTS) | counter | connections to the broker lost and made again |
//! | [`pyventus_worker_in_flight`](WORKER_IN_FLIGHT) | gauge | deliveries running now |
//!
//! An inline emitter's fast path (no emission built) counts its emissions
//! and deliveries too, under `processor="inline"`, with no allocation.
//!
//! # Examples
//!
//! ```
//! use pyventus_core::{EventEmitter, EventLinker, InlineProcessingService, metrics};
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! ::metrics::with_local_recorder(&recorder, || {
//!     let linker = EventLinker::new();
//!     linker.on_named("Ping").subscribe(|| println!("pong"))?;
//!     let emitter = EventEmitter::builder().linker(linker).build();
//!     emitter.emit_named("Ping", ())?;
//!     Ok::<(), pyventus_core::Error>(())
//! })?;
//! let succeeded = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
//!     (key.key().name() == metrics::SUCCEEDED).then_some(value)
//! });
//! assert_eq!(succeeded, Some(DebugValue::Counter(1)));
//! # Ok::<(), pyventus_core::Error>(())
//! ```

use std::cell::RefCell;
use std::hash::{Hash, RandomState};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use ::metrics::{Key, Label, Level, Metadata, Recorder, SharedString};
use hashbrown::{Equivalent, HashMap};

use crate::{FailureKind, HandlerPanic, RunReport};

/// Counter: emissions a processing service accepted (labels `event`, `processor`).
pub const EMISSIONS: &str = "pyventus_emissions_total";
/// Counter: accepted emissions lost before they finished (labels `event`, `processor`).
pub const DROPPED: &str = "pyventus_emissions_dropped_total";
/// Counter: subscribers run, whatever their outcome (labels `event`, `processor`).
pub const DELIVERIES: &str = "pyventus_deliveries_total";
/// Counter: subscribers that returned `Ok` (labels `event`, `processor`).
pub const SUCCEEDED: &str = "pyventus_deliveries_succeeded_total";
/// Counter: subscribers that returned an error (labels `event`, `processor`).
pub const FAILED: &str = "pyventus_deliveries_failed_total";
/// Counter: subscribers that panicked (labels `event`, `processor`).
pub const PANICKED: &str = "pyventus_deliveries_panicked_total";
/// Histogram: seconds from an emission's start to its last subscriber's end
/// (labels `event`, `processor`).
pub const DURATION: &str = "pyventus_emission_duration_seconds";
/// Counter: attempts of a handler with a policy that failed and will be
/// retried (labels `event`, `handler`: its id, or `<runtime>`).
pub const RETRIES: &str = "pyventus_handler_retries_total";
/// Counter: deliveries a handler's policy gave up on (labels `event`,
/// `handler`, `reason`: `failed`, `panicked`, `timed_out`, `refused`,
/// `rejected`).
pub const EXHAUSTED: &str = "pyventus_handler_exhausted_total";
/// Gauge: accepted emissions not started yet (label `processor`).
pub const QUEUED: &str = "pyventus_emissions_queued";
/// Gauge: accepted emissions not finished yet, queued or running (label `processor`).
pub const IN_FLIGHT: &str = "pyventus_emissions_in_flight";

/// Counter: broker deliveries a worker took, redeliveries included (label `backend`).
pub const WORKER_RECEIVED: &str = "pyventus_worker_received_total";
/// Counter: deliveries a worker finished and acknowledged (label `backend`).
pub const WORKER_ACKED: &str = "pyventus_worker_acked_total";
/// Counter: failed deliveries given back to the broker for another attempt
/// (label `backend`).
pub const WORKER_RETRIED: &str = "pyventus_worker_retried_total";
/// Counter: deliveries moved to the dead letters (labels `backend`, `reason`:
/// `failed` (its handlers, at the last attempt), `timed_out`, `malformed`,
/// `unknown_event`, `unresolved`, `missing_handler`, and on Redis `too_large`
/// and `max_deliveries`).
pub const WORKER_DEAD_LETTERED: &str = "pyventus_worker_dead_lettered_total";
/// Counter: connections to the broker lost and made again (label `backend`).
pub const WORKER_RECONNECTS: &str = "pyventus_worker_reconnects_total";
/// Gauge: deliveries a worker is running now (label `backend`).
pub const WORKER_IN_FLIGHT: &str = "pyventus_worker_in_flight";

/// Every metric above, with its kind, unit and help text.
const DESCRIPTIONS: [(Kind, &str, ::metrics::Unit, &str); 15] = {
    use ::metrics::Unit::{Count, Seconds};
    use Kind::{Counter, Gauge, Histogram};
    [
        (
            Counter,
            EMISSIONS,
            Count,
            "Emissions a processing service accepted.",
        ),
        (
            Counter,
            DROPPED,
            Count,
            "Accepted emissions lost before they finished.",
        ),
        (
            Counter,
            DELIVERIES,
            Count,
            "Subscribers run, whatever their outcome.",
        ),
        (Counter, SUCCEEDED, Count, "Subscribers that returned Ok."),
        (
            Counter,
            FAILED,
            Count,
            "Subscribers that returned an error.",
        ),
        (Counter, PANICKED, Count, "Subscribers that panicked."),
        (
            Histogram,
            DURATION,
            Seconds,
            "From an emission's start to its last subscriber's end.",
        ),
        (
            Gauge,
            QUEUED,
            Count,
            "Accepted emissions not started yet (the queue depth).",
        ),
        (
            Gauge,
            IN_FLIGHT,
            Count,
            "Accepted emissions not finished yet, queued or running.",
        ),
        (
            Counter,
            WORKER_RECEIVED,
            Count,
            "Broker deliveries a worker took, redeliveries included.",
        ),
        (
            Counter,
            WORKER_ACKED,
            Count,
            "Deliveries a worker finished and acknowledged.",
        ),
        (
            Counter,
            WORKER_RETRIED,
            Count,
            "Failed deliveries given back to the broker for another attempt.",
        ),
        (
            Counter,
            WORKER_DEAD_LETTERED,
            Count,
            "Deliveries moved to the dead letters, by reason.",
        ),
        (
            Counter,
            WORKER_RECONNECTS,
            Count,
            "Connections to the broker lost and made again.",
        ),
        (
            Gauge,
            WORKER_IN_FLIGHT,
            Count,
            "Deliveries a worker is running now.",
        ),
    ]
};

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Describes every pyventus metric (its unit and a help text) to the
/// installed recorder: Prometheus then prints a `# HELP` line for each.
///
/// Call it once, after installing the recorder: a description goes to the
/// recorder installed when it is made, as with the `describe_*!` macros of
/// the [`metrics`](https://docs.rs/metrics) crate. Recording works without it.
///
/// # Examples
///
/// ```
/// use metrics_util::debugging::DebuggingRecorder;
/// use pyventus_core::{EventEmitter, EventLinker, metrics};
///
/// let recorder = DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// ::metrics::with_local_recorder(&recorder, || {
///     metrics::describe();
///     let linker = EventLinker::new();
///     linker.on_named("Ping").subscribe(|| {})?;
///     EventEmitter::builder().linker(linker).build().emit_named("Ping", ())
/// })?;
/// let help = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, help, _)| {
///     (key.key().name() == metrics::SUCCEEDED).then_some(help)
/// });
/// assert_eq!(help.flatten().as_deref(), Some("Subscribers that returned Ok."));
/// # Ok::<(), pyventus_core::Error>(())
/// ```
pub fn describe() {
    for (kind, name, unit, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, unit, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, unit, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, unit, help),
        }
    }
}

/// Where an emission stands in its processing service's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not accepted by any service (or settled): in no gauge.
    Outside,
    /// Accepted, not started: queued and in flight.
    Queued,
    /// Started, not finished: in flight.
    Running,
}

/// What the metrics are registered with: pyventus's target, at `INFO`.
static METADATA: Metadata<'static> = Metadata::new("pyventus", Level::INFO, Some(module_path!()));

/// The keys of one event's metrics on one processing service, built once
/// (their labels and hashes) and shared: recording a value is then one
/// lookup in the recorder, with nothing to allocate or hash.
#[derive(Debug)]
struct Keys {
    emissions: Key,
    dropped: Key,
    deliveries: Key,
    succeeded: Key,
    failed: Key,
    panicked: Key,
    duration: Key,
    queued: Key,
    in_flight: Key,
}

impl Keys {
    fn new(event: &str, processor: &'static str) -> Self {
        let event = SharedString::from(Arc::<str>::from(event));
        let both = || {
            vec![
                Label::new("event", event.clone()),
                Label::new("processor", processor),
            ]
        };
        let processor_only = || vec![Label::new("processor", processor)];
        Keys {
            emissions: Key::from_parts(EMISSIONS, both()),
            dropped: Key::from_parts(DROPPED, both()),
            deliveries: Key::from_parts(DELIVERIES, both()),
            succeeded: Key::from_parts(SUCCEEDED, both()),
            failed: Key::from_parts(FAILED, both()),
            panicked: Key::from_parts(PANICKED, both()),
            duration: Key::from_parts(DURATION, both()),
            queued: Key::from_parts(QUEUED, processor_only()),
            in_flight: Key::from_parts(IN_FLIGHT, processor_only()),
        }
    }

    /// Records one emission's deliveries by outcome, and how long it took.
    fn ran(
        &self,
        r: &dyn Recorder,
        succeeded: u64,
        failed: u64,
        panicked: u64,
        elapsed: Option<std::time::Duration>,
    ) {
        r.register_counter(&self.deliveries, &METADATA)
            .increment(succeeded + failed + panicked);
        r.register_counter(&self.succeeded, &METADATA)
            .increment(succeeded);
        if failed > 0 {
            r.register_counter(&self.failed, &METADATA)
                .increment(failed);
        }
        if panicked > 0 {
            r.register_counter(&self.panicked, &METADATA)
                .increment(panicked);
        }
        if let Some(elapsed) = elapsed {
            r.register_histogram(&self.duration, &METADATA)
                .record(elapsed.as_secs_f64());
        }
    }

    /// The keys of `event` on `processor`, from this thread's cache.
    fn of(event: &str, processor: &'static str) -> Arc<Keys> {
        /// Entries a thread keeps before starting over: the distinct (event,
        /// service) pairs of a program are few; named events made up at
        /// runtime must not grow it without bound.
        const CAPACITY: usize = 1024;
        type Cache = HashMap<(Box<str>, &'static str), Arc<Keys>, RandomState>;
        thread_local! {
            static CACHE: RefCell<Cache> = RefCell::new(HashMap::with_hasher(RandomState::new()));
        }
        let cached = CACHE.try_with(|cache| {
            let mut cache = cache.try_borrow_mut().ok()?;
            if let Some(keys) = cache.get(&Query(event, processor)) {
                return Some(keys.clone());
            }
            if cache.len() >= CAPACITY {
                cache.clear();
            }
            let keys = Arc::new(Keys::new(event, processor));
            cache.insert((event.into(), processor), keys.clone());
            Some(keys)
        });
        // A thread's destructors may emit after its cache is gone: build anew.
        cached
            .ok()
            .flatten()
            .unwrap_or_else(|| Arc::new(Keys::new(event, processor)))
    }
}

/// A borrowed cache key: hashes as the owned one does.
#[derive(Hash)]
struct Query<'a>(&'a str, &'static str);

impl Equivalent<(Box<str>, &'static str)> for Query<'_> {
    fn equivalent(&self, key: &(Box<str>, &'static str)) -> bool {
        *key.0 == *self.0 && key.1 == self.1
    }
}

fn record(f: impl FnOnce(&dyn Recorder)) {
    ::metrics::with_recorder(f);
}

/// A handler's attempt failed and will be retried.
pub(crate) fn retried(event: &str, handler: &'static str) {
    let labels = vec![
        Label::new("event", event.to_owned()),
        Label::new("handler", handler),
    ];
    record(|r| {
        r.register_counter(&Key::from_parts(RETRIES, labels), &METADATA)
            .increment(1);
    });
}

/// A handler's policy gave up on a delivery.
pub(crate) fn exhausted(event: &str, handler: &'static str, reason: &'static str) {
    let labels = vec![
        Label::new("event", event.to_owned()),
        Label::new("handler", handler),
        Label::new("reason", reason),
    ];
    record(|r| {
        r.register_counter(&Key::from_parts(EXHAUSTED, labels), &METADATA)
            .increment(1);
    });
}

/// One emission's part in the metrics: which service counts it, and where.
#[derive(Debug)]
pub(crate) struct Accounting {
    /// The keys of the emission's event on the service that has it.
    keys: Option<(&'static str, Arc<Keys>)>,
    counted: bool,
    stage: Stage,
    started: Option<Instant>,
}

impl Accounting {
    pub(crate) const fn new() -> Self {
        Accounting {
            keys: None,
            counted: false,
            stage: Stage::Outside,
            started: None,
        }
    }

    /// The keys for the emission's current service.
    fn keys(&mut self, event: &str, processor: &'static str) -> Arc<Keys> {
        match &self.keys {
            Some((service, keys)) if *service == processor => keys.clone(),
            _ => {
                let keys = Keys::of(event, processor);
                self.keys = Some((processor, keys.clone()));
                keys
            }
        }
    }

    /// A processing service is about to take the emission (`submit`); what
    /// it answers settles the returned [`Acceptance`]. A service that hands it
    /// to another (axum's, after the response) moves it: it is counted as
    /// emitted once.
    pub(crate) fn accepted(&mut self, event: &str, processor: &'static str) -> Acceptance {
        let previous = self
            .keys
            .as_ref()
            .filter(|_| self.counted)
            .map(|(_, keys)| keys.clone());
        self.leave();
        let keys = self.keys(event, processor);
        let first = !std::mem::replace(&mut self.counted, true);
        record(|r| {
            r.register_gauge(&keys.queued, &METADATA).increment(1.0);
            r.register_gauge(&keys.in_flight, &METADATA).increment(1.0);
        });
        self.stage = Stage::Queued;
        Acceptance {
            keys,
            first,
            previous,
        }
    }

    /// The emission starts running (on the service that set `processor`).
    pub(crate) fn started(&mut self, event: &str, processor: &'static str) {
        if !matches!(&self.keys, Some((service, _)) if *service == processor) {
            // Renamed since it was accepted: out of the accepting service's gauges.
            self.leave();
        }
        let keys = self.keys(event, processor);
        let stage = self.stage;
        record(|r| match stage {
            Stage::Queued => r.register_gauge(&keys.queued, &METADATA).decrement(1.0),
            Stage::Outside => r.register_gauge(&keys.in_flight, &METADATA).increment(1.0),
            Stage::Running => {}
        });
        self.stage = Stage::Running;
        self.started = Some(Instant::now());
    }

    /// The emission ran: what each subscriber did, and how long it took.
    pub(crate) fn ran(&mut self, event: &str, processor: &'static str, report: &RunReport) {
        self.leave();
        let keys = self.keys(event, processor);
        let ran = report.ran() as u64;
        let (mut failed, mut panicked) = (0, 0);
        for failure in report.failures() {
            match failure.kind() {
                FailureKind::Panic => panicked += 1,
                _ => failed += 1,
            }
        }
        let elapsed = self.started.take().map(|started| started.elapsed());
        record(|r| keys.ran(r, ran - failed - panicked, failed, panicked, elapsed));
    }

    /// The emission settles without running: handed off, discarded, or (when
    /// `lost`) dropped.
    pub(crate) fn settled(&mut self, event: &str, processor: &'static str, lost: bool) {
        let counted = self.stage != Stage::Outside;
        self.leave();
        if lost && counted {
            let keys = self.keys(event, processor);
            record(|r| r.register_counter(&keys.dropped, &METADATA).increment(1));
        }
    }

    /// Takes the emission out of its service's gauges.
    fn leave(&mut self) {
        let stage = std::mem::replace(&mut self.stage, Stage::Outside);
        let Some((_, keys)) = &self.keys else { return };
        record(|r| match stage {
            Stage::Outside => {}
            Stage::Queued => {
                r.register_gauge(&keys.queued, &METADATA).decrement(1.0);
                r.register_gauge(&keys.in_flight, &METADATA).decrement(1.0);
            }
            Stage::Running => r.register_gauge(&keys.in_flight, &METADATA).decrement(1.0),
        });
    }
}

/// A processing service's answer to `submit`, still to come: the emission
/// counts as emitted only once the service took it.
#[must_use]
pub(crate) struct Acceptance {
    keys: Arc<Keys>,
    /// The first service to take the emission (not one it was handed on to).
    first: bool,
    /// The service that took it before this one.
    previous: Option<Arc<Keys>>,
}

impl Acceptance {
    /// The service answered: took it (`accepted`), and then dropped it
    /// during `submit` (`lost`); or refused it. A refusal by a service the
    /// emission was handed on to loses what the first one accepted.
    pub(crate) fn settle(self, accepted: bool, lost: bool) {
        record(|r| match (accepted, &self.previous) {
            (true, _) => {
                if self.first {
                    r.register_counter(&self.keys.emissions, &METADATA)
                        .increment(1);
                }
                if lost {
                    r.register_counter(&self.keys.dropped, &METADATA)
                        .increment(1);
                }
            }
            (false, Some(previous)) => {
                r.register_counter(&previous.dropped, &METADATA)
                    .increment(1);
            }
            (false, None) => {}
        });
    }
}

/// What the inline fast path (which builds no emission) ran for one
/// emission, counted as its subscribers return and recorded at its end under
/// `processor="inline"`.
#[derive(Debug)]
pub(crate) struct Tally {
    started: Option<Instant>,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
}

impl Tally {
    /// A tally no one records (a delivery of an emission, which the emission's
    /// accounting counts).
    pub(crate) fn new() -> Self {
        Tally {
            started: None,
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
        }
    }

    /// A tally of the inline fast path, timed from now.
    pub(crate) fn started() -> Self {
        Tally {
            started: Some(Instant::now()),
            ..Tally::new()
        }
    }

    /// A subscriber settled.
    pub(crate) fn settled(&self, settled: &Result<(), anyhow::Error>) {
        match settled {
            Ok(()) => self.unit(true),
            Err(err) if err.is::<HandlerPanic>() => bump(&self.panicked),
            Err(_) => bump(&self.failed),
        }
    }

    /// A unit handler returned (`true`) or panicked.
    pub(crate) fn unit(&self, returned: bool) {
        bump(if returned {
            &self.succeeded
        } else {
            &self.panicked
        });
    }

    /// Records the emission of `event`, if a subscriber ran.
    pub(crate) fn record(&self, event: &str) {
        let get = |count: &AtomicU64| count.load(Relaxed);
        let (succeeded, failed, panicked) =
            (get(&self.succeeded), get(&self.failed), get(&self.panicked));
        let ran = succeeded + failed + panicked;
        if ran == 0 {
            return;
        }
        let keys = Keys::of(event, "inline");
        let elapsed = self.started.map(|started| started.elapsed());
        record(|r| {
            r.register_counter(&keys.emissions, &METADATA).increment(1);
            keys.ran(r, succeeded, failed, panicked, elapsed);
        });
    }
}

/// Adds one to a count only this thread writes (atomic only so that a
/// delivery can be shared with the tasks it runs): a load and a store, no
/// read-modify-write.
fn bump(count: &AtomicU64) {
    count.store(count.load(Relaxed) + 1, Relaxed);
}
