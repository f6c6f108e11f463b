//! Metrics (the `metrics` feature), read back from a `metrics-util` debugging
//! recorder installed for this test binary: emissions and deliveries by
//! outcome on each processing service, the queue depth and in-flight gauges,
//! losses, and the broker workers' counters against a real Redis and RabbitMQ.
#![cfg(feature = "metrics")]
// The values compared are small whole numbers, exact as `f64`.
#![allow(clippy::float_cmp)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pyventus::metrics::{
    DELIVERIES, DROPPED, DURATION, EMISSIONS, EXHAUSTED, FAILED, IN_FLIGHT, PANICKED, QUEUED,
    RETRIES, SUCCEEDED,
};
use pyventus::{
    Error, EventEmission, EventEmitter, EventLinker, ExecutorProcessingService,
    InlineProcessingService, ProcessingService, TokioProcessingService,
};

/// Every value recorded in this binary so far. The debugging recorder's
/// snapshots drain what they read (counters and gauges back to 0), so the
/// readings are summed here: what the recorder was told, in total.
#[derive(Default)]
struct Totals {
    scalars: HashMap<(String, Vec<(String, String)>), f64>,
    samples: HashMap<(String, Vec<(String, String)>), usize>,
}

/// Installs the recorder, once: the first call of every test, before it
/// records anything.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("no other recorder in this test binary");
        snapshotter
    })
}

/// Reads what was recorded since the last read into the totals, and answers
/// from them.
fn read<T>(f: impl FnOnce(&Totals) -> T) -> T {
    static TOTALS: OnceLock<Mutex<Totals>> = OnceLock::new();
    // A snapshot drains the recorder: taken under the lock, so that a test
    // reading meanwhile never misses what another's snapshot took and had
    // not added yet (one read 0 retries where 2 were recorded, in CI).
    let mut totals = TOTALS.get_or_init(Mutex::default).lock().unwrap();
    let snapshot = snapshotter().snapshot();
    for (key, _, _, value) in snapshot.into_vec() {
        let key = key.key();
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let id = (key.name().to_owned(), labels);
        match value {
            #[allow(clippy::cast_precision_loss)]
            DebugValue::Counter(n) => *totals.scalars.entry(id).or_default() += n as f64,
            DebugValue::Gauge(v) => *totals.scalars.entry(id).or_default() += v.into_inner(),
            DebugValue::Histogram(samples) => {
                *totals.samples.entry(id).or_default() += samples.len();
            }
        }
    }
    f(&totals)
}

