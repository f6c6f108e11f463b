//! Distributed processing against a real Redis (`PYVENTUS_REDIS_URL`, default
//! 127.0.0.1:6379). Without one, these tests say so and pass, unless
//! `PYVENTUS_REQUIRE_SERVICES=1` (CI) makes a missing Redis a failure.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::process::Child;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::redis::{
    RedisServer, cleanup, connection, emitter, fresh_queue, pending, redis_url, service, spawn_run,
};
use common::until;
use pyventus::redis::{
    DeadLetters, Delivery, Envelope, RedisProcessingService, Worker, current_delivery,
};
use pyventus::{Error, Event, EventLinker, Linker, on, on_success};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// Runs a worker of the `Failing` namespace with a short visibility timeout
/// until the queue has `letters` dead letters, then stops it.
async fn run_until_dead_letters(
    url: &str,
    queue: &str,
    max_deliveries: u64,
    letters: u64,
) -> (Worker, DeadLetters) {
    let worker = Worker::builder(url)
        .queue(queue)
        .linker(Failing::linker())
        .visibility_timeout(Duration::from_millis(150))
        .max_deliveries(max_deliveries)
        .block(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = DeadLetters::connect(url, queue).await.unwrap();
    until(Duration::from_secs(20), "the dead letters", async || {
        dead.len().await.unwrap() == letters
    })
    .await;
    worker.shutdown();
    running.await.unwrap().unwrap();
    (worker, dead)
}

// --- The happy path: every emission is handled once, with its callbacks.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Greeting {
    n: u64,
}

#[derive(Linker)]
struct HappyPath;

static HAPPY_SUM: AtomicU64 = AtomicU64::new(0);
static HAPPY_CALLBACKS: AtomicU64 = AtomicU64::new(0);
static HAPPY_IDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Takes its delivery as a parameter, and reads it from `current_delivery()`.
#[on(Greeting, linker = HappyPath)]
fn greet(g: &Greeting, delivery: Delivery) -> u64 {
    let current = current_delivery().expect("a worker's handler sees its delivery");
    assert_eq!(delivery.envelope_id, current.envelope_id);
    assert_eq!(delivery.attempt, 1);
    HAPPY_IDS.lock().unwrap().push(delivery.envelope_id);
    HAPPY_SUM.fetch_add(g.n, Ordering::SeqCst);
    g.n
}

#[on_success(greet)]
fn greeted(_n: u64) {
    HAPPY_CALLBACKS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emissions_are_handled_by_a_worker_with_their_callbacks() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("happy");
    let service = service(&url, &queue).await;
    let emitter = emitter(service, HappyPath::linker());
    for n in 1..=100 {
        emitter.emit(Greeting { n }).unwrap();
    }
    // Nothing ran here: the handlers run in the worker.
    assert_eq!(HAPPY_SUM.load(Ordering::SeqCst), 0);

    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(HappyPath::linker())
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(20), "100 greetings", async || {
        worker.stats().processed == 100
    })
    .await;
    worker.shutdown();
    running.await.unwrap().unwrap();

    assert_eq!(HAPPY_SUM.load(Ordering::SeqCst), 5050);
    assert_eq!(
        HAPPY_CALLBACKS.load(Ordering::SeqCst),
        100,
        "success callbacks run in the worker"
    );
    let ids: HashSet<_> = HAPPY_IDS.lock().unwrap().iter().cloned().collect();
    assert_eq!(ids.len(), 100, "every envelope has its own id");
    assert_eq!(worker.stats().retried + worker.stats().dead_lettered, 0);
    let dead = DeadLetters::connect(&url, &queue).await.unwrap();
    assert!(dead.is_empty().await.unwrap());
    cleanup(&url, &queue).await;
}

// --- What cannot cross a process is refused at emit.

#[derive(Debug, Clone, Event)]
struct LocalOnly;

#[derive(Linker)]
struct Refusals;

