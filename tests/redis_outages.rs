//! Workers and emitters through Redis outages: restarts with and without the
//! data, a Redis that stays away, one that does not answer, one that refuses
//! the password. Each test starts its own `redis-server` child on a free port
//! and kills only that one.
#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Logs;
use common::redis::{RedisServer, emitter, fresh_queue, service, spawn_run, stop};
use common::until;
use pyventus::redis::{
    Backoff, DeadLetters, Error, Health, RedisProcessingService, Worker, WorkerBuilder,
};
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Ping {
    n: u64,
}

#[derive(Linker)]
struct Outages;

static PINGS: AtomicU64 = AtomicU64::new(0);

#[on(Ping, linker = Outages)]
fn pong(p: &Ping) {
    PINGS.fetch_add(p.n, Ordering::SeqCst);
}

/// A worker of the `Outages` namespace that notices an outage quickly.
fn worker(url: &str, queue: &str) -> WorkerBuilder {
    Worker::builder(url)
        .queue(queue)
        .linker(Outages::linker())
        .block(Duration::from_millis(100))
        .reconnect_backoff(Backoff::exponential(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
}

/// Emits `count` pings of 1 through `service`.
fn ping(service: &RedisProcessingService, count: u64) {
    let emitter = emitter(service.clone(), Outages::linker());
    for _ in 0..count {
        emitter.emit(Ping { n: 1 }).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reconnects_after_redis_restarts_with_its_data() {
    let Some(mut server) = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"])
    else {
        return;
    };
    let (url, queue) = (server.url(), fresh_queue("restart"));
    let service = service(&url, &queue).await;
    let worker = worker(&url, &queue).connect().await.unwrap();
    let mut health = worker.watch_health();
    let running = spawn_run(&worker);
    ping(&service, 5);
    until(Duration::from_secs(10), "the first pings", async || {
        worker.stats().processed == 5
    })
    .await;

    server.kill();
    tokio::time::timeout(
        Duration::from_secs(5),
        health.wait_for(|h| matches!(h, Health::Reconnecting { .. })),
    )
    .await
    .expect("the worker reports the outage")
    .unwrap();
    server.restart();

    // The emitter reconnects too (its first command after the restart is
    // sent again on a new connection).
    ping(&service, 5);
    until(
        Duration::from_secs(10),
        "the pings after the restart",
        async || worker.stats().processed == 10,
    )
    .await;
    assert_eq!(worker.health(), Health::Ready);
    assert!(worker.stats().reconnects >= 1, "{:?}", worker.stats());
    assert_eq!(worker.stats().groups_recreated, 0, "AOF kept the group");
    stop(&worker, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_recreates_its_consumer_group_when_redis_lost_it() {
    let Some(mut server) = RedisServer::start(&[]) else {
        return;
    };
    let (url, queue) = (server.url(), fresh_queue("nogroup"));
    let worker = worker(&url, &queue).connect().await.unwrap();
    let mut health = worker.watch_health();
    let running = spawn_run(&worker);
    ping(&service(&url, &queue).await, 3);
    until(Duration::from_secs(10), "the first pings", async || {
        worker.stats().processed == 3
    })
    .await;

    server.restart(); // no persistence: the stream and its group are gone
    tokio::time::timeout(
        Duration::from_secs(5),
        health.wait_for(|h| matches!(h, Health::Reconnecting { .. })),
    )
    .await
    .expect("the worker notices")
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), health.wait_for(Health::is_ready))
        .await
        .expect("the worker is back")
        .unwrap();
    assert_eq!(worker.stats().groups_recreated, 1, "{:?}", worker.stats());

    ping(&service(&url, &queue).await, 3);
    until(
        Duration::from_secs(10),
        "the pings after the loss",
        async || worker.stats().processed == 6,
    )
    .await;
    stop(&worker, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_reach_redis_gives_up_and_says_so() {
    let Some(mut server) = RedisServer::start(&[]) else {
        return;
    };
    let (url, queue) = (server.url(), fresh_queue("give-up"));
    let worker = worker(&url, &queue)
        .give_up_after(Duration::from_millis(1_500))
        .connect()
        .await
        .unwrap();
    assert_eq!(worker.health(), Health::Starting);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut health = worker.watch_health();
    let record = seen.clone();
    tokio::spawn(async move {
        while health.changed().await.is_ok() {
            let now = *health.borrow_and_update();
            record.lock().unwrap().push(now);
        }
    });
    let running = spawn_run(&worker);
    until(Duration::from_secs(5), "a ready worker", async || {
        worker.health().is_ready()
    })
    .await;

    server.kill();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns once it gives up")
        .unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, Error::GaveUp { .. }), "{err}");
    assert!(err.to_string().contains("gave up"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the last failure is its source"
    );
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert_eq!(worker.health(), Health::Failed);
    until(
        Duration::from_secs(2),
        "the watcher to see it",
        async || seen.lock().unwrap().last() == Some(&Health::Failed),
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|h| matches!(h, Health::Reconnecting { .. })),
        "{seen:?}"
    );
}

/// A TCP server that accepts connections and never answers.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    url
}

/// Asserts that `call` fails, and within `limit`.
async fn fails_within(limit: Duration, what: &str, call: impl Future<Output = bool>) {
    let start = Instant::now();
    let failed = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hangs"));
    assert!(failed, "{what} fails");
    assert!(start.elapsed() < limit, "{what} took {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_does_not_answer_fails_calls_within_their_timeouts() {
    let url = silent_server();
    let quick = Duration::from_millis(300);
    fails_within(
        Duration::from_secs(3),
        "a worker's connect with the default timeouts",
        async { Worker::builder(&url).connect().await.is_err() },
    )
    .await;
    fails_within(
        Duration::from_secs(1),
        "a worker's connect with short timeouts",
        async {
            Worker::builder(&url)
                .connect_timeout(quick)
                .response_timeout(quick)
                .connect()
                .await
                .is_err()
        },
    )
    .await;
    fails_within(Duration::from_secs(3), "a service's connect", async {
        RedisProcessingService::builder(&url)
            .connect()
            .await
            .is_err()
    })
    .await;
    fails_within(Duration::from_secs(1), "the dead letters' connect", async {
        let client = redis::Client::open(url.as_str()).unwrap();
        DeadLetters::connect_with(client, "q", quick).await.is_err()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_fails_fast_while_redis_is_down() {
    let Some(mut server) = RedisServer::start(&[]) else {
        return;
    };
    let service = service(&server.url(), &fresh_queue("down")).await;
    ping(&service, 1);
    server.kill();
    let emitter = emitter(service, Outages::linker());
    // The first call finds the connection closed; the next ones, a connection
    // being made again: each fails within the timeouts, none waits on retries.
    for _ in 0..3 {
        let emitter = emitter.clone();
        let start = Instant::now();
        let err = tokio::task::spawn_blocking(move || emitter.emit(Ping { n: 1 }).unwrap_err())
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(2_500),
            "took {:?}",
            start.elapsed()
        );
        assert!(
            matches!(Error::of(&err), Some(Error::Redis(_))),
            "the Redis error is the source: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_fails_at_once_at_connect_and_in_a_running_worker() {
    let Some(server) = RedisServer::start(&["--requirepass", "right"]) else {
        return;
    };
    let wrong = format!("redis://:wrong@127.0.0.1:{}", server.port());
    let start = Instant::now();
    let err = Worker::builder(&wrong).connect().await.unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert!(err.to_string().contains("password"), "{err}");
    let err = RedisProcessingService::builder(&wrong)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );

    // The password changes under a running worker: it stops at once, saying why.
    let right = format!("redis://:right@127.0.0.1:{}", server.port());
    let (queue, mut admin) = (
        fresh_queue("auth"),
        redis::Client::open(right.as_str())
            .unwrap()
            .get_connection()
            .unwrap(),
    );
    let worker = worker(&right, &queue).connect().await.unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(5), "a ready worker", async || {
        worker.health().is_ready()
    })
    .await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "rotated"][..])
        .query(&mut admin)
        .unwrap();
    let _: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal"][..])
        .query(&mut admin)
        .unwrap_or(0);
    let err = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("run returns at once")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert_eq!(worker.health(), Health::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_acknowledgement_logs_every_entry_it_leaves_pending() {
    // A Redis with no `XACK`: every acknowledgement fails at once.
    let Some(server) = RedisServer::start(&["--rename-command", "XACK", "\"\""]) else {
        return;
    };
    let (logs, _guard) = Logs::capture();
    let _runtime = logs.capture_threads("pyventus-runtime");
    // The deliveries' tasks send their acknowledgements, on the test's runtime.
    let _workers = logs.capture_threads("tokio-rt-worker");
    let (url, queue) = (server.url(), fresh_queue("unacked"));
    let service = service(&url, &queue).await;
    let envelope = |n: u64| pyventus::redis::Envelope::new("Ping", format!(r#"{{"n":{n}}}"#));
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(service.enqueue(&envelope(n)).await.unwrap());
    }
    // Inline: they run in few turns, so an `XACK` carries many.
    let worker = worker(&url, &queue)
        .sync_handlers_inline(true)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(
        Duration::from_secs(10),
        "the failed acknowledgements logged",
        async || ids.iter().all(|id| logs.text().contains(id.as_str())),
    )
    .await;
    stop(&worker, running).await;
    assert!(logs.text().contains("cannot settle"), "{}", logs.text());
}

// --- The network goes silent under open connections (packets dropped): a
// worker's shutdown still ends, `shutdown_now` at once.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Stuck;

static STUCK_STARTED: AtomicU64 = AtomicU64::new(0);

/// Holds its delivery for two minutes.
#[on(Stuck, linker = Outages)]
async fn stall(_: Stuck) {
    STUCK_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_mins(2)).await;
}

/// A worker behind a proxy to the shared Redis, with a 60 s shutdown
/// deadline, running a delivery that stalls; and the proxy.
async fn stalled_worker(
    url: &str,
    queue: &str,
) -> (
    Worker,
    tokio::task::JoinHandle<Result<(), Error>>,
    common::proxy::Proxy,
) {
    let proxy = common::proxy::Proxy::start(url, 6379).await;
    let worker = worker(&proxy.url(url), queue)
        .shutdown_deadline(Duration::from_mins(1))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let before = STUCK_STARTED.load(Ordering::SeqCst);
    emitter(service(url, queue).await, Outages::linker())
        .emit(Stuck)
        .unwrap();
    until(
        Duration::from_secs(10),
        "the handler to start",
        async || STUCK_STARTED.load(Ordering::SeqCst) > before,
    )
    .await;
    (worker, running, proxy)
}

/// How long `run` took to return after `stop`, failing after 20 s.
async fn ended_after(
    running: tokio::task::JoinHandle<Result<(), Error>>,
    stop: impl FnOnce(),
) -> Duration {
    let asked = Instant::now();
    stop();
    let ended = tokio::time::timeout(Duration::from_secs(20), running).await;
    assert!(ended.is_ok(), "run() still running 20 s after the stop");
    asked.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_stops_a_worker_at_once_on_a_silent_network() {
    let Some(url) = common::redis::redis_url().await else {
        return;
    };
    let queue = fresh_queue("silent-now");
    let (worker, running, proxy) = stalled_worker(&url, &queue).await;
    proxy.silence();
    // A read, a lease renewal and their reconnections go out into the silence.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let took = ended_after(running, || worker.shutdown_now()).await;
    assert!(
        took < Duration::from_secs(3),
        "shutdown_now on a silent network took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_stops_a_draining_worker_at_once_on_a_silent_network() {
    let Some(url) = common::redis::redis_url().await else {
        return;
    };
    let queue = fresh_queue("silent-draining");
    let (worker, running, proxy) = stalled_worker(&url, &queue).await;
    proxy.silence();
    worker.shutdown(); // drains: the stalled delivery has a minute
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let took = ended_after(running, || worker.shutdown_now()).await;
    assert!(
        took < Duration::from_secs(3),
        "shutdown_now while draining on a silent network took {took:?}"
    );
}