fn matches(labels: &[(String, String)], wanted: &[(&str, &str)]) -> bool {
    wanted
        .iter()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

/// The total of a counter or gauge over the series with these labels.
fn value(name: &str, labels: &[(&str, &str)]) -> f64 {
    read(|totals| {
        totals
            .scalars
            .iter()
            .filter(|((n, l), _)| n == name && matches(l, labels))
            .map(|(_, v)| v)
            .sum()
    })
}

/// The number of samples a histogram took over the series with these labels.
fn samples(name: &str, labels: &[(&str, &str)]) -> usize {
    read(|totals| {
        totals
            .samples
            .iter()
            .filter(|((n, l), _)| n == name && matches(l, labels))
            .map(|(_, v)| v)
            .sum()
    })
}

/// A linker whose `event` has three subscribers: one succeeds, one fails,
/// one panics.
fn three_outcomes(event: &'static str) -> EventLinker {
    let linker = EventLinker::new();
    linker.on_named(event).subscribe(|| ()).unwrap();
    linker
        .on_named(event)
        .subscribe(|| -> anyhow::Result<()> { anyhow::bail!("declined") })
        .unwrap();
    linker.on_named(event).subscribe(explode).unwrap();
    linker
}

fn explode() {
    panic!("boom");
}

fn assert_outcomes(event: &str, processor: &str, emissions: f64) {
    let labels = [("event", event), ("processor", processor)];
    assert_eq!(value(EMISSIONS, &labels), emissions, "{EMISSIONS}");
    assert_eq!(value(DELIVERIES, &labels), 3.0 * emissions, "{DELIVERIES}");
    assert_eq!(value(SUCCEEDED, &labels), emissions, "{SUCCEEDED}");
    assert_eq!(value(FAILED, &labels), emissions, "{FAILED}");
    assert_eq!(value(PANICKED, &labels), emissions, "{PANICKED}");
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let runs = emissions as usize;
    assert_eq!(samples(DURATION, &labels), runs, "{DURATION}");
    assert_eq!(value(DROPPED, &labels), 0.0, "{DROPPED}");
}

#[test]
fn a_policys_retries_and_give_ups_are_counted_by_handler_and_reason() {
    snapshotter();
    let linker = EventLinker::new();
    linker
        .on_named("MetricsPolicy")
        .retries(2)
        .backoff(Duration::ZERO, Duration::ZERO)
        .subscribe(|| -> anyhow::Result<()> { anyhow::bail!("down") })
        .unwrap();
    let emitter = EventEmitter::builder()
        .processor(InlineProcessingService::new())
        .linker(linker)
        .build();
    emitter.emit_named("MetricsPolicy", ()).unwrap();
    let event = [("event", "MetricsPolicy"), ("handler", "<runtime>")];
    assert_eq!(value(RETRIES, &event), 2.0, "{RETRIES}");
    let failed = [("event", "MetricsPolicy"), ("reason", "failed")];
    assert_eq!(value(EXHAUSTED, &failed), 1.0, "{EXHAUSTED}");
    // The run's own counters see one failed delivery, not three.
    assert_eq!(
        value(FAILED, &[("event", "MetricsPolicy")]),
        1.0,
        "{FAILED}"
    );
}

#[test]
fn inline_emissions_count_each_delivery_by_outcome() {
    snapshotter();
    let emitter = EventEmitter::builder()
        .processor(InlineProcessingService::new())
        .linker(three_outcomes("MetricsInline"))
        .build();
    emitter.emit_named("MetricsInline", ()).unwrap();
    emitter.emit_named("MetricsInline", ()).unwrap();
    assert_outcomes("MetricsInline", "inline", 2.0);
}

#[test]
fn executor_emissions_count_each_delivery_by_outcome() {
    snapshotter();
    let executor = ExecutorProcessingService::with_threads(2);
    let emitter = EventEmitter::builder()
        .processor(executor.clone())
        .linker(three_outcomes("MetricsExecutor"))
        .build();
    for _ in 0..3 {
        emitter.emit_named("MetricsExecutor", ()).unwrap();
    }
    executor.wait_for_tasks().unwrap();
    assert_outcomes("MetricsExecutor", "executor", 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_emissions_count_each_delivery_by_outcome() {
    snapshotter();
    let tokio = TokioProcessingService::default();
    let emitter = EventEmitter::builder()
        .processor(tokio.clone())
        .linker(three_outcomes("MetricsTokio"))
        .build();
    emitter.emit_named("MetricsTokio", ()).unwrap();
    emitter
        .emit_named_and_wait("MetricsTokio", ())
        .await
        .unwrap();
    tokio.wait_for_tasks().await.unwrap();
    assert_outcomes("MetricsTokio", "tokio", 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_and_in_flight_follow_emissions_until_they_finish() {
    const NAME: &str = "ordered-tokio";
    snapshotter();
    let gauges = || {
        (
            value(QUEUED, &[("processor", NAME)]),
            value(IN_FLIGHT, &[("processor", NAME)]),
        )
    };
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let linker = EventLinker::new();
    let (s, r) = (started.clone(), release.clone());
    linker
        .on_named("MetricsHeld")
        .subscribe_async(move || {
            let (started, release) = (s.clone(), r.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                release.acquire().await.unwrap().forget();
            }
        })
        .unwrap();
    let tokio = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let emitter = EventEmitter::builder()
        .processor(Named(NAME, tokio.clone()))
        .linker(linker)
        .build();

    emitter.emit_named("MetricsHeld", ()).unwrap();
    emitter.emit_named("MetricsHeld", ()).unwrap();
    common::within(Duration::from_secs(5), "the first emission to start", {
        let started = started.clone();
        move || while started.load(Ordering::SeqCst) == 0 {}
    });
    // One runs (held), one waits its turn behind it.
    assert_eq!(gauges(), (1.0, 2.0), "(queued, in flight) with one held");

    release.add_permits(1);
    common::within(Duration::from_secs(5), "the second emission to start", {
        let started = started.clone();
        move || while started.load(Ordering::SeqCst) < 2 {}
    });
    assert_eq!(
        gauges(),
        (0.0, 1.0),
        "(queued, in flight) with the second held"
    );

    release.add_permits(1);
    tokio.wait_for_tasks().await.unwrap();
    assert_eq!(
        gauges(),
        (0.0, 0.0),
        "(queued, in flight) when all finished"
    );
    let labels = [("event", "MetricsHeld"), ("processor", NAME)];
    assert_eq!(value(EMISSIONS, &labels), 2.0);
    assert_eq!(value(SUCCEEDED, &labels), 2.0);
}

#[test]
fn emissions_lost_when_their_runtime_shuts_down_count_as_dropped() {
    snapshotter();
    // Spawned each on its own task, or queued behind one drain (ordered).
    for (name, ordered) in [("doomed-tokio", false), ("doomed-ordered-tokio", true)] {
        let linker = EventLinker::new();
        linker
            .on_named("MetricsLost")
            .subscribe_async(|| async {})
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let tokio = TokioProcessingService::builder()
                .enforce_submission_order(ordered)
                .build();
            let emitter = EventEmitter::builder()
                .processor(Named(name, tokio))
                .linker(linker)
                .build();
            // The block never yields: the emissions' tasks never start.
            for _ in 0..3 {
                emitter.emit_named("MetricsLost", ()).unwrap();
            }
        });
        drop(runtime);

        let labels = [("event", "MetricsLost"), ("processor", name)];
        assert_eq!(value(EMISSIONS, &labels), 3.0, "{name}");
        assert_eq!(value(DROPPED, &labels), 3.0, "{name}");
        assert_eq!(value(DELIVERIES, &labels), 0.0, "{name}");
        assert_eq!(gauges(name), (0.0, 0.0), "{name}");
    }
}

/// The event both workers' tests send: one succeeds, one always fails.
#[cfg(any(feature = "redis", feature = "amqp"))]
#[derive(Debug, Clone, pyventus::Event, serde::Serialize, serde::Deserialize)]
struct Metered {
    fail: bool,
}

#[cfg(any(feature = "redis", feature = "amqp"))]
#[derive(pyventus::Linker)]
struct WorkerMetrics;

#[cfg(any(feature = "redis", feature = "amqp"))]
#[pyventus::on(Metered, linker = WorkerMetrics)]
fn metered(e: &Metered) -> anyhow::Result<()> {
    anyhow::ensure!(!e.fail, "asked to fail");
    Ok(())
}

/// What a worker counted after one delivery that succeeded and one that
/// failed both its attempts (`max_deliveries(2)`) and was dead-lettered.
#[cfg(any(feature = "redis", feature = "amqp"))]
fn assert_one_acked_one_dead_lettered(backend: &str, event: &str) {
    use pyventus::metrics::{
        WORKER_ACKED, WORKER_DEAD_LETTERED, WORKER_IN_FLIGHT, WORKER_RECEIVED, WORKER_RETRIED,
    };
    let labels = [("backend", backend)];
    assert_eq!(value(WORKER_RECEIVED, &labels), 3.0, "one ok, two failed");
    assert_eq!(value(WORKER_ACKED, &labels), 1.0);
    assert_eq!(value(WORKER_RETRIED, &labels), 1.0);
    let failed_letters = [("backend", backend), ("reason", "failed")];
    assert_eq!(value(WORKER_DEAD_LETTERED, &failed_letters), 1.0);
    assert_eq!(value(WORKER_IN_FLIGHT, &labels), 0.0);
    let processor = format!("{backend}-worker");
    let ran = [("event", event), ("processor", processor.as_str())];
    assert_eq!(value(DELIVERIES, &ran), 3.0);
    assert_eq!(value(SUCCEEDED, &ran), 1.0);
    assert_eq!(value(FAILED, &ran), 2.0);
}

#[cfg(feature = "redis")]
mod redis_worker {
    use std::time::Duration;

    use super::{Metered, WorkerMetrics};
    use pyventus::metrics::{EMISSIONS, IN_FLIGHT, WORKER_DEAD_LETTERED};
    use pyventus::redis::Worker;

    use super::common::redis::{cleanup, emitter, fresh_queue, redis_url, service, spawn_run};
    use super::common::until;
    use super::value;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_worker_counts_received_acked_retried_and_dead_lettered() {
        super::snapshotter();
        let Some(url) = redis_url().await else { return };
        let queue = fresh_queue("metrics");
        let emitter = emitter(service(&url, &queue).await, WorkerMetrics::linker());
        emitter.emit(Metered { fail: false }).unwrap();
        emitter.emit(Metered { fail: true }).unwrap();
        let sent = [("event", "Metered"), ("processor", "redis")];
        assert_eq!(value(EMISSIONS, &sent), 2.0);
        assert_eq!(value(IN_FLIGHT, &[("processor", "redis")]), 0.0);

        let worker = Worker::builder(&url)
            .queue(&queue)
            .linker(WorkerMetrics::linker())
            .visibility_timeout(Duration::from_millis(150))
            .max_deliveries(2)
            .block(Duration::from_millis(50))
            .connect()
            .await
            .unwrap();
        let running = spawn_run(&worker);
        let backend = [("backend", "redis")];
        until(Duration::from_secs(20), "a dead letter", async || {
            value(WORKER_DEAD_LETTERED, &backend) == 1.0
        })
        .await;
        worker.shutdown();
        running.await.unwrap().unwrap();

        super::assert_one_acked_one_dead_lettered("redis", "Metered");
        cleanup(&url, &queue).await;
    }
}

#[cfg(feature = "amqp")]
mod amqp_worker {
    use std::time::Duration;

    use pyventus::EventEmitter;
    use pyventus::amqp::{AmqpProcessingService, Worker};
    use pyventus::metrics::{EMISSIONS, WORKER_DEAD_LETTERED};

    use super::{Metered, WorkerMetrics};

    use super::common::amqp::{amqp_url, cleanup, fresh_queue, spawn_run, stop};
    use super::common::until;
    use super::value;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_amqp_worker_counts_received_acked_retried_and_dead_lettered() {
        super::snapshotter();
        let Some(url) = amqp_url().await else { return };
        let queue = fresh_queue("metrics");
        let service = AmqpProcessingService::builder(&url)
            .queue(&queue)
            .max_deliveries(2)
            .connect()
            .await
            .unwrap();
        let emitter = EventEmitter::builder()
            .processor(service)
            .linker(WorkerMetrics::linker())
            .build();
        emitter.emit(Metered { fail: false }).unwrap();
        emitter.emit(Metered { fail: true }).unwrap();
        let sent = [("event", "Metered"), ("processor", "amqp")];
        assert_eq!(value(EMISSIONS, &sent), 2.0);

        let worker = Worker::builder(&url)
            .queue(&queue)
            .linker(WorkerMetrics::linker())
            .max_deliveries(2)
            .retry_delay(Duration::from_millis(10))
            .connect()
            .await
            .unwrap();
        let running = spawn_run(&worker);
        let backend = [("backend", "amqp")];
        until(Duration::from_secs(20), "a dead letter", async || {
            value(WORKER_DEAD_LETTERED, &backend) == 1.0
        })
        .await;
        stop(&worker, running).await;

        super::assert_one_acked_one_dead_lettered("amqp", "Metered");
        cleanup(&url, &queue).await;
    }
}

// --- Faults: refusals, losses during submit, renamed services, emissions with
// no local subscriber, a service handing emissions on, thread destructors.

fn gauges(processor: &str) -> (f64, f64) {
    (
        value(QUEUED, &[("processor", processor)]),
        value(IN_FLIGHT, &[("processor", processor)]),
    )
}

fn one_sub(event: &'static str) -> EventLinker {
    let linker = EventLinker::new();
    linker.on_named(event).subscribe(|| ()).unwrap();
    linker
}

/// A service under a name of its own that forwards to another: its gauges
/// are one test's alone.
struct Named<P>(&'static str, P);
impl<P: ProcessingService> ProcessingService for Named<P> {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        self.1.submit(emission)
    }
    fn runs_remotely(&self) -> bool {
        self.1.runs_remotely()
    }
    fn name(&self) -> &'static str {
        self.0
    }
}

// A refused emission (submit returns an error) was never accepted: not counted.
#[test]
fn a_refused_emission_is_not_counted_as_emitted() {
    snapshotter();
    let executor = ExecutorProcessingService::with_threads(1);
    executor.shutdown(true);
    let emitter = EventEmitter::builder()
        .processor(Named("rv-closed-exec", executor))
        .linker(one_sub("RvRefused"))
        .build();
    let err = emitter.emit_named("RvRefused", ()).unwrap_err();
    assert!(matches!(err, Error::ProcessorClosed), "{err:?}");
    let labels = [("event", "RvRefused"), ("processor", "rv-closed-exec")];
    assert_eq!(gauges("rv-closed-exec"), (0.0, 0.0));
    assert_eq!(
        value(EMISSIONS, &labels),
        0.0,
        "a refused emission was not accepted"
    );
}

// The same for tokio's refusal of a self-wait (WouldDeadlock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_wait_refused_with_would_deadlock_is_not_counted_as_emitted() {
    snapshotter();
    let tokio = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let linker = EventLinker::new();
    let emitter = EventEmitter::builder()
        .processor(Named("rv-ordered-refuse", tokio.clone()))
        .linker(linker.clone())
        .build();
    let inner = emitter.clone();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    linker.on_named("RvInner").subscribe(|| ()).unwrap();
    linker
        .on_named("RvOuter")
        .subscribe_async(move || {
            let inner = inner.clone();
            let s = s.clone();
            async move {
                let r = inner.emit_named_and_wait("RvInner", ()).await;
                *s.lock().unwrap() = Some(format!("{r:?}"));
            }
        })
        .unwrap();
    emitter.emit_named("RvOuter", ()).unwrap();
    tokio.wait_for_tasks().await.unwrap();
    let labels = [("event", "RvInner"), ("processor", "rv-ordered-refuse")];
    assert_eq!(gauges("rv-ordered-refuse"), (0.0, 0.0));
    assert_eq!(
        value(EMISSIONS, &labels),
        0.0,
        "refused (WouldDeadlock), not accepted"
    );
}

// An emission a service accepts (Ok) and drops during submit is lost: counted
// as dropped, as it is logged.
struct Blackhole;
impl ProcessingService for Blackhole {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        drop(emission);
        Ok(())
    }
    fn name(&self) -> &'static str {
        "rv-blackhole"
    }
}

