//! Retries: a hung handler times out as a failed delivery, per worker or per
//! handler; failed deliveries come back after a growing backoff; a shutdown
//! deadline leaves the entries in flight for another worker.
#![cfg(feature = "redis")]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::redis::{
    cleanup, dead_letters, emitter, fresh_queue, redis_url, service, spawn_run, stop,
};
use common::until;
use pyventus::redis::{Backoff, Worker};
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};

// --- Timeouts.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Hang;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Quick;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Slow;

#[derive(Linker)]
struct Timeouts;

static QUICK_RUNS: AtomicU64 = AtomicU64::new(0);
static SLOW_RUNS: AtomicU64 = AtomicU64::new(0);

#[on(Hang, linker = Timeouts)]
async fn hangs() {
    std::future::pending::<()>().await;
}

#[on(Quick, linker = Timeouts)]
fn quick() {
    QUICK_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[on(Slow, linker = Timeouts)]
async fn slow() {
    tokio::time::sleep(Duration::from_millis(400)).await;
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_handler_times_out_as_a_failed_delivery_and_frees_its_slot() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("hung");
    let emitter = emitter(service(&url, &queue).await, Timeouts::linker());
    emitter.emit(Hang).unwrap();
    emitter.emit(Quick).unwrap();
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Timeouts::linker())
        .concurrency(1)
        .visibility_timeout(Duration::from_secs(1))
        .max_deliveries(2)
        .handler_timeout(Duration::from_millis(300))
        .block(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = dead_letters(&url, &queue).await;
    until(
        Duration::from_secs(10),
        "the hung entry's letter",
        async || dead.len().await.unwrap() == 1,
    )
    .await;
    until(Duration::from_secs(5), "the quick entry", async || {
        QUICK_RUNS.load(Ordering::SeqCst) == 1
    })
    .await;
    stop(&worker, running).await;
    let letter = &dead.list(1).await.unwrap()[0];
    assert_eq!((letter.event().as_ref(), letter.deliveries), ("Hang", 2));
    assert!(
        letter.reason.contains("timed out after 300ms"),
        "{}",
        letter.reason
    );
    let stats = worker.stats();
    assert_eq!((stats.timed_out, stats.retried, stats.processed), (2, 1, 1));
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_for_one_handler_applies_to_that_handler_alone() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("per-handler");
    let emitter = emitter(service(&url, &queue).await, Timeouts::linker());
    emitter.emit(Hang).unwrap();
    emitter.emit(Slow).unwrap();
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Timeouts::linker())
        .max_deliveries(1)
        .handler_timeout_for("redis_retries::hangs", Duration::from_millis(200))
        .block(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = dead_letters(&url, &queue).await;
    until(Duration::from_secs(10), "both entries", async || {
        dead.len().await.unwrap() == 1 && worker.stats().processed == 1
    })
    .await;
    stop(&worker, running).await;
    assert_eq!(dead.list(1).await.unwrap()[0].event(), "Hang");
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1, "no timeout of its own");
    cleanup(&url, &queue).await;
}

// --- Shutdown deadline.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Stuck;

#[derive(Linker)]
struct Deadline;

static STUCK_RUNS: AtomicU64 = AtomicU64::new(0);

/// Hangs on its first run only.
#[on(Stuck, linker = Deadline)]
async fn stuck_once() {
    if STUCK_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        std::future::pending::<()>().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_deadline_leaves_the_entries_in_flight_to_another_worker() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("deadline");
    emitter(service(&url, &queue).await, Deadline::linker())
        .emit(Stuck)
        .unwrap();
    let build = || {
        Worker::builder(&url)
            .queue(&queue)
            .linker(Deadline::linker())
            .shutdown_deadline(Duration::from_millis(300))
            .block(Duration::from_millis(50))
            .connect()
    };
    let first = build().await.unwrap();
    let running = spawn_run(&first);
    until(Duration::from_secs(5), "the stuck run", async || {
        STUCK_RUNS.load(Ordering::SeqCst) == 1
    })
    .await;
    let started = Instant::now();
    stop(&first, running).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let stats = first.stats();
    assert_eq!(
        (stats.abandoned, stats.processed),
        (1, 0),
        "never acknowledged"
    );

    // Left claimable at once, not after the 30 s visibility timeout.
    let second = build().await.unwrap();
    let running = spawn_run(&second);
    until(
        Duration::from_secs(5),
        "another worker to finish it",
        async || second.stats().processed == 1,
    )
    .await;
    stop(&second, running).await;
    assert_eq!(STUCK_RUNS.load(Ordering::SeqCst), 2);
    cleanup(&url, &queue).await;
}

// --- Backoff between redeliveries.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Flaky;

#[derive(Linker)]
struct Backoffs;

static ATTEMPTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[on(Flaky, linker = Backoffs)]
fn always_fails() -> anyhow::Result<()> {
    ATTEMPTS.lock().unwrap().push(Instant::now());
    anyhow::bail!("not yet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_come_back_after_a_growing_backoff() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("backoff");
    emitter(service(&url, &queue).await, Backoffs::linker())
        .emit(Flaky)
        .unwrap();
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Backoffs::linker())
        .visibility_timeout(Duration::from_secs(3))
        .max_deliveries(4)
        .retry_backoff(
            Backoff::exponential(Duration::from_millis(200), Duration::from_secs(3)).jitter(0.0),
        )
        .block(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = dead_letters(&url, &queue).await;
    until(Duration::from_secs(15), "the letter", async || {
        dead.len().await.unwrap() == 1
    })
    .await;
    stop(&worker, running).await;
    let attempts = ATTEMPTS.lock().unwrap().clone();
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 3, "{gaps:?}");
    for (gap, backoff) in gaps.iter().zip([200, 400, 800]) {
        assert!(
            *gap >= Duration::from_millis(backoff),
            "waited at least the backoff: {gaps:?}"
        );
    }
    assert!(
        gaps[0] < Duration::from_secs(2),
        "not paced by the 3 s visibility timeout: {gaps:?}"
    );
    assert!(gaps[0] < gaps[2], "growing: {gaps:?}");
    cleanup(&url, &queue).await;
}