#[on(LocalOnly, linker = Refusals)]
fn local_only() {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_cross_a_process_is_a_clear_error() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("refusals");
    let service = service(&url, &queue).await;

    let err = emitter(service.clone(), Refusals::linker())
        .emit(LocalOnly)
        .unwrap_err();
    assert!(matches!(err, Error::NotSerializable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("derive `Serialize` and `Deserialize`"),
        "{err}"
    );

    let err = emitter(service.clone(), Refusals::linker())
        .emit_named("Greet", "x".to_string())
        .unwrap_err();
    assert!(matches!(err, Error::NotSerializable { .. }), "{err}");

    let linker = EventLinker::new();
    linker.on::<Greeting>().subscribe(|| {}).unwrap();
    let err = emitter(service, linker)
        .emit(Greeting { n: 1 })
        .unwrap_err();
    assert!(
        matches!(&err, Error::RuntimeSubscriberRemote { event } if event == "Greeting"),
        "{err}"
    );

    let mut conn = connection(&url).await;
    let len: u64 = conn
        .xlen(format!("pyventus:{{{queue}}}:stream"))
        .await
        .unwrap();
    assert_eq!(len, 0, "nothing refused was enqueued");
    cleanup(&url, &queue).await;
}

// --- A handler that always fails ends in the dead letters after exactly max deliveries.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Doomed {
    id: u64,
}

#[derive(Linker)]
struct Failing;

static DOOMED_ATTEMPTS: AtomicU64 = AtomicU64::new(0);

