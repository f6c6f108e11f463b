//! RabbitMQ workers under faults: a broker's memory alarm with poison in the
//! queue, a dead-letter queue or exchange deleted under a running worker, an
//! event name too long for its AMQP property, an `emit` the broker did not
//! confirm. The alarms are raised on a private node (never the shared broker);
//! each wait is bounded, so a hang fails the test within seconds.
#![cfg(feature = "amqp")]

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::amqp::{
    RabbitNode, amqp_url, cleanup, dead_of, fresh_queue, publish_raw, queue_of, raw, ready,
    ready_if_exists, spawn_run, stop,
};
use common::until;
use lapin::BasicProperties;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use pyventus::amqp::{AmqpProcessingService, DeadLetters, Error as AmqpError, Worker};
use pyventus::{Event, EventEmitter, EventLinker, Linker, on};
use serde::{Deserialize, Serialize};

async fn service(url: &str, queue: &str, max_deliveries: u64) -> AmqpProcessingService {
    AmqpProcessingService::builder(url)
        .queue(queue)
        .max_deliveries(max_deliveries)
        .confirm_timeout(Duration::from_secs(1))
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

/// The properties of an envelope of `event`: a message a worker reads as one
/// until it finds its body is not UTF-8.
fn envelope_properties(event: &str, id: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-pyventus-v".into(), AMQPValue::LongUInt(1));
    headers.insert("x-pyventus-emitted-at".into(), AMQPValue::LongLongInt(1));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(id.into())
        .with_type(event.into())
        .with_headers(headers)
}

/// A body that is not UTF-8: poison, dead-lettered on its first delivery.
const NOT_UTF8: &[u8] = &[0xff, 0xfe, 0xfd];

// --- A poison message while the broker's memory alarm blocks publishers.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Restock {
    id: u64,
}

#[derive(Linker)]
struct Alarmed;

static RESTOCKED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

#[on(Restock, linker = Alarmed)]
async fn restock(r: &Restock) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    RESTOCKED
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(r.id);
}

fn restocked() -> usize {
    RESTOCKED.lock().unwrap().as_ref().map_or(0, HashSet::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_during_a_memory_alarm_neither_freezes_the_worker_nor_dies_twice() {
    const EVENTS: u64 = 40;
    let Some(node) = RabbitNode::shared().await else {
        return;
    };
    let _exclusive = node.exclusive().await;
    let url = node.url();
    let queue = fresh_queue("alarm-poison");
    let emitter = emitter(service(&url, &queue, 5).await, Alarmed::linker());
    let (connection, channel) = raw(&url).await;
    for id in 0..EVENTS {
        if id == 4 {
            // The fifth message.
            let poison = envelope_properties("Restock", "poison");
            publish_raw(&channel, &queue, NOT_UTF8, poison).await;
        }
        emitter.emit(Restock { id }).unwrap();
    }
    let _ = connection.close(200, "OK".into()).await;

    let alarm = node.memory_alarm().await;
    let consumer = format!("alarmed-{}", uuid::Uuid::new_v4().simple());
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Alarmed::linker())
        .consumer(&consumer)
        .concurrency(4)
        .confirm_timeout(Duration::from_secs(1))
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let began = Instant::now();
    while restocked() < usize::try_from(EVENTS).unwrap()
        && began.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handled_in = began.elapsed();
    // The alarm lasts well past the worker's confirm timeout (1 s): the
    // poison's dead letter waits for its confirm all that time.
    tokio::time::sleep_until((began + Duration::from_secs(4)).into()).await;
    let during = restocked();
    let dead_lettered_during = worker.stats().dead_lettered;
    let states = node.connection_states(&consumer).await;
    eprintln!(
        "during the memory alarm: {during} of {EVENTS} handled in {handled_in:?}, {dead_lettered_during} dead-lettered after {:?}; the worker's connections: {states:?}",
        began.elapsed()
    );

    alarm.clear().await;
    let dead = DeadLetters::connect(&url, &queue).await.unwrap();
    until(
        Duration::from_secs(20),
        "every event and the poison's dead letter",
        async || restocked() == usize::try_from(EVENTS).unwrap() && dead.len().await.unwrap() >= 1,
    )
    .await;
    // Time for a second dead letter to show, were there one: the confirm
    // timeout is 1 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let letters = dead.list(10).await.unwrap();
    eprintln!(
        "after the alarm: {} dead letter(s), worker {:?}",
        letters.len(),
        worker.stats()
    );
    stop(&worker, running).await;

    assert_eq!(
        during,
        usize::try_from(EVENTS).unwrap(),
        "the events behind the poison were handled during the alarm (connections: {states:?})"
    );
    assert_eq!(
        dead_lettered_during, 0,
        "the broker takes no dead letter while it blocks publishers"
    );
    let consuming = format!("pyventus worker {consumer}");
    assert!(
        states
            .iter()
            .any(|(name, state)| *name == consuming && state != "blocked"),
        "the connection the worker consumes on is not blocked: {states:?}"
    );
    assert_eq!(letters.len(), 1, "one poison, one dead letter: {letters:?}");
    assert!(letters[0].reason.contains("UTF-8"), "{}", letters[0].reason);
    assert_eq!(letters[0].deliveries, 1);
    assert_eq!(worker.stats().dead_lettered, 1, "{:?}", worker.stats());
    assert_eq!(worker.stats().processed, EVENTS);
    assert_eq!(ready(&url, &queue_of(&queue)).await, 0);
    cleanup(&url, &queue).await;
}

// --- An emit the broker did not confirm (an alarm blocks publishers) may
// still have been stored: a retry carries the same envelope id.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Invoice {
    id: u64,
}

