//! The queue's backlog is bounded without losing anything silently: a full
//! queue refuses emissions by default, drops its oldest waiting entries only
//! when told to (counting and logging each drop), and workers trim only the
//! entries they have handled.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use common::Logs;
use common::redis::{
    cleanup, connection, emitter, fresh_queue, redis_url, spawn_run, stop, stream_key,
};
use common::until;
use pyventus::redis::{Envelope, Error, Overflow, RedisProcessingService, Worker};
use pyventus::{Event, Linker, on};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Tick {
    n: u64,
}

/// Each test's workers record what they ran in a list of their own.
#[derive(Linker)]
struct Refusing;

#[derive(Linker)]
struct Dropping;

#[derive(Linker)]
struct Trimming;

static REFUSING: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
static DROPPING: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

#[on(Tick, linker = Refusing)]
fn refusing(t: &Tick) {
    REFUSING.lock().unwrap().insert(t.n);
}

#[on(Tick, linker = Dropping)]
fn dropping(t: &Tick) {
    DROPPING.lock().unwrap().insert(t.n);
}

#[on(Tick, linker = Trimming)]
fn trimming() {}

async fn drain(url: &str, queue: &str, linker: pyventus::EventLinker, expected: usize) {
    let worker = Worker::builder(url)
        .queue(queue)
        .linker(linker)
        .block(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(10), "the backlog", async || {
        worker.stats().processed == expected as u64
    })
    .await;
    stop(&worker, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_emissions_and_keeps_every_waiting_entry() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("full");
    let service = RedisProcessingService::builder(&url)
        .queue(&queue)
        .stream_cap(100)
        .connect()
        .await
        .unwrap();
    let emitter = emitter(service.clone(), Refusing::linker());
    let results: Vec<_> = (0..150).map(|n| emitter.emit(Tick { n })).collect();
    assert!(results[..100].iter().all(Result::is_ok));
    for err in results[100..].iter().map(|r| r.as_ref().unwrap_err()) {
        match Error::of(err) {
            Some(Error::QueueFull { backlog, cap, .. }) => assert_eq!((*backlog, *cap), (100, 100)),
            _ => panic!("expected QueueFull, got {err}"),
        }
    }
    assert_eq!(service.stats().rejected, 50);
    let len: u64 = connection(&url)
        .await
        .xlen(stream_key(&queue))
        .await
        .unwrap();
    assert_eq!(len, 100, "nothing trimmed");

    drain(&url, &queue, Refusing::linker(), 100).await;
    assert_eq!(
        *REFUSING.lock().unwrap(),
        (0..100).collect(),
        "every waiting entry ran"
    );
    emitter.emit(Tick { n: 1_000 }).unwrap(); // room again
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_the_oldest_is_an_explicit_counted_and_logged_choice() {
    let Some(url) = redis_url().await else { return };
    let (logs, _guard) = Logs::capture();
    let queue = fresh_queue("drop");
    let service = RedisProcessingService::builder(&url)
        .queue(&queue)
        .stream_cap(100)
        .when_full(Overflow::DropOldest)
        .connect()
        .await
        .unwrap();
    for n in 0..150 {
        service
            .enqueue(&Envelope::new("Tick", format!(r#"{{"n":{n}}}"#)))
            .await
            .unwrap();
    }
    assert_eq!(service.stats().dropped, 50);
    assert!(
        logs.text().contains("dropped the oldest"),
        "{}",
        logs.text()
    );

    drain(&url, &queue, Dropping::linker(), 100).await;
    assert_eq!(
        *DROPPING.lock().unwrap(),
        (50..150).collect(),
        "the newest hundred ran"
    );
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_trim_the_entries_they_have_handled() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("trim");
    let service = RedisProcessingService::builder(&url)
        .queue(&queue)
        .connect()
        .await
        .unwrap();
    for n in 0..1_000 {
        service
            .enqueue(&Envelope::new("Tick", format!(r#"{{"n":{n}}}"#)))
            .await
            .unwrap();
    }
    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Trimming::linker())
        .visibility_timeout(Duration::from_millis(400))
        .block(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    until(Duration::from_secs(10), "the ticks", async || {
        worker.stats().processed == 1_000
    })
    .await;
    let mut conn = connection(&url).await;
    until(
        Duration::from_secs(5),
        "the handled entries to go",
        async || conn.xlen::<_, u64>(stream_key(&queue)).await.unwrap() < 200,
    )
    .await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}