#[on(Doomed, linker = Failing)]
fn always_fails(d: &Doomed) -> anyhow::Result<()> {
    DOOMED_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    anyhow::bail!("doomed {} cannot succeed", d.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_always_fails_is_dead_lettered_after_max_deliveries() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("failing");
    let service = service(&url, &queue).await;
    emitter(service, Failing::linker())
        .emit(Doomed { id: 7 })
        .unwrap();

    let (worker, dead) = run_until_dead_letters(&url, &queue, 3, 1).await;

    assert_eq!(
        DOOMED_ATTEMPTS.load(Ordering::SeqCst),
        3,
        "exactly max_deliveries attempts"
    );
    let stats = worker.stats();
    assert_eq!(
        (stats.retried, stats.dead_lettered, stats.processed),
        (2, 1, 0)
    );
    let letter = &dead.list(10).await.unwrap()[0];
    assert_eq!(letter.deliveries, 3);
    assert_eq!(letter.event(), "Doomed");
    assert!(
        letter.reason.contains("doomed 7 cannot succeed"),
        "{}",
        letter.reason
    );
    assert!(
        letter.reason.contains("always_fails"),
        "the reason names the handler: {}",
        letter.reason
    );

    // Fixed or not, a dead letter can be replayed onto the queue.
    assert!(dead.replay(&letter.id).await.unwrap());
    assert!(dead.is_empty().await.unwrap());
    let mut conn = connection(&url).await;
    let len: u64 = conn
        .xlen(format!("pyventus:{{{queue}}}:stream"))
        .await
        .unwrap();
    assert_eq!(len, 2, "the original entry and its replay");
    cleanup(&url, &queue).await;
}

// --- Unknown events, malformed payloads and malformed envelopes end there too.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_events_and_malformed_payloads_are_dead_lettered_with_their_reason() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("malformed");
    let service = service(&url, &queue).await;
    service
        .enqueue(&Envelope::new("NoSuchEvent", "{}"))
        .await
        .unwrap();
    service
        .enqueue(&Envelope::new("Doomed", "this is not json"))
        .await
        .unwrap();
    service
        .enqueue(&Envelope::new("Doomed", r#"{"wrong":"shape"}"#))
        .await
        .unwrap();
    let mut conn = connection(&url).await;
    let _: String = conn
        .xadd(
            format!("pyventus:{{{queue}}}:stream"),
            "*",
            &[("garbage", "yes")],
        )
        .await
        .unwrap();

    let (_worker, dead) = run_until_dead_letters(&url, &queue, 2, 4).await;

    let mut reasons: Vec<String> = dead
        .list(10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.reason)
        .collect();
    reasons.sort();
    assert!(
        reasons[0].starts_with("malformed envelope: no `v` field"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("malformed payload: expected"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("malformed payload: missing field `id`"),
        "{reasons:?}"
    );
    assert!(reasons[3].starts_with("unknown event"), "{reasons:?}");
    assert_eq!(
        DOOMED_ATTEMPTS.load(Ordering::SeqCst) % 3,
        0,
        "no handler ran on a bad payload"
    );
    cleanup(&url, &queue).await;
}

// --- Two workers share the load; graceful shutdown loses nothing.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Chore {
    id: u64,
}

#[derive(Linker)]
struct Shared;

static CHORES_DONE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[on(Chore, linker = Shared)]
async fn do_chore(c: &Chore) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    CHORES_DONE.lock().unwrap().push(c.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_load_and_graceful_shutdown_loses_nothing() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("shared");
    let service = service(&url, &queue).await;
    let emitter = emitter(service, Shared::linker());
    for id in 0..400 {
        emitter.emit(Chore { id }).unwrap();
    }
    let start = |consumer: &'static str| {
        let (url, queue) = (url.clone(), queue.clone());
        async move {
            Worker::builder(&url)
                .queue(&queue)
                .linker(Shared::linker())
                .consumer(consumer)
                .concurrency(4)
                .connect()
                .await
                .unwrap()
        }
    };
    let (a, b) = (start("worker-a").await, start("worker-b").await);
    let run_a = spawn_run(&a);
    let run_b = spawn_run(&b);

    // Stop worker a halfway: it finishes what it holds and takes no more.
    until(Duration::from_secs(20), "a first half", async || {
        CHORES_DONE.lock().unwrap().len() >= 200
    })
    .await;
    a.shutdown();
    run_a.await.unwrap().unwrap();
    until(Duration::from_secs(20), "every chore", async || {
        a.stats().processed + b.stats().processed == 400
    })
    .await;
    b.shutdown();
    run_b.await.unwrap().unwrap();

    let (a, b) = (a.stats(), b.stats());
    assert!(
        a.processed > 0 && b.processed > 0,
        "both took a share: {a:?} {b:?}"
    );
    let mut done = CHORES_DONE.lock().unwrap().clone();
    done.sort_unstable();
    assert_eq!(
        done,
        (0..400).collect::<Vec<_>>(),
        "every chore exactly once"
    );
    cleanup(&url, &queue).await;
}

// --- A worker killed mid-handler (kill -9): another completes its entries.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Payment {
    id: u64,
}

#[derive(Linker)]
struct Crash;

/// Records each payment in a Redis set, so that every process's work is seen.
#[on(Payment, linker = Crash)]
async fn settle_payment(p: &Payment) -> anyhow::Result<()> {
    // Slow enough that the child still holds entries when it is killed, even
    // when the test process is starved for a second by a busy machine.
    tokio::time::sleep(Duration::from_millis(25)).await;
    let queue =
        std::env::var(CHILD_QUEUE).or_else(|_| CRASH_QUEUE.lock().unwrap().clone().ok_or(()));
    let queue = queue.map_err(|()| anyhow::anyhow!("no queue set"))?;
    let mut conn = connection(&pyventus::redis::url_from_env()).await;
    let _: () = conn.sadd(format!("test:{queue}:done"), p.id).await?;
    Ok(())
}

static CRASH_QUEUE: Mutex<Option<String>> = Mutex::new(None);
const CHILD_QUEUE: &str = "PYVENTUS_TEST_CHILD_QUEUE";

/// `XPENDING`'s summary: the count, the smallest and largest ids, and each
/// consumer's count.
type PendingSummary = (
    u64,
    Option<String>,
    Option<String>,
    Option<Vec<(String, String)>>,
);

/// Not a test on its own: the worker process the crash test starts and kills.
#[test]
fn child_worker_process() {
    let Ok(queue) = std::env::var(CHILD_QUEUE) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let worker = Worker::builder(&pyventus::redis::url_from_env())
            .queue(&queue)
            .linker(Crash::linker())
            .consumer("doomed-child")
            .concurrency(16)
            .connect()
            .await
            .unwrap();
        worker.run().await.unwrap();
    });
}

