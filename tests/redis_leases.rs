//! Leases: a worker keeps the entries it runs however its handlers behave
//! (blocking, CPU-bound), finds abandoned entries wherever they sit in the
//! pending list, and never takes an entry back from the worker that claimed it
//! while it was paused; handlers can see their delivery in every kind of
//! handler.
#![cfg(feature = "redis")]

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::redis::{
    cleanup, connection, emitter, fresh_queue, holder, pending, redis_url, service, spawn_child,
    spawn_run, stop, stream_key,
};
use common::until;
use pyventus::redis::{Worker, WorkerBuilder, current_delivery};
use pyventus::{Event, Linker, on};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// A worker of `linker`'s handlers with a short visibility timeout.
fn worker(url: &str, queue: &str, linker: pyventus::EventLinker) -> WorkerBuilder {
    Worker::builder(url)
        .queue(queue)
        .linker(linker)
        .visibility_timeout(Duration::from_millis(300))
        .block(Duration::from_millis(50))
}

// --- Handlers that do not yield cannot starve the lease keeper.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct SlowSync;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct SlowCpu;

#[derive(Linker)]
struct Hogs;

static SYNC_RUNS: AtomicU64 = AtomicU64::new(0);
static INLINE_RUNS: AtomicU64 = AtomicU64::new(0);
static CPU_RUNS: AtomicU64 = AtomicU64::new(0);

/// A plain synchronous handler four visibility timeouts long.
#[on(SlowSync, linker = Hogs)]
fn slow_sync() {
    SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1_200));
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct SlowInline;

/// The same, for a worker told to run synchronous handlers inline.
#[on(SlowInline, linker = Hogs)]
fn slow_inline() {
    INLINE_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1_200));
}

/// Asynchronous, but never yields while it works: it holds its runtime's thread.
#[on(SlowCpu, linker = Hogs)]
async fn slow_cpu() {
    tokio::task::yield_now().await;
    CPU_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1_200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_sync_handler_keeps_its_entry_past_the_visibility_timeout() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("slow-sync");
    emitter(service(&url, &queue).await, Hogs::linker())
        .emit(SlowSync)
        .unwrap();
    let start = |name: &'static str| {
        worker(&url, &queue, Hogs::linker())
            .consumer(name)
            .connect()
    };
    let (a, b) = (
        start("sync-a").await.unwrap(),
        start("sync-b").await.unwrap(),
    );
    let (run_a, run_b) = (spawn_run(&a), spawn_run(&b));
    until(Duration::from_secs(10), "the slow job", async || {
        a.stats().processed + b.stats().processed == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop(&a, run_a).await;
    stop(&b, run_b).await;
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 1, "ran once");
    assert_eq!(a.stats().reclaimed + b.stats().reclaimed, 0);
    cleanup(&url, &queue).await;
}

// --- A run dropped mid-delivery keeps the leases of what it left running.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Outlasting;

static OUTLASTING_RUNS: AtomicU64 = AtomicU64::new(0);

/// Asynchronous and four visibility timeouts long: it outlasts the run that
/// took it.
#[on(Outlasting, linker = Hogs)]
async fn outlasting() {
    OUTLASTING_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
}