#[test]
fn an_emission_accepted_then_dropped_during_submit_counts_as_dropped() {
    snapshotter();
    let emitter = EventEmitter::builder()
        .processor(Blackhole)
        .linker(one_sub("RvBlackhole"))
        .build();
    emitter.emit_named("RvBlackhole", ()).unwrap();
    let labels = [("event", "RvBlackhole"), ("processor", "rv-blackhole")];
    assert_eq!(value(EMISSIONS, &labels), 1.0);
    assert_eq!(value(DROPPED, &labels), 1.0, "accepted, then lost");
}

// The same through the tokio service on a runtime that has shut down (its
// spawn drops the task at once).
#[test]
fn an_emission_spawned_on_a_shut_down_runtime_counts_as_dropped() {
    snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handle = runtime.handle().clone();
    drop(runtime);
    let _entered = handle.enter();
    let linker = EventLinker::new();
    linker
        .on_named("RvDeadRuntime")
        .subscribe_async(|| async {})
        .unwrap();
    let emitter = EventEmitter::builder()
        .processor(Named("rv-dead-rt", TokioProcessingService::default()))
        .linker(linker)
        .build();
    let result = emitter.emit_named("RvDeadRuntime", ());
    let labels = [("event", "RvDeadRuntime"), ("processor", "rv-dead-rt")];
    assert!(result.is_ok());
    assert_eq!(value(EMISSIONS, &labels), 1.0);
    assert_eq!(value(DROPPED, &labels), 1.0, "accepted, then lost");
}