fn spawn_child(queue: &str) -> Child {
    common::redis::spawn_child("child_worker_process", &[(CHILD_QUEUE, queue)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_handler_loses_nothing() {
    const PAYMENTS: u64 = 2_000;
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("crash");
    *CRASH_QUEUE.lock().unwrap() = Some(queue.clone());
    let service = service(&url, &queue).await;
    let emitter = emitter(service, Crash::linker());
    for id in 0..PAYMENTS {
        emitter.emit(Payment { id }).unwrap();
    }

    let mut child = spawn_child(&queue);
    let mut conn = connection(&url).await;
    let done_key = format!("test:{queue}:done");
    until(
        Duration::from_mins(1),
        "the child to be mid-run",
        async || conn.scard::<_, u64>(&done_key).await.unwrap() >= PAYMENTS / 4,
    )
    .await;
    child.kill().unwrap(); // SIGKILL: no shutdown, entries left mid-handler
    child.wait().unwrap();
    let pending: PendingSummary = redis::cmd("XPENDING")
        .arg(format!("pyventus:{{{queue}}}:stream"))
        .arg("pyventus")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pending.0 > 0, "the child died holding entries");

    let survivor = Worker::builder(&url)
        .queue(&queue)
        .linker(Crash::linker())
        .visibility_timeout(Duration::from_millis(500))
        .concurrency(16)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&survivor);
    until(Duration::from_mins(2), "every payment", async || {
        conn.scard::<_, u64>(&done_key).await.unwrap() == PAYMENTS
    })
    .await;
    until(Duration::from_secs(20), "nothing pending", async || {
        let pending: PendingSummary = redis::cmd("XPENDING")
            .arg(format!("pyventus:{{{queue}}}:stream"))
            .arg("pyventus")
            .query_async(&mut conn)
            .await
            .unwrap();
        pending.0 == 0
    })
    .await;
    survivor.shutdown();
    running.await.unwrap().unwrap();
    assert!(
        survivor.stats().reclaimed > 0,
        "the survivor completed the dead child's entries"
    );
    cleanup(&url, &queue).await;
}

// --- A handler longer than the visibility timeout keeps its entry (heartbeat).

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct LongJob {
    id: u64,
}

#[derive(Linker)]
struct Long;

static LONG_RUNS: AtomicU64 = AtomicU64::new(0);

#[on(LongJob, linker = Long)]
async fn long_job() {
    LONG_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_handler_keeps_its_entry_with_heartbeats() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("long");
    let service = service(&url, &queue).await;
    emitter(service, Long::linker())
        .emit(LongJob { id: 1 })
        .unwrap();
    let start = |consumer: &'static str| {
        let (url, queue) = (url.clone(), queue.clone());
        async move {
            Worker::builder(&url)
                .queue(&queue)
                .linker(Long::linker())
                .consumer(consumer)
                .visibility_timeout(Duration::from_millis(300))
                .block(Duration::from_millis(50))
                .connect()
                .await
                .unwrap()
        }
    };
    let (a, b) = (start("long-a").await, start("long-b").await);
    let runs: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|w| tokio::spawn(async move { w.run().await }))
        .collect();
    until(Duration::from_secs(20), "the long job", async || {
        a.stats().processed + b.stats().processed == 1
    })
    .await;
    // Four visibility timeouts passed while it ran; no one claimed it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.shutdown();
    b.shutdown();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    assert_eq!(LONG_RUNS.load(Ordering::SeqCst), 1, "delivered once");
    assert_eq!(a.stats().reclaimed + b.stats().reclaimed, 0);
    cleanup(&url, &queue).await;
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused() {
    let url = pyventus::redis::url_from_env();
    let refused = |builder: pyventus::redis::WorkerBuilder| async move {
        match builder.connect().await {
            Err(pyventus::redis::Error::InvalidConfig(why)) => why,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    };
    assert!(
        refused(Worker::builder(&url).concurrency(0))
            .await
            .contains("concurrency")
    );
    assert!(
        refused(Worker::builder(&url).max_deliveries(0))
            .await
            .contains("max_deliveries")
    );
    assert!(
        refused(Worker::builder(&url).visibility_timeout(Duration::ZERO))
            .await
            .contains("visibility")
    );
    assert!(
        refused(Worker::builder(&url).block(Duration::ZERO))
            .await
            .contains("block")
    );
    assert!(matches!(
        Worker::builder(&url).queue("a{b}").connect().await,
        Err(pyventus::redis::Error::InvalidQueue(_))
    ));
    assert!(matches!(
        RedisProcessingService::builder(&url)
            .queue("")
            .connect()
            .await,
        Err(pyventus::redis::Error::InvalidQueue(_))
    ));
}

// --- Acknowledgements in batches: each entry once its handlers ran, none lost.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Parcel {
    n: u64,
}

