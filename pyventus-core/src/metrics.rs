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
//! Inline emitters skip their fast path with this feature on (it counts
//! nothing): each inline emission then costs what one to a `#[once]`
//! subscriber costs.
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

use std::time::Instant;

use ::metrics::{SharedString, counter, gauge, histogram};

use crate::{FailureKind, RunReport};

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

/// One emission's part in the metrics: which service counts it, and where.
#[derive(Debug)]
pub(crate) struct Accounting {
    counted: bool,
    stage: Stage,
    started: Option<Instant>,
}

impl Accounting {
    pub(crate) const fn new() -> Self {
        Accounting {
            counted: false,
            stage: Stage::Outside,
            started: None,
        }
    }

    /// A processing service accepts the emission (about to: `submit`). A
    /// service that hands it to another (axum's, after the response) moves it:
    /// it is counted as emitted once.
    pub(crate) fn accepted(
        &mut self,
        event: &str,
        processor: &'static str,
        previous: &'static str,
    ) {
        self.leave(previous);
        if !self.counted {
            self.counted = true;
            counter!(EMISSIONS, "event" => label(event), "processor" => processor).increment(1);
        }
        gauge!(QUEUED, "processor" => processor).increment(1.0);
        gauge!(IN_FLIGHT, "processor" => processor).increment(1.0);
        self.stage = Stage::Queued;
    }

    /// The emission starts running.
    pub(crate) fn started(&mut self, processor: &'static str) {
        if self.stage == Stage::Queued {
            gauge!(QUEUED, "processor" => processor).decrement(1.0);
        }
        if self.stage == Stage::Outside {
            gauge!(IN_FLIGHT, "processor" => processor).increment(1.0);
        }
        self.stage = Stage::Running;
        self.started = Some(Instant::now());
    }

    /// The emission ran: what each subscriber did, and how long it took.
    pub(crate) fn ran(&mut self, event: &str, processor: &'static str, report: &RunReport) {
        let event = label(event);
        let labels = [
            ("event", event),
            ("processor", SharedString::from(processor)),
        ];
        let ran = report.ran() as u64;
        let (mut failed, mut panicked) = (0, 0);
        for failure in report.failures() {
            match failure.kind() {
                FailureKind::Panic => panicked += 1,
                _ => failed += 1,
            }
        }
        counter!(DELIVERIES, &labels).increment(ran);
        counter!(SUCCEEDED, &labels).increment(ran - failed - panicked);
        if failed > 0 {
            counter!(FAILED, &labels).increment(failed);
        }
        if panicked > 0 {
            counter!(PANICKED, &labels).increment(panicked);
        }
        if let Some(started) = self.started.take() {
            histogram!(DURATION, &labels).record(started.elapsed().as_secs_f64());
        }
        self.leave(processor);
    }

    /// The emission settles without running: handed off, discarded, or (when
    /// `lost`) dropped.
    pub(crate) fn settled(&mut self, event: &str, processor: &'static str, lost: bool) {
        if lost && self.stage != Stage::Outside {
            counter!(DROPPED, "event" => label(event), "processor" => processor).increment(1);
        }
        self.leave(processor);
    }

    /// Takes the emission out of `processor`'s gauges.
    fn leave(&mut self, processor: &'static str) {
        match self.stage {
            Stage::Outside => {}
            Stage::Queued => {
                gauge!(QUEUED, "processor" => processor).decrement(1.0);
                gauge!(IN_FLIGHT, "processor" => processor).decrement(1.0);
            }
            Stage::Running => gauge!(IN_FLIGHT, "processor" => processor).decrement(1.0),
        }
        self.stage = Stage::Outside;
    }
}

fn label(event: &str) -> SharedString {
    SharedString::from(event.to_owned())
}