#[derive(Linker)]
struct Billing;

/// The `message_id` of each message of a RabbitMQ queue (taken and
/// acknowledged).
async fn message_ids(url: &str, name: &str) -> Vec<String> {
    let (connection, channel) = raw(url).await;
    let mut ids = Vec::new();
    while let Some(message) = channel
        .basic_get(
            name.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        let id = message.delivery.properties.message_id().clone();
        ids.push(id.map(|id| id.to_string()).unwrap_or_default());
    }
    let _ = connection.close(200, "OK".into()).await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_the_broker_did_not_confirm_may_still_be_stored_and_is_retried_with_its_envelope_id()
 {
    let Some(node) = RabbitNode::shared().await else {
        return;
    };
    let _exclusive = node.exclusive().await;
    let url = node.url();
    let queue = fresh_queue("unconfirmed");
    let service = service(&url, &queue, 5).await;
    let emitter = emitter(service.clone(), Billing::linker());

    let alarm = node.memory_alarm().await;
    let err = emitter.emit(Invoice { id: 1 }).unwrap_err();
    eprintln!("emit under the alarm: {err}");
    let envelope = AmqpError::unconfirmed_envelope(&err)
        .expect("the error carries the envelope to publish again")
        .clone();
    assert_eq!(envelope.event, "Invoice");
    alarm.clear().await;

    // Retried the way the error says: the same envelope, confirmed now.
    service.publish(&envelope).await.unwrap();
    until(Duration::from_secs(10), "the messages", async || {
        ready(&url, &queue_of(&queue)).await >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = message_ids(&url, &queue_of(&queue)).await;
    eprintln!("stored after the alarm and the retry: {ids:?}");
    assert!(!ids.is_empty());
    assert!(
        ids.iter().all(|id| *id == envelope.id),
        "every copy carries the one envelope id, which handlers deduplicate by: {ids:?}"
    );
    cleanup(&url, &queue).await;
}

// --- Event names: the AMQP `type` property is a short string.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
#[event(
    name = "long.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
)]
struct TooLong;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
#[event(
    name = "longest.yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
)]
struct Longest;

#[derive(Linker)]
struct Names;

static LONGEST_HANDLED: Mutex<u64> = Mutex::new(0);

#[on(TooLong, linker = Names)]
fn too_long() {}

#[on(Longest, linker = Names)]
fn longest() {
    *LONGEST_HANDLED.lock().unwrap() += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_name_longer_than_an_amqp_short_string_is_refused_at_emit() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("long-name");
    let emitter = emitter(service(&url, &queue, 2).await, Names::linker());
    assert_eq!(TooLong::NAME.len(), 300);
    assert_eq!(Longest::NAME.len(), 255);

    let refused = emitter.emit(TooLong);
    assert!(refused.is_err(), "a 300-byte event name is refused at emit");
    let err = refused.unwrap_err();
    assert!(
        err.to_string().contains("255 bytes"),
        "the error says the limit: {err}"
    );
    let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<AmqpError>());
    assert!(
        matches!(source, Some(AmqpError::FieldTooLong { field: "event name", value }) if value == TooLong::NAME),
        "{err}"
    );
    // The longest name that fits is carried whole, and handled.
    emitter.emit(Longest).unwrap();
    assert_eq!(
        ready(&url, &queue_of(&queue)).await,
        1,
        "only the one that fits was published"
    );
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Names::linker())
        .max_deliveries(2)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(
        Duration::from_secs(10),
        "the longest name handled",
        async || *LONGEST_HANDLED.lock().unwrap() == 1,
    )
    .await;
    stop(&worker, running).await;
    assert_eq!(worker.stats().processed, 1);
    assert_eq!(worker.stats().dead_lettered, 0);
    cleanup(&url, &queue).await;
}