// A service that renames the emission (set_processor) inside submit: each
// name's gauges come back to 0.
struct Renamer;
impl ProcessingService for Renamer {
    fn submit(&self, mut emission: EventEmission) -> Result<(), Error> {
        emission.set_processor("rv-renamed");
        drop(emission.run_blocking());
        Ok(())
    }
    fn name(&self) -> &'static str {
        "rv-renamer"
    }
}

#[test]
fn a_service_that_renames_the_emission_leaves_both_gauges_at_zero() {
    snapshotter();
    let emitter = EventEmitter::builder()
        .processor(Renamer)
        .linker(one_sub("RvRenamed"))
        .build();
    emitter.emit_named("RvRenamed", ()).unwrap();
    let (a, b) = (gauges("rv-renamer"), gauges("rv-renamed"));
    assert_eq!((a, b), ((0.0, 0.0), (0.0, 0.0)));
}

// An emission with no local subscriber (submitted because the service runs
// remotely) that the service refuses: its gauges come back to 0.
struct RemoteRefuser;
impl ProcessingService for RemoteRefuser {
    fn submit(&self, _emission: EventEmission) -> Result<(), Error> {
        Err(Error::ProcessorRefused {
            reason: "broker down".to_owned(),
        })
    }
    fn runs_remotely(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "rv-remote-refuser"
    }
}

