//! RabbitMQ workers that lose their broker, on a real one: the broker closing
//! the worker's connection, the network cut (and not coming back), the queue
//! deleted. The worker reconnects and declares everything again by itself, or
//! gives up with an error from `run`. Each wait is bounded, so a hang fails the
//! test within seconds.
#![cfg(feature = "amqp")]

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::amqp::{amqp_url, cleanup, fresh_queue, queue_of, raw, spawn_run, stop};
use common::proxy::Proxy;
use common::until;
use lapin::options::QueueDeleteOptions;
use pyventus::amqp::{AmqpProcessingService, Health, Worker};
use pyventus::{Event, EventEmitter, EventLinker, Linker, on};
use serde::{Deserialize, Serialize};

async fn emitter(url: &str, queue: &str, linker: EventLinker) -> EventEmitter {
    let service = AmqpProcessingService::builder(url)
        .queue(queue)
        .connect()
        .await
        .unwrap();
    EventEmitter::builder()
        .processor(service)
        .linker(linker)
        .build()
}

// --- The broker closes the worker's connection; the worker resumes by itself.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Parcel {
    id: u64,
}

#[derive(Linker)]
struct Resilient;

static PARCELS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[on(Parcel, linker = Resilient)]
async fn ship(p: &Parcel) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    PARCELS.lock().unwrap().push(p.id);
}

fn parcels_done(ids: std::ops::Range<u64>) -> bool {
    let done: HashSet<u64> = PARCELS.lock().unwrap().iter().copied().collect();
    ids.into_iter().all(|id| done.contains(&id))
}

/// Asks `rabbitmqctl` to close the connection named `pyventus worker <consumer>`.
/// `false` if `rabbitmqctl` cannot be run here.
async fn close_connection_of(consumer: &str) -> bool {
    let needle = format!("\"pyventus worker {consumer}\"");
    tokio::task::spawn_blocking(move || {
        let Ok(listed) = Command::new("rabbitmqctl")
            .args([
                "list_connections",
                "pid",
                "client_properties",
                "-q",
                "--no-table-headers",
            ])
            .output()
        else {
            return false;
        };
        let listed = String::from_utf8_lossy(&listed.stdout);
        let pid = listed
            .lines()
            .find(|line| line.contains(&needle))
            .and_then(|line| line.split('\t').next())
            .unwrap_or_else(|| panic!("no connection {needle} in:\n{listed}"))
            .to_owned();
        let closed = Command::new("rabbitmqctl")
            .args([
                "close_connection",
                &pid,
                "closed by the pyventus test suite",
            ])
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            closed.status.success(),
            "rabbitmqctl close_connection {pid}: {}",
            String::from_utf8_lossy(&closed.stderr)
        );
        true
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumes_by_itself_after_the_broker_closes_its_connection() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("closed");
    let emitter = emitter(&url, &queue, Resilient::linker()).await;
    for id in 0..100 {
        emitter.emit(Parcel { id }).unwrap();
    }
    let consumer = format!("closed-{}", uuid::Uuid::new_v4().simple());
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Resilient::linker())
        .consumer(&consumer)
        .concurrency(4)
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(20), "some parcels", async || {
        worker.stats().processed >= 10
    })
    .await;
    if !close_connection_of(&consumer).await {
        assert_ne!(
            std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref(),
            Ok("1"),
            "rabbitmqctl is required (PYVENTUS_REQUIRE_SERVICES=1) to close a connection"
        );
        common::skip("rabbitmqctl cannot be run here");
        stop(&worker, running).await;
        cleanup(&url, &queue).await;
        return;
    }
    // Published after the close: only a worker that came back can take them.
    for id in 100..200 {
        emitter.emit(Parcel { id }).unwrap();
    }
    until(Duration::from_secs(30), "every parcel", async || {
        parcels_done(0..200)
    })
    .await;
    assert!(
        !running.is_finished(),
        "run() did not return: no restart needed"
    );
    assert_eq!(worker.stats().reconnects, 1, "{:?}", worker.stats());
    assert!(worker.health().is_ready());
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

// --- The network between worker and broker is cut: the worker reconnects when
// it comes back, and gives up (an error from `run`) when it does not.

