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
    DELIVERIES, DROPPED, DURATION, EMISSIONS, FAILED, IN_FLIGHT, PANICKED, QUEUED, SUCCEEDED,
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
    let snapshot = snapshotter().snapshot();
    let mut totals = TOTALS.get_or_init(Mutex::default).lock().unwrap();
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

/// A tokio service under a name of its own: its gauges are this test's alone.
struct Named(&'static str, TokioProcessingService);

impl ProcessingService for Named {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        self.1.submit(emission)
    }

    fn name(&self) -> &'static str {
        self.0
    }
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
    const NAME: &str = "doomed-tokio";
    snapshotter();
    let linker = EventLinker::new();
    linker
        .on_named("MetricsLost")
        .subscribe_async(|| async {})
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let emitter = EventEmitter::builder()
            .processor(Named(NAME, TokioProcessingService::default()))
            .linker(linker)
            .build();
        // The block never yields: the emissions' tasks never start.
        for _ in 0..3 {
            emitter.emit_named("MetricsLost", ()).unwrap();
        }
    });
    drop(runtime);

    let labels = [("event", "MetricsLost"), ("processor", NAME)];
    assert_eq!(value(EMISSIONS, &labels), 3.0);
    assert_eq!(value(DROPPED, &labels), 3.0);
    assert_eq!(value(DELIVERIES, &labels), 0.0);
    assert_eq!(value(QUEUED, &[("processor", NAME)]), 0.0);
    assert_eq!(value(IN_FLIGHT, &[("processor", NAME)]), 0.0);
}

#[cfg(feature = "redis")]
mod redis_worker {
    use std::time::Duration;

    use pyventus::metrics::{
        DELIVERIES, EMISSIONS, FAILED, IN_FLIGHT, SUCCEEDED, WORKER_ACKED, WORKER_DEAD_LETTERED,
        WORKER_IN_FLIGHT, WORKER_RECEIVED, WORKER_RETRIED,
    };
    use pyventus::redis::Worker;
    use pyventus::{Event, Linker, on};
    use serde::{Deserialize, Serialize};

    use super::common::redis::{
        cleanup, emitter, fresh_queue, redis_url, service, spawn_run, until,
    };
    use super::value;

    #[derive(Debug, Clone, Event, Serialize, Deserialize)]
    struct RedisMetered {
        fail: bool,
    }

    #[derive(Linker)]
    struct RedisMetrics;

    #[on(RedisMetered, linker = RedisMetrics)]
    fn metered(e: &RedisMetered) -> anyhow::Result<()> {
        anyhow::ensure!(!e.fail, "asked to fail");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_worker_counts_received_acked_retried_and_dead_lettered() {
        super::snapshotter();
        let Some(url) = redis_url().await else { return };
        let queue = fresh_queue("metrics");
        let emitter = emitter(service(&url, &queue).await, RedisMetrics::linker());
        emitter.emit(RedisMetered { fail: false }).unwrap();
        emitter.emit(RedisMetered { fail: true }).unwrap();
        let sent = [("event", "RedisMetered"), ("processor", "redis")];
        assert_eq!(value(EMISSIONS, &sent), 2.0);
        assert_eq!(value(IN_FLIGHT, &[("processor", "redis")]), 0.0);

        let worker = Worker::builder(&url)
            .queue(&queue)
            .linker(RedisMetrics::linker())
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

        assert_eq!(value(WORKER_RECEIVED, &backend), 3.0, "one ok, two failed");
        assert_eq!(value(WORKER_ACKED, &backend), 1.0);
        assert_eq!(value(WORKER_RETRIED, &backend), 1.0);
        assert_eq!(
            value(
                WORKER_DEAD_LETTERED,
                &[("backend", "redis"), ("reason", "failed")]
            ),
            1.0
        );
        assert_eq!(value(WORKER_IN_FLIGHT, &backend), 0.0);
        let ran = [("event", "RedisMetered"), ("processor", "redis-worker")];
        assert_eq!(value(DELIVERIES, &ran), 3.0);
        assert_eq!(value(SUCCEEDED, &ran), 1.0);
        assert_eq!(value(FAILED, &ran), 2.0);
        cleanup(&url, &queue).await;
    }
}

#[cfg(feature = "amqp")]
mod amqp_worker {
    use std::time::Duration;

    use pyventus::amqp::{AmqpProcessingService, Worker};
    use pyventus::metrics::{
        EMISSIONS, FAILED, SUCCEEDED, WORKER_ACKED, WORKER_DEAD_LETTERED, WORKER_IN_FLIGHT,
        WORKER_RECEIVED, WORKER_RETRIED,
    };
    use pyventus::{Event, EventEmitter, Linker, on};
    use serde::{Deserialize, Serialize};

    use super::common::amqp::{amqp_url, cleanup, fresh_queue, spawn_run, stop, until};
    use super::value;

    #[derive(Debug, Clone, Event, Serialize, Deserialize)]
    struct AmqpMetered {
        fail: bool,
    }

    #[derive(Linker)]
    struct AmqpMetrics;

    #[on(AmqpMetered, linker = AmqpMetrics)]
    fn metered(e: &AmqpMetered) -> anyhow::Result<()> {
        anyhow::ensure!(!e.fail, "asked to fail");
        Ok(())
    }

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
            .linker(AmqpMetrics::linker())
            .build();
        emitter.emit(AmqpMetered { fail: false }).unwrap();
        emitter.emit(AmqpMetered { fail: true }).unwrap();
        let sent = [("event", "AmqpMetered"), ("processor", "amqp")];
        assert_eq!(value(EMISSIONS, &sent), 2.0);

        let worker = Worker::builder(&url)
            .queue(&queue)
            .linker(AmqpMetrics::linker())
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

        assert_eq!(value(WORKER_RECEIVED, &backend), 3.0, "one ok, two failed");
        assert_eq!(value(WORKER_ACKED, &backend), 1.0);
        assert_eq!(value(WORKER_RETRIED, &backend), 1.0);
        assert_eq!(
            value(
                WORKER_DEAD_LETTERED,
                &[("backend", "amqp"), ("reason", "failed")]
            ),
            1.0
        );
        assert_eq!(value(WORKER_IN_FLIGHT, &backend), 0.0);
        let ran = [("event", "AmqpMetered"), ("processor", "amqp-worker")];
        assert_eq!(value(SUCCEEDED, &ran), 1.0);
        assert_eq!(value(FAILED, &ran), 2.0);
        cleanup(&url, &queue).await;
    }
}