#[test]
fn a_refused_emission_without_local_subscribers_leaves_the_gauges_at_zero() {
    snapshotter();
    let emitter = EventEmitter::builder()
        .processor(RemoteRefuser)
        .linker(EventLinker::new())
        .build();
    for _ in 0..3 {
        assert!(emitter.emit_named("RvNoLocal", ()).is_err());
    }
    assert_eq!(gauges("rv-remote-refuser"), (0.0, 0.0));
}

// The same against a real Redis: an entry too large for the queue, of an
// event nobody handles locally.
#[cfg(feature = "redis")]
mod redis_faults {
    use super::*;
    use pyventus::Event;
    use pyventus::redis::RedisProcessingService;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Event, Serialize, Deserialize)]
    struct RvShipped {
        note: String,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_too_large_for_redis_leaves_the_gauges_at_zero() {
        super::snapshotter();
        let Some(server) = super::common::redis::RedisServer::start(&[]) else {
            panic!("no redis-server")
        };
        let service = RedisProcessingService::builder(&server.url())
            .queue("rv-review")
            .max_entry_size(16)
            .connect()
            .await
            .unwrap();
        let emitter = EventEmitter::builder()
            .processor(service)
            .linker(EventLinker::new())
            .build();
        for _ in 0..2 {
            let refused = emitter.emit(RvShipped {
                note: "x".repeat(100),
            });
            assert!(refused.is_err(), "too large for the queue");
        }
        let labels = [("event", "RvShipped"), ("processor", "redis")];
        assert_eq!(value(EMISSIONS, &labels), 0.0, "refused, not emitted");
        assert_eq!(gauges("redis"), (0.0, 0.0));
    }
}

