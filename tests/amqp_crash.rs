//! RabbitMQ workers against crashes and deadlines, on a real broker: a worker
//! killed with SIGKILL mid-run, a hung handler, a shutdown that must finish
//! in-flight work by its deadline. Each wait is bounded, so a hang fails the
//! test within seconds.
#![cfg(feature = "amqp")]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::amqp::{amqp_url, cleanup, fresh_queue, queue_of, ready, spawn_run, stop};
use common::until;
use pyventus::amqp::{AmqpProcessingService, DeadLetters, Worker, current_delivery};
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

// --- Two workers share 1,000 jobs; one is killed with SIGKILL mid-run; the
// broker delivers what it held to the other, and nothing is lost.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Payment {
    id: u64,
}

#[derive(Linker)]
struct Crash;

const CHILD_QUEUE: &str = "PYVENTUS_TEST_CHILD_QUEUE";
const CHILD_LOG: &str = "PYVENTUS_TEST_CHILD_LOG";
/// Where this process records settled payments (the child: from its environment).
static PARENT_LOG: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Appends `<who> <id>` to the shared log: one short `O_APPEND` write, so the
/// lines of both processes never interleave.
#[on(Payment, linker = Crash)]
async fn settle_payment(p: &Payment) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (who, path) = match std::env::var(CHILD_LOG) {
        Ok(path) => ("child", PathBuf::from(path)),
        Err(_) => {
            let path = PARENT_LOG.lock().unwrap().clone();
            ("parent", path.ok_or_else(|| anyhow::anyhow!("no log set"))?)
        }
    };
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    log.write_all(format!("{who} {}\n", p.id).as_bytes())?;
    Ok(())
}