// --- The dead-letter queue or exchange deleted under a running worker.

#[derive(Linker)]
struct Undertaker;

/// A worker of `queue` that dead-letters on the third failed delivery, and
/// publishes poison number one, waiting for its dead letter.
async fn worker_with_one_dead_letter(
    url: &str,
    queue: &str,
) -> (
    Worker,
    tokio::task::JoinHandle<Result<(), pyventus::amqp::Error>>,
) {
    let worker = Worker::builder(url)
        .queue(queue)
        .linker(Undertaker::linker())
        .max_deliveries(3)
        .retry_delay(Duration::ZERO)
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let (connection, channel) = raw(url).await;
    publish_raw(
        &channel,
        queue,
        NOT_UTF8,
        envelope_properties("Poison", "poison-1"),
    )
    .await;
    let _ = connection.close(200, "OK".into()).await;
    until(
        Duration::from_secs(10),
        "poison #1's dead letter",
        async || ready_if_exists(url, &dead_of(queue)).await == Some(1),
    )
    .await;
    (worker, running)
}

/// Publishes poison number two, and waits for its dead letter: the
/// dead-letter queue then holds `letters`, each with the worker's reason.
async fn second_poison_is_dead_lettered(url: &str, queue: &str, worker: &Worker, letters: usize) {
    let (connection, channel) = raw(url).await;
    publish_raw(
        &channel,
        queue,
        NOT_UTF8,
        envelope_properties("Poison", "poison-2"),
    )
    .await;
    let _ = connection.close(200, "OK".into()).await;
    until(
        Duration::from_secs(15),
        "poison #2's dead letter, in a dead-letter queue declared again",
        async || worker.stats().dead_lettered == 2,
    )
    .await;
    assert_eq!(ready(url, &queue_of(queue)).await, 0);
    assert_eq!(
        worker.stats().reconnects,
        0,
        "the connection the worker consumes on was never affected"
    );
    let dead = DeadLetters::connect(url, queue).await.unwrap();
    let listed = dead.list(10).await.unwrap();
    assert_eq!(listed.len(), letters, "{listed:?}");
    for letter in &listed {
        assert!(letter.reason.contains("UTF-8"), "{}", letter.reason);
        assert_eq!(letter.deliveries, 1, "dead-lettered by the worker, at once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_queue_deleted_under_a_running_worker_is_declared_again() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("dead-queue-deleted");
    let (worker, running) = worker_with_one_dead_letter(&url, &queue).await;
    let (connection, channel) = raw(&url).await;
    channel
        .queue_delete(
            dead_of(&queue).as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;

    second_poison_is_dead_lettered(&url, &queue, &worker, 1).await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_exchange_deleted_under_a_running_worker_is_declared_again() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("dead-exchange-deleted");
    let (worker, running) = worker_with_one_dead_letter(&url, &queue).await;
    let (connection, channel) = raw(&url).await;
    channel
        .exchange_delete(
            format!("pyventus.{queue}.dlx").as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;

    second_poison_is_dead_lettered(&url, &queue, &worker, 2).await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

// --- A message dead-lettered twice (its worker lost between the letter and
// the acknowledgement) has two letters with one id, and is replayed once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dead_lettered_twice_is_replayed_once() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("dead-twice");
    let dead = DeadLetters::connect(&url, &queue).await.unwrap();
    drop(service(&url, &queue, 2).await); // declares the queue
    let (connection, channel) = raw(&url).await;
    for id in ["twice", "once", "twice"] {
        let confirm = channel
            .basic_publish(
                "".into(),
                dead_of(&queue).as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                b"{}",
                envelope_properties("Restock", id),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    let _ = connection.close(200, "OK".into()).await;
    let ids: Vec<String> = dead
        .list(10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, ["twice", "once", "twice"], "one id per message");

    assert_eq!(dead.replay_all().await.unwrap(), 2);
    assert!(dead.is_empty().await.unwrap(), "the repeat was removed");
    let replayed = message_ids(&url, &queue_of(&queue)).await;
    assert_eq!(replayed, ["twice", "once"]);
    cleanup(&url, &queue).await;
}