#[derive(Linker)]
struct Batched;

static PARCELS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[on(Parcel, linker = Batched)]
fn deliver_parcel(p: &Parcel) -> anyhow::Result<()> {
    PARCELS.lock().unwrap().push(p.n);
    anyhow::ensure!(p.n != 13, "parcel 13 is lost");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_deliveries_at_once_are_each_acknowledged_and_a_failure_among_them_is_not() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("batched");
    let service = service(&url, &queue).await;
    let emitter = emitter(service, Batched::linker());
    for n in 0..300 {
        emitter.emit(Parcel { n }).unwrap();
    }
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Batched::linker())
        .concurrency(64)
        .max_deliveries(1)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(
        Duration::from_secs(20),
        "every parcel settled",
        async || {
            let stats = worker.stats();
            stats.processed + stats.dead_lettered == 300
        },
    )
    .await;
    worker.shutdown();
    running.await.unwrap().unwrap();

    let stats = worker.stats();
    assert_eq!(
        (stats.processed, stats.dead_lettered, stats.retried),
        (299, 1, 0)
    );
    let mut parcels = PARCELS.lock().unwrap().clone();
    parcels.sort_unstable();
    assert_eq!(parcels, (0..300).collect::<Vec<_>>(), "each ran once");
    // Nothing is left pending: the 299 acknowledged, the failed one moved to
    // the dead letters (acknowledged with its move), not with the others.
    assert_eq!(pending(&url, &queue).await, 0);
    let dead = DeadLetters::connect(&url, &queue).await.unwrap();
    let letters = dead.list(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("parcel 13 is lost"),
        "{}",
        letters[0].reason
    );
    cleanup(&url, &queue).await;
}

/// A parcel that blocks its thread when it is the last of its batch.
#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Heavy {
    n: u64,
}

#[derive(Linker)]
struct Blocking;

#[on(Heavy, linker = Blocking)]
fn carry(h: &Heavy) {
    if h.n == 63 {
        // Inline synchronous handlers run on the worker's runtime: this holds
        // that thread (a handler that should have been `blocking`).
        std::thread::sleep(Duration::from_secs(4));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_blocking_its_thread_holds_up_no_acknowledgement_of_the_others() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("blocked-acks");
    let emitter = emitter(service(&url, &queue).await, Blocking::linker());
    let worker = inline_worker(&url, &queue).await;
    let running = one_blocks_its_thread(&emitter, &worker, &url, &queue);
    worker.shutdown();
    running.await.unwrap().unwrap();
    assert_eq!(worker.stats().processed, 64);
    cleanup(&url, &queue).await;
}

/// A worker of `queue` at `url` (Redis's, or a proxy's) running
/// `Blocking`'s handlers inline, 64 at a time.
async fn inline_worker(url: &str, queue: &str) -> Worker {
    Worker::builder(url)
        .queue(queue)
        .linker(Blocking::linker())
        .concurrency(64)
        .sync_handlers_inline(true)
        .connect()
        .await
        .unwrap()
}

/// Runs `worker` on 64 `Heavy` parcels, which one read takes: the first 63
/// finish at once, the last holds its thread for 4 s. Their acknowledgement
/// must not wait for it; the 64th's comes once it returns. The run, still
/// going.
fn one_blocks_its_thread(
    emitter: &pyventus::EventEmitter,
    worker: &Worker,
    url: &str,
    queue: &str,
) -> tokio::task::JoinHandle<Result<(), pyventus::redis::Error>> {
    for n in 0..64 {
        emitter.emit(Heavy { n }).unwrap();
    }
    let running = spawn_run(worker);
    pending_apart(url, queue, 1, Duration::from_secs(2));
    pending_apart(url, queue, 0, Duration::from_secs(10));
    running
}

/// A parcel whose handler waits `ms` milliseconds, asynchronously.
#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Staggered {
    ms: u64,
}

