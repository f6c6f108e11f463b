//! Distributed processing against a real RabbitMQ (`PYVENTUS_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`): the happy path, refusals, dead
//! letters and poison messages. Crashes and deadlines are in `amqp_crash.rs`,
//! a lost broker in `amqp_reconnect.rs`. Without a broker, these tests say so
//! and pass, unless `PYVENTUS_REQUIRE_SERVICES=1` (CI) makes a missing broker a
//! failure.
#![cfg(feature = "amqp")]

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::amqp::{
    amqp_url, cleanup, dead_of, fresh_queue, publish_raw, queue_of, raw, ready, spawn_run, stop,
};
use common::until;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use pyventus::amqp::{AmqpProcessingService, DeadLetters, Delivery, Worker, current_delivery};
use pyventus::{Error, Event, EventEmitter, EventLinker, Linker, on, on_success};
use serde::{Deserialize, Serialize};

/// The processing service of `queue`.
async fn service(url: &str, queue: &str) -> AmqpProcessingService {
    AmqpProcessingService::builder(url)
        .queue(queue)
        .connect()
        .await
        .unwrap()
}

fn emitter(service: AmqpProcessingService, linker: EventLinker) -> EventEmitter {
    EventEmitter::builder()
        .processor(service)
        .linker(linker)
        .build()
}

// --- The happy path: every emission is handled once, with its callbacks, and
// every kind of handler sees its delivery.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Greeting {
    n: u64,
}

#[derive(Linker)]
struct HappyPath;

static HAPPY_SUM: AtomicU64 = AtomicU64::new(0);
static HAPPY_CALLBACKS: AtomicU64 = AtomicU64::new(0);
static HAPPY_IDS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SEEN_BY_ASYNC: AtomicU64 = AtomicU64::new(0);
static SEEN_BY_BLOCKING: AtomicU64 = AtomicU64::new(0);

/// Takes its delivery as a parameter, and reads it from `current_delivery()`.
#[on(Greeting, linker = HappyPath)]
fn greet(g: &Greeting, delivery: Delivery) -> u64 {
    let current = current_delivery().expect("a sync handler sees its delivery");
    assert_eq!(delivery, current);
    assert_eq!(delivery.attempt, 1);
    HAPPY_IDS.lock().unwrap().push(delivery.envelope_id);
    HAPPY_SUM.fetch_add(g.n, Ordering::SeqCst);
    g.n
}

#[on_success(greet)]
fn greeted(_n: u64) {
    HAPPY_CALLBACKS.fetch_add(1, Ordering::SeqCst);
}

#[on(Greeting, linker = HappyPath)]
async fn greet_async() {
    tokio::task::yield_now().await;
    if current_delivery().is_some() {
        SEEN_BY_ASYNC.fetch_add(1, Ordering::SeqCst);
    }
}