// A run cut short by a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_short_leaves_the_gauges_at_zero() {
    #[derive(Debug, pyventus::Event)]
    struct RvCut;
    snapshotter();
    let linker = EventLinker::new();
    linker
        .on::<RvCut>()
        .subscribe_async(std::future::pending::<()>)
        .unwrap();
    for redeliverable in [true, false] {
        let mut emission = EventEmission::resolve(&linker, Arc::new(RvCut)).unwrap();
        emission.set_processor(if redeliverable {
            "rv-cut-redeliver"
        } else {
            "rv-cut-lost"
        });
        emission.set_redeliverable(redeliverable);
        let r = tokio::time::timeout(Duration::from_millis(20), emission.run()).await;
        assert!(r.is_err());
    }
    for (name, lost) in [("rv-cut-redeliver", 0.0), ("rv-cut-lost", 1.0)] {
        let labels = [("event", "RvCut"), ("processor", name)];
        assert_eq!(gauges(name), (0.0, 0.0));
        assert_eq!(value(DELIVERIES, &labels), 0.0, "{name}: cut short");
        assert_eq!(value(DROPPED, &labels), lost, "{name}: a broker redelivers");
    }
}

// An executor shut down with work queued, and nested emissions.
#[test]
fn an_executor_shut_down_with_work_queued_leaves_the_gauges_at_zero() {
    snapshotter();
    let executor = ExecutorProcessingService::with_threads(1);
    let linker = EventLinker::new();
    let emitter = EventEmitter::builder()
        .processor(Named("rv-exec", executor.clone()))
        .linker(linker.clone())
        .build();
    let inner = emitter.clone();
    linker
        .on_named("RvExecOuter")
        .subscribe(move || {
            std::thread::sleep(Duration::from_millis(5));
            let _ = inner.emit_named("RvExecInner", ());
        })
        .unwrap();
    linker.on_named("RvExecInner").subscribe(|| ()).unwrap();
    for _ in 0..5 {
        emitter.emit_named("RvExecOuter", ()).unwrap();
    }
    executor.shutdown(true);
    assert_eq!(gauges("rv-exec"), (0.0, 0.0));
}