/// A worker of `queue` behind `proxy` that reconnects quickly, running, once
/// it has done the parcels `first` sent directly through `emitter`.
async fn worker_behind(
    proxy: &Proxy,
    url: &str,
    queue: &str,
    emitter: &EventEmitter,
    give_up_after: Option<Duration>,
    first: std::ops::Range<u64>,
) -> (
    Worker,
    tokio::task::JoinHandle<Result<(), pyventus::amqp::Error>>,
) {
    let mut builder = Worker::builder(&proxy.url(url))
        .queue(queue)
        .linker(Resilient::linker())
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(200));
    if let Some(after) = give_up_after {
        builder = builder.give_up_after(after);
    }
    let worker = builder.connect().await.unwrap();
    let running = spawn_run(&worker);
    for id in first.clone() {
        emitter.emit(Parcel { id }).unwrap();
    }
    until(Duration::from_secs(20), "the first parcels", async || {
        parcels_done(first.clone())
    })
    .await;
    (worker, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reconnects_when_the_network_comes_back_and_gives_up_when_it_does_not() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("cut");
    let emitter = emitter(&url, &queue, Resilient::linker()).await;
    let mut proxy = Proxy::start(&url, 5672).await;
    let (worker, running) = worker_behind(
        &proxy,
        &url,
        &queue,
        &emitter,
        Some(Duration::from_secs(3)),
        1_000..1_010,
    )
    .await;

    // A short cut: back within the give-up time, the worker resumes.
    proxy.cut().await;
    until(
        Duration::from_secs(10),
        "the worker to notice",
        async || matches!(worker.health(), Health::Reconnecting { .. }),
    )
    .await;
    for id in 1_010..1_020 {
        emitter.emit(Parcel { id }).unwrap();
    }
    proxy.restore().await;
    until(
        Duration::from_secs(20),
        "the parcels sent meanwhile",
        async || parcels_done(1_010..1_020),
    )
    .await;
    assert!(worker.health().is_ready());
    assert_eq!(worker.stats().reconnects, 1);

    // A long one: `run` returns an error a supervisor can act on.
    proxy.cut().await;
    let ended = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("run() returns once it gives up")
        .unwrap();
    let err = ended.unwrap_err();
    assert!(matches!(err, pyventus::amqp::Error::GaveUp { .. }), "{err}");
    assert!(err.to_string().starts_with("gave up after"), "{err}");
    assert_eq!(worker.health(), Health::Failed);
    cleanup(&url, &queue).await;
}

// --- The worker's connection goes silent (a NAT or a firewall forgot it),
// new connections go through: the worker notices and reconnects.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_goes_silent_reconnects() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("stranded");
    let emitter = emitter(&url, &queue, Resilient::linker()).await;
    let proxy = Proxy::start(&url, 5672).await;
    // The URL names no heartbeat: pyventus's default, 10 s, applies, and the
    // connection is given up after two without a word from the broker
    // (RabbitMQ's own default, 60 s, would take two minutes).
    let (worker, running) = worker_behind(&proxy, &url, &queue, &emitter, None, 2_000..2_010).await;
    proxy.strand();
    let stranded = std::time::Instant::now();
    for id in 2_010..2_020 {
        emitter.emit(Parcel { id }).unwrap();
    }
    until(
        Duration::from_secs(40),
        "the parcels sent after the connection went silent",
        async || parcels_done(2_010..2_020),
    )
    .await;
    assert!(
        stranded.elapsed() < Duration::from_secs(30),
        "{:?}",
        stranded.elapsed()
    );
    assert_eq!(worker.stats().reconnects, 1);
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

// --- `shutdown_now` stops a worker at once whatever its connection is doing:
// reconnecting to a broker that does not answer, or on a network gone silent.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Stuck {
    id: u64,
}

#[derive(Linker)]
struct Stalling;

static STUCK_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A handler that would hold its delivery for two minutes.
#[on(Stuck, linker = Stalling)]
async fn stall(_s: &Stuck) {
    STUCK_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_mins(2)).await;
}