#[on(Greeting, linker = HappyPath, blocking)]
fn greet_blocking() {
    if current_delivery().is_some() {
        SEEN_BY_BLOCKING.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_emissions_are_handled_by_a_worker_with_their_callbacks() {
    const N: u64 = 1_000;
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("happy");
    let emitter = emitter(service(&url, &queue).await, HappyPath::linker());
    for n in 1..=N {
        emitter.emit(Greeting { n }).unwrap();
    }
    // Nothing ran here, and everything is on the broker: `emit` waited for
    // each confirm.
    assert_eq!(HAPPY_SUM.load(Ordering::SeqCst), 0);
    assert_eq!(u64::from(ready(&url, &queue_of(&queue)).await), N);

    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(HappyPath::linker())
        .concurrency(32)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(
        Duration::from_secs(30),
        "a thousand greetings",
        async || worker.stats().processed == N,
    )
    .await;
    stop(&worker, running).await;

    assert_eq!(HAPPY_SUM.load(Ordering::SeqCst), N * (N + 1) / 2);
    assert_eq!(
        HAPPY_CALLBACKS.load(Ordering::SeqCst),
        N,
        "success callbacks run in the worker"
    );
    assert_eq!(
        SEEN_BY_ASYNC.load(Ordering::SeqCst),
        N,
        "async handlers see their delivery"
    );
    assert_eq!(
        SEEN_BY_BLOCKING.load(Ordering::SeqCst),
        N,
        "blocking handlers see theirs"
    );
    let ids: HashSet<_> = HAPPY_IDS.lock().unwrap().iter().cloned().collect();
    assert_eq!(
        u64::try_from(ids.len()).unwrap(),
        N,
        "every envelope has its own id"
    );
    let stats = worker.stats();
    assert_eq!(
        (stats.retried, stats.dead_lettered, stats.redelivered),
        (0, 0, 0)
    );
    assert_eq!(
        ready(&url, &queue_of(&queue)).await,
        0,
        "every message was acknowledged"
    );
    assert!(
        DeadLetters::connect(&url, &queue)
            .await
            .unwrap()
            .is_empty()
            .await
            .unwrap()
    );
    cleanup(&url, &queue).await;
}

// --- What cannot cross a process is refused at emit, and nothing is published.

#[derive(Debug, Clone, Event)]
struct LocalOnly;

#[derive(Linker)]
struct Refusals;

#[on(LocalOnly, linker = Refusals)]
fn local_only() {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_cross_a_process_is_a_clear_error_and_publishes_nothing() {
    let Some(url) = amqp_url().await else { return };
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

    assert_eq!(
        ready(&url, &queue_of(&queue)).await,
        0,
        "nothing refused was published"
    );
    cleanup(&url, &queue).await;
}

// --- A handler that always fails is dead-lettered after exactly max deliveries.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Doomed {
    id: u64,
}

#[derive(Linker)]
struct Failing;

/// Each attempt of each doomed id: (id, attempt). Tests use ids of their own.
static DOOMED_ATTEMPTS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// The attempts seen for a doomed id.
fn attempts_of(id: u64) -> Vec<u64> {
    DOOMED_ATTEMPTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(doomed, _)| *doomed == id)
        .map(|(_, attempt)| *attempt)
        .collect()
}

#[on(Doomed, linker = Failing)]
fn always_fails(d: &Doomed) -> anyhow::Result<()> {
    let attempt = current_delivery().map_or(0, |delivery| delivery.attempt);
    DOOMED_ATTEMPTS.lock().unwrap().push((d.id, attempt));
    anyhow::bail!("doomed {} cannot succeed", d.id)
}

/// Runs a worker of the `Failing` namespace until the queue has `letters`
/// dead letters, then stops it.
async fn run_until_dead_letters(
    url: &str,
    queue: &str,
    max_deliveries: u64,
    letters: u64,
) -> (Worker, DeadLetters) {
    let worker = Worker::builder(url)
        .queue(queue)
        .linker(Failing::linker())
        .max_deliveries(max_deliveries)
        .retry_delay(Duration::from_millis(10))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = DeadLetters::connect(url, queue).await.unwrap();
    until(Duration::from_secs(20), "the dead letters", async || {
        dead.len().await.unwrap() == letters
    })
    .await;
    stop(&worker, running).await;
    (worker, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_always_fails_is_dead_lettered_after_max_deliveries_and_can_be_replayed() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("failing");
    let service = AmqpProcessingService::builder(&url)
        .queue(&queue)
        .max_deliveries(3)
        .connect()
        .await
        .unwrap();
    emitter(service, Failing::linker())
        .emit(Doomed { id: 7 })
        .unwrap();

    let (worker, dead) = run_until_dead_letters(&url, &queue, 3, 1).await;

    assert_eq!(
        attempts_of(7),
        [1, 2, 3],
        "exactly max_deliveries attempts, counted by the broker"
    );
    let stats = worker.stats();
    assert_eq!(
        (
            stats.retried,
            stats.dead_lettered,
            stats.processed,
            stats.redelivered
        ),
        (2, 1, 0, 2)
    );
    assert_eq!(ready(&url, &queue_of(&queue)).await, 0, "it left the queue");
    let letters = dead.list(10).await.unwrap();
    let letter = &letters[0];
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
    assert_eq!(letter.body, br#"{"id":7}"#, "the message, byte for byte");
    assert_eq!(
        dead.len().await.unwrap(),
        1,
        "listing leaves the letters in place"
    );

    // Fixed or not, a dead letter can be replayed onto the queue, as it was.
    let envelope_id = letter.envelope.as_ref().unwrap().id.clone();
    assert!(!dead.replay("no-such-letter").await.unwrap());
    assert!(dead.replay(&letter.id).await.unwrap());
    assert!(dead.is_empty().await.unwrap());
    assert_eq!(ready(&url, &queue_of(&queue)).await, 1, "back on the queue");
    let (_worker, dead) = run_until_dead_letters(&url, &queue, 3, 1).await;
    assert_eq!(
        attempts_of(7),
        [1, 2, 3, 1, 2, 3],
        "a replayed message starts its count over"
    );
    let again = &dead.list(1).await.unwrap()[0];
    assert_eq!(
        again.envelope.as_ref().unwrap().id,
        envelope_id,
        "same envelope"
    );
    assert!(dead.remove(&again.id).await.unwrap());
    assert!(dead.is_empty().await.unwrap());
    cleanup(&url, &queue).await;
}

// --- Poison: messages that are not envelopes, unknown events, bad payloads.

fn envelope_headers() -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert("x-pyventus-v".into(), AMQPValue::LongUInt(1));
    headers.insert("x-pyventus-emitted-at".into(), AMQPValue::LongLongInt(1));
    headers
}

fn json(event: &str, id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(id.into())
        .with_type(event.into())
        .with_headers(envelope_headers())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_reason_and_the_worker_goes_on() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("poison");
    let service = AmqpProcessingService::builder(&url)
        .queue(&queue)
        .max_deliveries(2)
        .connect()
        .await
        .unwrap();
    let (connection, channel) = raw(&url).await;
    let text = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("wrong-type".into());
    publish_raw(&channel, &queue, b"hello", text).await;
    publish_raw(&channel, &queue, b"{not json", json("Doomed", "bad-json")).await;
    publish_raw(&channel, &queue, b"{}", json("NoSuchEvent", "unknown")).await;
    publish_raw(
        &channel,
        &queue,
        br#"{"wrong":"shape"}"#,
        json("Doomed", "missing-field"),
    )
    .await;
    let no_headers = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id("no-headers".into());
    publish_raw(&channel, &queue, b"{}", no_headers).await;
    let _ = connection.close(200, "OK".into()).await;
    // And one good message behind them.
    emitter(service, Failing::linker())
        .emit(Doomed { id: 1 })
        .unwrap();

    let (worker, dead) = run_until_dead_letters(&url, &queue, 2, 6).await;

    let letters: Vec<(String, u64)> = dead
        .list(10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.reason, l.deliveries))
        .collect();
    let count = |prefix: &str, deliveries: u64| {
        letters
            .iter()
            .filter(|(r, d)| r.starts_with(prefix) && *d == deliveries)
            .count()
    };
    // Not envelopes: dead-lettered at once.
    assert_eq!(
        count(
            "malformed envelope: `content_type` is not `application/json`",
            1
        ),
        1,
        "{letters:?}"
    );
    assert_eq!(
        count("malformed envelope: no `x-pyventus-v` field", 1),
        1,
        "{letters:?}"
    );
    // Envelopes another worker might read (a newer build): retried, then dead-lettered.
    assert_eq!(
        count("malformed payload: ", 2),
        2,
        "bad JSON and a missing field: {letters:?}"
    );
    assert_eq!(
        count("malformed payload: missing field `id`", 2),
        1,
        "{letters:?}"
    );
    assert_eq!(count("unknown event", 2), 1, "{letters:?}");
    assert_eq!(
        count("handler `", 2),
        1,
        "the good message ran, and failed as it always does: {letters:?}"
    );
    assert_eq!(
        attempts_of(1),
        [1, 2],
        "the good message ran twice; no handler ran on a bad payload"
    );
    assert_eq!(worker.stats().dead_lettered, 6);
    assert_eq!(ready(&url, &dead_of(&queue)).await, 6);
    cleanup(&url, &queue).await;
}

// --- Settings that cannot work are refused, before anything runs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_cannot_work_are_refused() {
    let url = pyventus::amqp::url_from_env();
    let refused = |builder: pyventus::amqp::WorkerBuilder| async move {
        match builder.connect().await {
            Err(pyventus::amqp::Error::InvalidConfig(why)) => why,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    };
    assert!(
        refused(Worker::builder(&url).concurrency(0))
            .await
            .contains("concurrency")
    );
    assert!(
        refused(Worker::builder(&url).concurrency(70_000))
            .await
            .contains("65535")
    );
    assert!(
        refused(Worker::builder(&url).max_deliveries(0))
            .await
            .contains("max_deliveries")
    );
    assert!(
        refused(Worker::builder(&url).handler_timeout(Duration::ZERO))
            .await
            .contains("timeouts")
    );
    assert!(matches!(
        Worker::builder(&url).queue("").connect().await,
        Err(pyventus::amqp::Error::InvalidQueue(_))
    ));
    assert!(matches!(
        AmqpProcessingService::builder(&url)
            .queue("a\nb")
            .connect()
            .await,
        Err(pyventus::amqp::Error::InvalidQueue(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_delivery_limit_differs_from_the_queue_is_refused_with_the_fix() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("mismatch");
    let _service = service(&url, &queue).await; // declares it with 5 deliveries
    let err = Worker::builder(&url)
        .queue(&queue)
        .linker(Failing::linker())
        .max_deliveries(3)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, pyventus::amqp::Error::TopologyMismatch { queue: q, .. } if *q == queue_of(&queue)),
        "{err}"
    );
    assert!(
        err.to_string().contains("the same `max_deliveries`"),
        "{err}"
    );
    cleanup(&url, &queue).await;
}

// --- A run dropped midway.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Lingering;

#[derive(Linker)]
struct DroppedRun;

static LINGERING_STARTED: AtomicU64 = AtomicU64::new(0);
static LINGERING_DONE: AtomicU64 = AtomicU64::new(0);

/// Half a second long.
#[on(Lingering, linker = DroppedRun)]
async fn lingering() {
    LINGERING_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    LINGERING_DONE.fetch_add(1, Ordering::SeqCst);
}

/// A `run` future dropped (a `select!` that took another branch) while a
/// delivery runs: the delivery is cut short with it and goes back to the
/// queue for another worker; it does not stay unacknowledged on a
/// connection nobody reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_of_a_dropped_run_is_delivered_again() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("dropped-run");
    emitter(service(&url, &queue).await, DroppedRun::linker())
        .emit(Lingering)
        .unwrap();
    let start = |name: &'static str| {
        Worker::builder(&url)
            .queue(&queue)
            .linker(DroppedRun::linker())
            .consumer(name)
            .connect()
    };
    let first = start("dropped").await.unwrap();
    common::drop_run_once(first.run(), "the handler to start", async || {
        LINGERING_STARTED.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = start("after").await.unwrap();
    let running = spawn_run(&second);
    until(
        Duration::from_secs(5),
        "the delivery finished",
        async || LINGERING_DONE.load(Ordering::SeqCst) == 1,
    )
    .await;
    stop(&second, running).await;
    assert_eq!(
        LINGERING_STARTED.load(Ordering::SeqCst),
        2,
        "cut short with the dropped run, then delivered again (as `Worker::run` says)"
    );
    assert_eq!(ready(&url, &queue_of(&queue)).await, 0);
    cleanup(&url, &queue).await;
}