// axum: committed, discarded on an error response, and refused by the layer's
// processor after the response (lost: counted as dropped).
#[cfg(feature = "axum")]
mod axum_faults {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};
    use tokio::net::TcpListener;

    pub(super) async fn serve(app: Router) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    pub(super) async fn get_status(addr: std::net::SocketAddr, path: &str) -> StatusCode {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<axum::body::Bytes>>();
        let response = client
            .get(format!("http://{addr}{path}").parse().unwrap())
            .await
            .unwrap();
        let status = response.status();
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        status
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn axum_emissions_committed_discarded_or_refused_after_the_response() {
        snapshotter();
        let linker = EventLinker::new();
        linker.on_named("RvAxumOk").subscribe(|| ()).unwrap();
        linker.on_named("RvAxumErr").subscribe(|| ()).unwrap();
        linker.on_named("RvAxumRefused").subscribe(|| ()).unwrap();

        let tokio = TokioProcessingService::default();
        let layer = BackgroundEmitterLayer::new()
            .linker(linker.clone())
            .processor(Named("rv-axum-inner", tokio.clone()));
        let closed = ExecutorProcessingService::with_threads(1);
        closed.shutdown(true);
        let refusing_layer = BackgroundEmitterLayer::new()
            .linker(linker.clone())
            .processor(Named("rv-axum-closed", closed));
        let app = Router::new()
            .route(
                "/ok",
                get(|e: BackgroundEmitter| async move {
                    e.emit_named("RvAxumOk", ()).unwrap();
                    StatusCode::OK
                }),
            )
            .route(
                "/err",
                get(|e: BackgroundEmitter| async move {
                    e.emit_named("RvAxumErr", ()).unwrap();
                    StatusCode::INTERNAL_SERVER_ERROR
                }),
            )
            .layer(layer.clone());
        let app2 = Router::new()
            .route(
                "/refused",
                get(|e: BackgroundEmitter| async move {
                    e.emit_named("RvAxumRefused", ()).unwrap();
                    StatusCode::OK
                }),
            )
            .layer(refusing_layer.clone());
        let addr = serve(app).await;
        let addr2 = serve(app2).await;
        assert_eq!(get_status(addr, "/ok").await, StatusCode::OK);
        assert_eq!(
            get_status(addr, "/err").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(get_status(addr2, "/refused").await, StatusCode::OK);
        layer.close();
        refusing_layer.close();
        tokio::time::timeout(Duration::from_secs(10), layer.wait())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), refusing_layer.wait())
            .await
            .unwrap();
        tokio.wait_for_tasks().await.unwrap();
        assert_eq!(gauges("axum"), (0.0, 0.0));
        assert_eq!(gauges("rv-axum-inner"), (0.0, 0.0));
        assert_eq!(gauges("rv-axum-closed"), (0.0, 0.0));
        let refused = [("event", "RvAxumRefused")];
        assert_eq!(value(DROPPED, &refused), 1.0, "accepted by axum, then lost");
    }
}

