//! RabbitMQ workers under faults, against a real broker: a worker killed with
//! SIGKILL mid-run, the broker closing a worker's connection, the network cut,
//! the queue deleted, hung handlers and shutdown deadlines. Each wait is
//! bounded, so a hang fails the test within seconds.
#![cfg(feature = "amqp")]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::amqp::{amqp_url, cleanup, fresh_queue, queue_of, raw, ready, spawn_run, stop, until};
use lapin::options::QueueDeleteOptions;
use pyventus::amqp::{AmqpProcessingService, DeadLetters, Health, Worker, current_delivery};
use pyventus::{Event, EventEmitter, EventLinker, Linker, on};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

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

    let mut child = spawn_child(&queue, &log);
    let survivor = Worker::builder(&url)
        .queue(&queue)
        .linker(Crash::linker())
        .concurrency(8)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&survivor);
    until(
        Duration::from_mins(1),
        "the child to be mid-run",
        async || {
            log_lines(&log)
                .iter()
                .filter(|(who, _)| who == "child")
                .count()
                >= 150
        },
    )
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
            .status()
            .expect("rabbitmqctl runs");
        assert!(closed.success(), "rabbitmqctl close_connection {pid}");
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
        eprintln!("skipping: rabbitmqctl cannot be run here");
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

/// A TCP proxy to the broker that the test can cut (closing every connection
/// and refusing new ones) and restore.
struct Proxy {
    addr: std::net::SocketAddr,
    upstream: String,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let mut proxy = Proxy {
            addr: "127.0.0.1:0".parse().unwrap(),
            upstream: upstream.to_owned(),
            running: None,
        };
        proxy.restore().await;
        proxy
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
        let path = rest.find('/').map_or("", |at| &rest[at..]);
        let at = if auth.is_empty() { "" } else { "@" };
        format!("{scheme}://{auth}{at}{}{path}", self.addr)
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let upstream = self.upstream.clone();
        self.running = Some(tokio::spawn(async move {
            let mut links = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                links.spawn(async move {
                    if let Ok(mut broker) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
            }
            // Dropping `links` (when this task is aborted) closes every link.
        }));
    }

    async fn cut(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
            let _ = running.await;
        }
    }
}

/// The broker's `host:port` in an AMQP URL.
fn broker_addr(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap();
    if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5672")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reconnects_when_the_network_comes_back_and_gives_up_when_it_does_not() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("cut");
    let emitter = emitter(&url, &queue, Resilient::linker()).await;
    let mut proxy = Proxy::start(&broker_addr(&url)).await;
    let worker = Worker::builder(&proxy.url(&url))
        .queue(&queue)
        .linker(Resilient::linker())
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(200))
        .give_up_after(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    for id in 1_000..1_010 {
        emitter.emit(Parcel { id }).unwrap();
    }
    until(Duration::from_secs(20), "the first parcels", async || {
        parcels_done(1_000..1_010)
    })
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
static NAP_ATTEMPTS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[on(Nap, linker = Sleepy)]
async fn nap(n: &Nap) {
    NAPS_STARTED.fetch_add(1, Ordering::SeqCst);
    NAP_ATTEMPTS
        .lock()
        .unwrap()
        .push(current_delivery().map_or(0, |d| d.attempt));
    tokio::time::sleep(Duration::from_millis(n.millis)).await;
    NAPS_DONE.fetch_add(1, Ordering::SeqCst);
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
        .linker(Sleepy::linker())
        .build()
        .emit(Nap { millis: 3_600_000 })
        .unwrap();
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Sleepy::linker())
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