/// How many `Staggered` parcels have run.
static STAGGERED: AtomicU64 = AtomicU64::new(0);

#[on(Staggered, linker = Blocking)]
async fn stagger(s: Staggered) {
    tokio::time::sleep(Duration::from_millis(s.ms)).await;
    STAGGERED.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_after_a_dropped_one_still_sends_what_a_blocked_thread_holds_up() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("blocked-acks-again");
    let emitter = emitter(service(&url, &queue).await, Blocking::linker());
    // Redis 15 ms away, on a runtime of its own (the test's stalls while a
    // handler blocks one of its threads): acknowledgements fly all along.
    let (proxy_runtime, proxy) = {
        let url = url.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let proxy = runtime.block_on(common::proxy::Proxy::slow(
                &url,
                6379,
                Duration::from_millis(15),
            ));
            (runtime, proxy)
        })
        .join()
        .unwrap()
    };
    let worker = inline_worker(&proxy.url(&url), &queue).await;
    // A first run, dropped while its entries finish 5 ms apart (its rescuer
    // watching); its read's task goes on and acknowledges them.
    for i in 0..64 {
        emitter.emit(Staggered { ms: 5 * i }).unwrap();
    }
    common::drop_run_once(worker.run(), "20 parcels run", async || {
        STAGGERED.load(Ordering::SeqCst) >= 20
    })
    .await;
    pending_apart(&url, &queue, 0, Duration::from_secs(5));
    // Run again, with one entry blocking its thread.
    let running = one_blocks_its_thread(&emitter, &worker, &url, &queue);
    worker.shutdown();
    running.await.unwrap().unwrap();
    cleanup(&url, &queue).await;
    drop(proxy);
    proxy_runtime.shutdown_background();
}

/// Waits until `queue` has `count` entries pending, failing after `limit`,
/// watched from a thread and runtime of its own. The test's runtime is no
/// observer while a handler blocks one of its two threads: tokio may have
/// parked the other without the I/O and time driver (a worker finding the
/// driver taken waits on a condvar), and then the test's own timers and
/// connections there wait for the blocked thread too.
fn pending_apart(url: &str, queue: &str, count: u64, limit: Duration) {
    let (url, queue) = (url.to_owned(), queue.to_owned());
    let watcher = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(until(
                limit,
                &format!("{count} entries pending"),
                async || pending(&url, &queue).await == count,
            ));
    });
    if let Err(panic) = watcher.join() {
        std::panic::resume_unwind(panic);
    }
}

/// A parcel whose first handler waits for all the others of its batch.
#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Waiting {
    n: u64,
}

#[derive(Linker)]
struct WaitingForOthers;

/// How many `Waiting` parcels other than the first have run.
static OTHERS_RAN: AtomicUsize = AtomicUsize::new(0);
/// Whether the first one saw all the others run while it waited.
static FIRST_SAW_THEM: AtomicBool = AtomicBool::new(false);