/// A `run` future dropped (a `select!` that took another branch) stops
/// reading; the deliveries it started go on to their end and are
/// acknowledged. Their leases must go on too: an entry whose lease lapsed
/// would be claimed by another worker and run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_keeps_the_entries_it_left_running() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("dropped-run");
    emitter(service(&url, &queue).await, Hogs::linker())
        .emit(Outlasting)
        .unwrap();
    let start = |name: &'static str| {
        worker(&url, &queue, Hogs::linker())
            .consumer(name)
            .connect()
    };
    let first = start("dropped").await.unwrap();
    common::drop_run_once(first.run(), "the handler to start", async || {
        OUTLASTING_RUNS.load(Ordering::SeqCst) == 1
    })
    .await;
    // Another worker sweeps the pending list every half visibility timeout.
    let second = start("sweeper").await.unwrap();
    let running = spawn_run(&second);
    until(
        Duration::from_secs(5),
        "the entry acknowledged",
        async || pending(&url, &queue).await == 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop(&second, running).await;
    assert_eq!(
        (
            OUTLASTING_RUNS.load(Ordering::SeqCst),
            second.stats().reclaimed
        ),
        (1, 0),
        "the entry ran again in another worker (runs, reclaimed)"
    );
    assert_eq!(first.stats().processed, 1);
    cleanup(&url, &queue).await;
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Orphaned;

static ORPHANED_RUNS: AtomicU64 = AtomicU64::new(0);

/// Asynchronous and five visibility timeouts long.
#[on(Orphaned, linker = Hogs)]
async fn orphaned() {
    ORPHANED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

/// A delivery dropped with its runtime (its run dropped first) leaves its
/// entry pending, delivered again: it must not leave its lease behind, or
/// the worker's next run renews it for as long as it runs (found by a
/// review: never delivered again in 4 s with a 300 ms visibility timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_gone_with_its_runtime_is_delivered_again_while_the_worker_runs_again() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("orphaned");
    emitter(service(&url, &queue).await, Hogs::linker())
        .emit(Orphaned)
        .unwrap();
    let start = |name: &'static str| {
        worker(&url, &queue, Hogs::linker())
            .consumer(name)
            .connect()
    };
    let first = start("orphaning").await.unwrap();
    let dropped = first.clone();
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(common::drop_run_once(
            dropped.run(),
            "the handler to start",
            async || ORPHANED_RUNS.load(Ordering::SeqCst) == 1,
        ));
        runtime.shutdown_timeout(Duration::from_millis(200));
    })
    .await
    .unwrap();
    let (again, sweeper) = (spawn_run(&first), start("sweeper").await.unwrap());
    let sweeping = spawn_run(&sweeper);
    until(
        Duration::from_secs(4),
        "the entry delivered again",
        async || ORPHANED_RUNS.load(Ordering::SeqCst) == 2,
    )
    .await;
    stop(&first, again).await;
    stop(&sweeper, sweeping).await;
    cleanup(&url, &queue).await;
}

// --- Two deliveries of one entry on one worker keep their own leases.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Twice;

/// The attempts that started, and how many ended.
static TWICE_ATTEMPTS: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static TWICE_ENDED: AtomicU64 = AtomicU64::new(0);

/// Its first delivery runs 1.5 s, a later one 2 s (over six visibility
/// timeouts each).
#[on(Twice, linker = Hogs)]
async fn twice() {
    let attempt = current_delivery().unwrap().attempt;
    TWICE_ATTEMPTS.lock().unwrap().push(attempt);
    let ms = if attempt == 1 { 1_500 } else { 2_000 };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    TWICE_ENDED.fetch_add(1, Ordering::SeqCst);
}

/// A worker that stalled past the visibility timeout, lost its entry to
/// another that then died, and took it back with its sweep, runs the entry
/// twice at once. The first delivery's end must not stop the renewals of the
/// second (found by a review: the leases were removed by entry id, and the
/// entry ran a third time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_delivery_ending_keeps_the_lease_of_a_newer_one_of_its_entry() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("twice");
    emitter(service(&url, &queue).await, Hogs::linker())
        .emit(Twice)
        .unwrap();
    let worker = worker(&url, &queue, Hogs::linker())
        .consumer("w")
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(5), "the first delivery", async || {
        !TWICE_ATTEMPTS.lock().unwrap().is_empty()
    })
    .await;
    // Another worker claims the entry ("w" stalled), then dies.
    let (id, _, _, _) = pending_entries(&url, &queue).await.remove(0);
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(stream_key(&queue))
        .arg("pyventus")
        .arg("ghost")
        .arg(0)
        .arg(&id)
        .arg("JUSTID")
        .query_async(&mut connection(&url).await)
        .await
        .unwrap();
    // The sweep takes it back once the ghost has left it idle: a second
    // delivery on "w" while the first still runs. Once both ended, the sweep
    // would have had a second to take it a third time.
    until(
        Duration::from_secs(6),
        "both deliveries to end",
        async || TWICE_ENDED.load(Ordering::SeqCst) >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(&worker, running).await;
    assert_eq!(*TWICE_ATTEMPTS.lock().unwrap(), [1, 2], "attempts started");
    cleanup(&url, &queue).await;
}