/// Not a test on its own: the worker process the crash test starts and kills.
#[test]
fn child_worker_process() {
    let Ok(queue) = std::env::var(CHILD_QUEUE) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let worker = Worker::builder(&pyventus::amqp::url_from_env())
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

fn spawn_child(queue: &str, log: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_worker_process", "--nocapture", "--quiet"])
        .env(CHILD_QUEUE, queue)
        .env(CHILD_LOG, log)
        .spawn()
        .unwrap()
}

/// The log's lines, as (who, id).
fn log_lines(path: &std::path::Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (who, id) = line.split_once(' ')?;
            Some((who.to_owned(), id.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_thousand_jobs_and_a_killed_one_loses_nothing() {
    const PAYMENTS: u64 = 1_000;
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("crash");
    let log = std::env::temp_dir().join(format!("{queue}.log"));
    *PARENT_LOG.lock().unwrap() = Some(log.clone());
    let emitter = emitter(&url, &queue, Crash::linker()).await;
    for id in 0..PAYMENTS {
        emitter.emit(Payment { id }).unwrap();
    }

    let by_child = |log: &std::path::Path| {
        log_lines(log)
            .iter()
            .filter(|(who, _)| who == "child")
            .count()
    };
    // The child first (a process starts slower than a task), then both share
    // the queue until the child is killed.
    let mut child = spawn_child(&queue, &log);
    until(Duration::from_mins(1), "the child to start", async || {
        by_child(&log) >= 50
    })
    .await;
    let survivor = Worker::builder(&url)
        .queue(&queue)
        .linker(Crash::linker())
        .concurrency(8)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&survivor);
    until(Duration::from_mins(1), "both to be mid-run", async || {
        by_child(&log) >= 150 && survivor.stats().processed > 0
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no shutdown, messages left mid-handler
    child.wait().unwrap();

    until(Duration::from_mins(1), "every payment", async || {
        let done: HashSet<u64> = log_lines(&log).into_iter().map(|(_, id)| id).collect();
        done.len() == usize::try_from(PAYMENTS).unwrap()
    })
    .await;
    until(Duration::from_secs(20), "an empty queue", async || {
        ready(&url, &queue_of(&queue)).await == 0
    })
    .await;
    stop(&survivor, running).await;

    let lines = log_lines(&log);
    let by_child = lines.iter().filter(|(who, _)| who == "child").count();
    assert!(
        by_child > 0 && by_child < lines.len(),
        "both took a share: {by_child} of {}",
        lines.len()
    );
    assert!(
        survivor.stats().redelivered > 0,
        "the survivor ran what the dead child held: {:?}",
        survivor.stats()
    );
    assert!(
        DeadLetters::connect(&url, &queue)
            .await
            .unwrap()
            .is_empty()
            .await
            .unwrap()
    );
    let _ = std::fs::remove_file(&log);
    cleanup(&url, &queue).await;
}

// --- Hung handlers: the handler timeout fails the delivery; a shutdown
// finishes what is in flight, up to its deadline.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Nap {
    millis: u64,
}

#[derive(Linker)]
struct Sleepy;

static NAPS_STARTED: AtomicU64 = AtomicU64::new(0);
static NAPS_DONE: AtomicU64 = AtomicU64::new(0);

#[on(Nap, linker = Sleepy)]
async fn nap(n: &Nap) {
    NAPS_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(n.millis)).await;
    NAPS_DONE.fetch_add(1, Ordering::SeqCst);
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Hang;

#[derive(Linker)]
struct Hung;

static HANG_ATTEMPTS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[on(Hang, linker = Hung)]
async fn hang() {
    HANG_ATTEMPTS
        .lock()
        .unwrap()
        .push(current_delivery().map_or(0, |d| d.attempt));
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_handler_fails_its_delivery_at_the_handler_timeout() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("hung");
    let service = AmqpProcessingService::builder(&url)
        .queue(&queue)
        .max_deliveries(2)
        .connect()
        .await
        .unwrap();
    EventEmitter::builder()
        .processor(service)
        .linker(Hung::linker())
        .build()
        .emit(Hang)
        .unwrap();
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Hung::linker())
        .max_deliveries(2)
        .retry_delay(Duration::ZERO)
        .handler_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = DeadLetters::connect(&url, &queue).await.unwrap();
    until(Duration::from_secs(10), "the dead letter", async || {
        dead.len().await.unwrap() == 1
    })
    .await;
    stop(&worker, running).await;
    let letter = &dead.list(1).await.unwrap()[0];
    assert!(
        letter.reason.contains("handler timeout (200ms)"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.deliveries, 2);
    assert_eq!(worker.stats().retried, 1);
    assert_eq!(*HANG_ATTEMPTS.lock().unwrap(), [1, 2], "one retry, counted");
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_finishes_what_is_in_flight_and_leaves_the_rest_at_its_deadline() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("shutdown");
    let emitter = {
        let service = AmqpProcessingService::builder(&url)
            .queue(&queue)
            .connect()
            .await
            .unwrap();
        EventEmitter::builder()
            .processor(service)
            .linker(Sleepy::linker())
            .build()
    };
    let worker = |timeout: Duration| {
        let (url, queue) = (url.clone(), queue.clone());
        async move {
            Worker::builder(&url)
                .queue(&queue)
                .linker(Sleepy::linker())
                .shutdown_timeout(timeout)
                .connect()
                .await
                .unwrap()
        }
    };

    // A short handler in flight at shutdown: finished and acknowledged.
    let started = NAPS_STARTED.load(Ordering::SeqCst);
    let done = NAPS_DONE.load(Ordering::SeqCst);
    emitter.emit(Nap { millis: 500 }).unwrap();
    let patient = worker(Duration::from_secs(10)).await;
    let running = spawn_run(&patient);
    until(Duration::from_secs(10), "the nap to start", async || {
        NAPS_STARTED.load(Ordering::SeqCst) > started
    })
    .await;
    stop(&patient, running).await;
    assert_eq!(NAPS_DONE.load(Ordering::SeqCst), done + 1, "it finished");
    assert_eq!(patient.stats().processed, 1);
    assert_eq!(ready(&url, &queue_of(&queue)).await, 0);

    // A long one: cut at the deadline, left for another delivery.
    let started = NAPS_STARTED.load(Ordering::SeqCst);
    emitter.emit(Nap { millis: 60_000 }).unwrap();
    let hasty = worker(Duration::from_millis(300)).await;
    let running = spawn_run(&hasty);
    until(
        Duration::from_secs(10),
        "the long nap to start",
        async || NAPS_STARTED.load(Ordering::SeqCst) > started,
    )
    .await;
    let began = std::time::Instant::now();
    stop(&hasty, running).await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the deadline held"
    );
    assert_eq!(hasty.stats().processed, 0);
    until(
        Duration::from_secs(10),
        "the nap back on the queue",
        async || ready(&url, &queue_of(&queue)).await == 1,
    )
    .await;
    cleanup(&url, &queue).await;
}