/// A worker behind `proxy`, with a 60 s shutdown timeout, running a delivery
/// that stalls.
async fn stalled_worker(
    url: &str,
    queue: &str,
    proxy: &Proxy,
) -> (
    Worker,
    tokio::task::JoinHandle<Result<(), pyventus::amqp::Error>>,
) {
    let worker = Worker::builder(&proxy.url(url))
        .queue(queue)
        .linker(Stalling::linker())
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(200))
        .shutdown_timeout(Duration::from_mins(1))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let before = STUCK_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    emitter(url, queue, Stalling::linker())
        .await
        .emit(Stuck { id: 1 })
        .unwrap();
    until(
        Duration::from_secs(10),
        "the handler to start",
        async || STUCK_STARTED.load(std::sync::atomic::Ordering::SeqCst) > before,
    )
    .await;
    (worker, running)
}

/// How long `run` took to return after `shutdown_now`, at most 10 s.
async fn shutdown_now(
    worker: &Worker,
    running: tokio::task::JoinHandle<Result<(), pyventus::amqp::Error>>,
) -> Duration {
    let asked = std::time::Instant::now();
    worker.shutdown_now();
    let ended = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert!(
        ended.is_ok(),
        "run() still running 10 s after shutdown_now (health {:?})",
        worker.health()
    );
    asked.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_stops_a_worker_at_once_while_it_reconnects_to_a_broker_that_does_not_answer()
{
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("now-reconnecting");
    let mut proxy = Proxy::start(&url, 5672).await;
    let (worker, running) = stalled_worker(&url, &queue, &proxy).await;
    proxy.black_hole().await;
    until(
        Duration::from_secs(10),
        "the worker to reconnect",
        async || matches!(worker.health(), Health::Reconnecting { .. }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // opening, unanswered
    let took = shutdown_now(&worker, running).await;
    assert!(
        took < Duration::from_secs(2),
        "shutdown_now while reconnecting took {took:?}"
    );
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_stops_a_draining_worker_at_once_on_a_silent_network() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("now-silent");
    let proxy = Proxy::start(&url, 5672).await;
    let (worker, running) = stalled_worker(&url, &queue, &proxy).await;
    proxy.silence();
    worker.shutdown(); // drains: the stalled delivery has a minute
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = shutdown_now(&worker, running).await;
    assert!(
        took < Duration::from_secs(3),
        "shutdown_now on a silent network took {took:?}"
    );
    cleanup(&url, &queue).await;
}

// --- The queue is deleted under a running worker: it declares it again.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_declares_its_queue_again_when_it_is_deleted() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("deleted");
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Resilient::linker())
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(
        Duration::from_secs(10),
        "the worker to consume",
        async || worker.health().is_ready(),
    )
    .await;
    let (connection, channel) = raw(&url).await;
    channel
        .queue_delete(
            queue_of(&queue).as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
    until(
        Duration::from_secs(10),
        "the worker to come back",
        async || worker.stats().reconnects == 1 && worker.health().is_ready(),
    )
    .await;
    // The emitter finds the queue the worker declared again.
    let emitter = emitter(&url, &queue, Resilient::linker()).await;
    emitter.emit(Parcel { id: 2_000 }).unwrap();
    until(Duration::from_secs(10), "the parcel", async || {
        parcels_done(2_000..2_001)
    })
    .await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

// --- The emitter's side: while the broker is away `emit` fails (never a silent
// loss), and the next `emit` after it is back reconnects by itself.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitter_fails_while_the_broker_is_away_and_reconnects_on_the_next_emit() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("emitter-cut");
    let mut proxy = Proxy::start(&url, 5672).await;
    let service = AmqpProcessingService::builder(&proxy.url(&url))
        .queue(&queue)
        .connect_timeout(Duration::from_secs(2))
        .confirm_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let emitter = EventEmitter::builder()
        .processor(service)
        .linker(Resilient::linker())
        .build();
    emitter.emit(Parcel { id: 3_000 }).unwrap();

    proxy.cut().await;
    let err = emitter.emit(Parcel { id: 3_001 }).unwrap_err();
    assert!(
        matches!(
            err,
            pyventus::Error::Processor {
                processor: "amqp",
                ..
            }
        ),
        "{err}"
    );

    proxy.restore().await;
    emitter.emit(Parcel { id: 3_002 }).unwrap();
    assert_eq!(
        common::amqp::ready(&url, &queue_of(&queue)).await,
        2,
        "what `emit` confirmed is on the queue, and only that"
    );
    cleanup(&url, &queue).await;
}