/// (entry id, consumer, idle ms, deliveries) of every pending entry.
async fn pending_entries(url: &str, queue: &str) -> Vec<(String, String, u64, u64)> {
    redis::cmd("XPENDING")
        .arg(stream_key(queue))
        .arg("pyventus")
        .arg("-")
        .arg("+")
        .arg(100)
        .query_async(&mut connection(url).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_handler_run_inline_still_keeps_its_entry() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("slow-inline");
    emitter(service(&url, &queue).await, Hogs::linker())
        .emit(SlowInline)
        .unwrap();
    let start = |name: &'static str| {
        worker(&url, &queue, Hogs::linker())
            .consumer(name)
            .sync_handlers_inline(true)
            .connect()
    };
    let (a, b) = (
        start("inline-a").await.unwrap(),
        start("inline-b").await.unwrap(),
    );
    let (run_a, run_b) = (spawn_run(&a), spawn_run(&b));
    until(Duration::from_secs(10), "the slow job", async || {
        a.stats().processed + b.stats().processed == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop(&a, run_a).await;
    stop(&b, run_b).await;
    assert_eq!(INLINE_RUNS.load(Ordering::SeqCst), 1, "ran once");
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_hogs_its_runtime_does_not_starve_the_lease_keeper() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("slow-cpu");
    emitter(service(&url, &queue).await, Hogs::linker())
        .emit(SlowCpu)
        .unwrap();
    // Worker a alone on a one-thread runtime: the handler holds its only thread.
    let (url_a, queue_a) = (url.clone(), queue.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let hogged = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let a = worker(&url_a, &queue_a, Hogs::linker())
                    .consumer("cpu-a")
                    .connect()
                    .await
                    .unwrap();
                let running = spawn_run(&a);
                until(Duration::from_secs(10), "worker a's job", async || {
                    a.stats().processed == 1
                })
                .await;
                stop(&a, running).await;
                let _ = tx.send(a.stats());
            });
    });
    until(
        Duration::from_secs(5),
        "worker a to start the job",
        async || CPU_RUNS.load(Ordering::SeqCst) == 1,
    )
    .await;
    // Worker b would claim the entry if a's leases lapsed.
    let b = worker(&url, &queue, Hogs::linker())
        .consumer("cpu-b")
        .connect()
        .await
        .unwrap();
    let run_b = spawn_run(&b);
    let a_stats = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
    hogged.join().unwrap();
    stop(&b, run_b).await;
    assert_eq!(CPU_RUNS.load(Ordering::SeqCst), 1, "ran once");
    assert_eq!((a_stats.processed, b.stats().reclaimed), (1, 0));
    cleanup(&url, &queue).await;
}

// --- Every kind of handler sees its delivery.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Traced;

#[derive(Linker)]
struct Seen;

static SEEN: Mutex<Vec<(&str, Option<u64>)>> = Mutex::new(Vec::new());

#[on(Traced, linker = Seen)]
fn in_sync() {
    SEEN.lock()
        .unwrap()
        .push(("sync", current_delivery().map(|d| d.attempt)));
}

#[on(Traced, linker = Seen, blocking)]
fn in_blocking() {
    SEEN.lock()
        .unwrap()
        .push(("blocking", current_delivery().map(|d| d.attempt)));
}

#[on(Traced, linker = Seen)]
async fn in_async() {
    tokio::task::yield_now().await;
    SEEN.lock()
        .unwrap()
        .push(("async", current_delivery().map(|d| d.attempt)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_blocking_and_async_handlers_all_see_their_delivery() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("seen");
    emitter(service(&url, &queue).await, Seen::linker())
        .emit(Traced)
        .unwrap();
    let worker = worker(&url, &queue, Seen::linker())
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(10), "the delivery", async || {
        worker.stats().processed == 1
    })
    .await;
    stop(&worker, running).await;
    let mut seen = SEEN.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [("async", Some(1)), ("blocking", Some(1)), ("sync", Some(1))]
    );
    cleanup(&url, &queue).await;
}

// --- An abandoned entry behind many live ones is found.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Held {
    n: u64,
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Orphan;

#[derive(Linker)]
struct Sweep;

static HELD_RUNS: AtomicU64 = AtomicU64::new(0);
static ORPHAN_RUNS: AtomicU64 = AtomicU64::new(0);