// The per-thread key cache past its capacity, and one event on many services.
#[test]
fn the_key_cache_keeps_labels_right_past_its_capacity() {
    snapshotter();
    let linker = EventLinker::new();
    linker.on_any().subscribe(|| ()).unwrap();
    let a = EventEmitter::builder()
        .processor(Named("rv-cache-a", InlineProcessingService::new()))
        .linker(linker.clone())
        .build();
    let b = EventEmitter::builder()
        .processor(Named("rv-cache-b", InlineProcessingService::new()))
        .linker(linker.clone())
        .build();
    for i in 0..1500 {
        let name = format!("RvCache{i}");
        a.emit_named(name.clone(), ()).unwrap();
        b.emit_named(name, ()).unwrap();
    }
    for i in [0, 1023, 1024, 1499] {
        let name = format!("RvCache{i}");
        for p in ["rv-cache-a", "rv-cache-b"] {
            let labels = [("event", name.as_str()), ("processor", p)];
            assert_eq!(value(EMISSIONS, &labels), 1.0, "{name} {p}");
            assert_eq!(value(SUCCEEDED, &labels), 1.0, "{name} {p}");
        }
    }
    assert_eq!(gauges("rv-cache-a"), (0.0, 0.0));
}

// axum over a service that runs remotely: an event with no local subscriber
// reaches it (the BackgroundEmitter forwards runs_remotely and
// wants_every_emission).
struct RemoteSink(Arc<AtomicUsize>);
impl ProcessingService for RemoteSink {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        emission.handed_off();
        Ok(())
    }
    fn runs_remotely(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "rv-remote-sink"
    }
}

#[cfg(feature = "axum")]
mod axum_remote {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn axum_over_a_remote_service_forwards_events_without_local_subscribers() {
        snapshotter();
        let sent = Arc::new(AtomicUsize::new(0));
        // Direct: the remote service gets it.
        let direct = EventEmitter::builder()
            .processor(RemoteSink(sent.clone()))
            .linker(EventLinker::new())
            .build();
        direct.emit_named("RvWorkerOnly", ()).unwrap();
        let after_direct = sent.load(Ordering::SeqCst);
        // Through a BackgroundEmitter over the same service.
        let layer = BackgroundEmitterLayer::new()
            .linker(EventLinker::new())
            .processor(RemoteSink(sent.clone()));
        let app = Router::new()
            .route(
                "/",
                get(|e: BackgroundEmitter| async move {
                    e.emit_named("RvWorkerOnly", ()).unwrap();
                    StatusCode::OK
                }),
            )
            .layer(layer.clone());
        let addr = super::axum_faults::serve(app).await;
        assert_eq!(
            super::axum_faults::get_status(addr, "/").await,
            StatusCode::OK
        );
        layer.close();
        tokio::time::timeout(Duration::from_secs(10), layer.wait())
            .await
            .unwrap();
        let after_axum = sent.load(Ordering::SeqCst);
        assert_eq!(
            after_axum - after_direct,
            1,
            "the axum emission reached the remote service"
        );
    }
}

// An inline emission from a thread-local destructor: the per-thread caches
// may be gone; the emission works all the same.
struct EmitOnDrop(EventEmitter);
impl Drop for EmitOnDrop {
    fn drop(&mut self) {
        self.0.emit_named("RvTlsDrop", ()).unwrap();
    }
}
thread_local! {
    static GUARD: std::cell::RefCell<Option<EmitOnDrop>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn an_emission_from_a_thread_local_destructor_works() {
    snapshotter();
    let emitter = EventEmitter::builder()
        .processor(InlineProcessingService::new())
        .linker(one_sub("RvTlsDrop"))
        .build();
    let joined = std::thread::spawn(move || {
        GUARD
            .try_with(|g| *g.borrow_mut() = Some(EmitOnDrop(emitter.clone())))
            .expect("the thread runs");
        // Registers the per-thread caches after GUARD: destroyed before it.
        emitter.emit_named("RvTlsDrop", ()).unwrap();
    })
    .join();
    assert!(
        joined.is_ok(),
        "the thread's exit did not panic (nor abort)"
    );
    let labels = [("event", "RvTlsDrop"), ("processor", "inline")];
    assert_eq!(value(DELIVERIES, &labels), 2.0, "both emissions ran");
}