#[on(Waiting, linker = WaitingForOthers)]
fn wait_for_the_others(w: &Waiting) {
    if w.n != 0 {
        OTHERS_RAN.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while OTHERS_RAN.load(Ordering::SeqCst) < 31 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    FIRST_SAW_THEM.store(OTHERS_RAN.load(Ordering::SeqCst) == 31, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_handlers_queued_behind_a_slow_one_on_the_blocking_threads_still_run() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("waiting");
    let service = service(&url, &queue).await;
    let emitter = emitter(service, WaitingForOthers::linker());
    for n in 0..32 {
        emitter.emit(Waiting { n }).unwrap();
    }
    // The default: synchronous handlers on pyventus's blocking threads, which
    // take a batch's jobs in turn. The first blocks until the 31 after it
    // ran: they must get threads of their own.
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(WaitingForOthers::linker())
        .concurrency(32)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(5), "the 32 acknowledged", async || {
        worker.stats().processed == 32 && pending(&url, &queue).await == 0
    })
    .await;
    assert!(
        FIRST_SAW_THEM.load(Ordering::SeqCst),
        "the first saw the others run while it waited"
    );
    worker.shutdown();
    running.await.unwrap().unwrap();
    cleanup(&url, &queue).await;
}

// --- `emit` from synchronous code: outside any runtime, and on each flavor.

#[test]
fn emit_enqueues_from_a_plain_thread_and_from_either_runtime_flavor() {
    let setup = tokio::runtime::Runtime::new().unwrap();
    let Some(url) = setup.block_on(redis_url()) else {
        return;
    };
    let queue = fresh_queue("sync-emit");
    let service = setup.block_on(service(&url, &queue));
    let emitter = emitter(service.clone(), HappyPath::linker());
    // Outside any runtime, from several threads at once.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for n in 0..25 {
                    emitter.emit(Greeting { n }).unwrap();
                }
            });
        }
    });
    // On a current-thread runtime, and on a multi-thread runtime's worker.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { emitter.emit(Greeting { n: 1 }).unwrap() });
    setup.block_on(async {
        let emitter = emitter.clone();
        tokio::spawn(async move { emitter.emit(Greeting { n: 2 }).unwrap() })
            .await
            .unwrap();
    });
    assert_eq!(service.stats().enqueued, 102);
    setup.block_on(async {
        let mut conn = connection(&url).await;
        let len: u64 = conn
            .xlen(format!("pyventus:{{{queue}}}:stream"))
            .await
            .unwrap();
        assert_eq!(len, 102);
        cleanup(&url, &queue).await;
    });
}

/// The clients connected to the Redis at `url`, this query's own included.
fn connected_clients(url: &str) -> u64 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("clients").query(&mut conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO clients has connected_clients")
}

#[test]
fn emit_keeps_at_most_16_idle_connections_after_a_burst_from_many_threads() {
    // A Redis of its own: the connections counted are this test's only.
    let Some(server) = RedisServer::start(&[]) else {
        return;
    };
    let url = server.url();
    let setup = tokio::runtime::Runtime::new().unwrap();
    let queue = fresh_queue("idle-connections");
    let service = setup.block_on(service(&url, &queue));
    let emitter = emitter(service.clone(), HappyPath::linker());
    let before = connected_clients(&url);
    // 48 threads emitting at once: a blocking connection each while they do.
    let start = std::sync::Barrier::new(48);
    std::thread::scope(|scope| {
        for _ in 0..48 {
            scope.spawn(|| {
                start.wait();
                for n in 0..20 {
                    emitter.emit(Greeting { n }).unwrap();
                }
            });
        }
    });
    assert_eq!(service.stats().enqueued, 960);
    // Idle, the service keeps 16 of them; Redis sees the others close.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut kept = connected_clients(&url) - before;
    while kept > 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        kept = connected_clients(&url) - before;
    }
    assert!(
        kept <= 16,
        "{kept} blocking connections stayed open after the burst (at most 16 are kept idle)"
    );
    // Those kept still serve the next emits.
    emitter.emit(Greeting { n: 0 }).unwrap();
    assert_eq!(service.stats().enqueued, 961);
}