#[on(Held, linker = Sweep)]
fn held(_: &Held) {
    HELD_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[on(Orphan, linker = Sweep)]
fn orphan() {
    ORPHAN_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// `XREADGROUP` as `consumer`, for `count` entries; returns their ids.
async fn take_as(url: &str, queue: &str, consumer: &str, count: usize) -> Vec<String> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "pyventus", consumer][..])
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream_key(queue))
        .arg(">")
        .query_async(&mut connection(url).await)
        .await
        .unwrap();
    reply.keys[0].ids.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_entry_behind_thirty_live_ones_is_reclaimed() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("sweep");
    let service = service(&url, &queue).await;
    let emitter = emitter(service, Sweep::linker());
    for n in 0..30 {
        emitter.emit(Held { n }).unwrap();
    }
    emitter.emit(Orphan).unwrap();
    // A live consumer holds thirty entries and renews them; a dead one holds
    // the last.
    let live = take_as(&url, &queue, "live", 30).await;
    assert_eq!(live.len(), 30);
    let dead = take_as(&url, &queue, "dead", 1).await;
    let (renew_url, renew_queue) = (url.clone(), queue.clone());
    let renewing = tokio::spawn(async move {
        let mut conn = connection(&renew_url).await;
        loop {
            let _: redis::Value = redis::cmd("XCLAIM")
                .arg(stream_key(&renew_queue))
                .arg(&["pyventus", "live", "0"][..])
                .arg(&live)
                .arg("JUSTID")
                .query_async(&mut conn)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // One free slot: each XAUTOCLAIM pass looks at ten pending entries.
    let worker = worker(&url, &queue, Sweep::linker())
        .concurrency(1)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(5), "the orphan to run", async || {
        ORPHAN_RUNS.load(Ordering::SeqCst) == 1
    })
    .await;
    renewing.abort();
    stop(&worker, running).await;
    assert_eq!(
        HELD_RUNS.load(Ordering::SeqCst),
        0,
        "live entries were left alone"
    );
    assert_eq!(holder(&url, &queue, &dead[0]).await, None, "acknowledged");
    cleanup(&url, &queue).await;
}

// --- A paused worker does not take its entry back.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct LongTask;

#[derive(Linker)]
struct Pause;

const CHILD_QUEUE: &str = "PYVENTUS_TEST_PAUSE_QUEUE";

/// Three seconds of work; records who ran it, and whether the child saw its
/// lease lost.
#[on(LongTask, linker = Pause)]
async fn long_task() -> anyhow::Result<()> {
    let child = std::env::var(CHILD_QUEUE).ok();
    let queue = match &child {
        Some(queue) => queue.clone(),
        None => PAUSE_QUEUE.lock().unwrap().clone(),
    };
    let mut conn = connection(&pyventus::redis::url_from_env()).await;
    let who = if child.is_some() { "child" } else { "parent" };
    let _: () = conn.rpush(format!("test:{queue}:runs"), who).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    if child.is_some() {
        let lost = current_delivery().is_some_and(|d| d.lease_lost());
        let _: () = conn.set(format!("test:{queue}:child-saw"), lost).await?;
    }
    Ok(())
}

static PAUSE_QUEUE: Mutex<String> = Mutex::new(String::new());

/// Not a test on its own: the worker process the lost-lease test pauses.
#[test]
fn child_paused_worker() {
    let Ok(queue) = std::env::var(CHILD_QUEUE) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let worker = Worker::builder(&pyventus::redis::url_from_env())
            .queue(&queue)
            .linker(Pause::linker())
            .consumer("paused-child")
            .visibility_timeout(Duration::from_millis(400))
            .block(Duration::from_millis(50))
            .connect()
            .await
            .unwrap();
        worker.run().await.unwrap();
    });
}

fn signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_does_not_take_back_an_entry_another_worker_claimed() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("pause");
    *PAUSE_QUEUE.lock().unwrap() = queue.clone();
    let id = service(&url, &queue)
        .await
        .enqueue(&pyventus::redis::Envelope::new("LongTask", "null"))
        .await
        .unwrap();
    let mut conn = connection(&url).await;
    let runs = format!("test:{queue}:runs");
    let mut child = spawn_child("child_paused_worker", &[(CHILD_QUEUE, &queue)]);
    until(Duration::from_secs(10), "the child to start", async || {
        conn.llen::<_, u64>(&runs).await.unwrap() == 1
    })
    .await;
    signal(&child, "-STOP");

    // Past the visibility timeout, another worker claims the entry.
    let other = Worker::builder(&url)
        .queue(&queue)
        .linker(Pause::linker())
        .consumer("claimer")
        .visibility_timeout(Duration::from_millis(400))
        .block(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&other);
    until(Duration::from_secs(5), "the claim", async || {
        conn.llen::<_, u64>(&runs).await.unwrap() == 2
    })
    .await;
    signal(&child, "-CONT");

    // The child resumes, with its renewals overdue: it must not take it back.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            holder(&url, &queue, &id).await.as_deref(),
            Some("claimer"),
            "the claimer keeps the entry"
        );
    }
    let saw = format!("test:{queue}:child-saw");
    until(
        Duration::from_secs(10),
        "the child's handler to end",
        async || conn.exists::<_, bool>(&saw).await.unwrap(),
    )
    .await;
    let saw: bool = conn.get(&saw).await.unwrap();
    assert!(saw, "the child's handler saw its lease lost");
    until(
        Duration::from_secs(10),
        "the claimer to finish",
        async || other.stats().processed == 1,
    )
    .await;
    assert_eq!(pending(&url, &queue).await, 0);
    stop(&other, running).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let _: () = conn
        .del(&[runs, format!("test:{queue}:child-saw")])
        .await
        .unwrap();
    cleanup(&url, &queue).await;
}
