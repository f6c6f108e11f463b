//! What cannot run ends in the dead letters, without holding up the rest:
//! entries that are not envelopes (field names that are not text, binary
//! payloads), entries over the size cap, entries whose handlers crash the
//! process; letters keep their entries byte for byte, and replays running at
//! once replay each letter once.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Logs;
use common::redis::{
    cleanup, connection, dead_letters, emitter, fresh_queue, redis_url, service, spawn_child,
    spawn_run, stop, stream_key,
};
use common::until;
use pyventus::redis::{Envelope, Error, RedisProcessingService, Worker, WorkerBuilder};
use pyventus::{Event, Linker, on};
use redis::{AsyncCommands, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Parcel {
    n: u64,
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Poison {
    id: u64,
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Bulky {
    pad: String,
}

#[derive(Linker)]
struct Letters;

/// Records each parcel in a Redis set (the crash test's parcels run in a child).
#[on(Parcel, linker = Letters)]
fn deliver_parcel(p: &Parcel) -> anyhow::Result<()> {
    let queue = std::env::var(CHILD_QUEUE).unwrap_or_else(|_| "none".to_owned());
    let mut conn = redis::Client::open(pyventus::redis::url_from_env())?.get_connection()?;
    let _: () = redis::cmd("SADD")
        .arg(format!("test:{queue}:done"))
        .arg(p.n)
        .query(&mut conn)?;
    Ok(())
}

/// Kills the process that runs it, after counting the run in Redis.
#[on(Poison, linker = Letters)]
fn crash_the_process(_: &Poison) -> anyhow::Result<()> {
    let queue = std::env::var(CHILD_QUEUE)?;
    let mut conn = redis::Client::open(pyventus::redis::url_from_env())?.get_connection()?;
    let _: u64 = redis::cmd("INCR")
        .arg(format!("test:{queue}:poison-runs"))
        .query(&mut conn)?;
    std::process::abort();
}

const CHILD_QUEUE: &str = "PYVENTUS_TEST_CRASH_QUEUE";

fn worker(url: &str, queue: &str) -> WorkerBuilder {
    Worker::builder(url)
        .queue(queue)
        .linker(Letters::linker())
        .visibility_timeout(Duration::from_secs(1))
        .block(Duration::from_millis(50))
}

/// `XADD` of raw fields, whatever their bytes.
async fn add_raw(url: &str, queue: &str, fields: &[(&[u8], &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream_key(queue)).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    cmd.query_async(&mut connection(url).await).await.unwrap()
}

/// The fields of a stream entry, as bytes.
async fn raw_fields(url: &str, queue: &str, id: &str) -> Vec<Vec<u8>> {
    let reply: Value = redis::cmd("XRANGE")
        .arg(stream_key(queue))
        .arg(id)
        .arg(id)
        .query_async(&mut connection(url).await)
        .await
        .unwrap();
    let Value::Array(mut entries) = reply else {
        panic!("{reply:?}")
    };
    let Value::Array(mut entry) = entries.remove(0) else {
        panic!()
    };
    let Value::Array(fields) = entry.remove(1) else {
        panic!()
    };
    fields
        .into_iter()
        .map(|f| match f {
            Value::BulkString(bytes) => bytes,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_field_name_is_not_text_does_not_hold_up_its_batch() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("not-text");
    let service = service(&url, &queue).await;
    let emitter = emitter(service, Letters::linker());
    emitter.emit(Parcel { n: 1 }).unwrap();
    add_raw(&url, &queue, &[(b"\xff\xfe", b"\x00binary")]).await;
    emitter.emit(Parcel { n: 2 }).unwrap();

    // One read takes all three; the bad one must not spoil the others.
    let worker = worker(&url, &queue)
        .max_deliveries(3)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = dead_letters(&url, &queue).await;
    until(Duration::from_secs(10), "the good entries", async || {
        worker.stats().processed == 2
    })
    .await;
    until(
        Duration::from_secs(10),
        "the bad entry's letter",
        async || dead.len().await.unwrap() == 1,
    )
    .await;
    stop(&worker, running).await;

    let letter = &dead.list(1).await.unwrap()[0];
    assert_eq!(
        letter.fields,
        [(b"\xff\xfe".to_vec(), b"\x00binary".to_vec())],
        "kept byte for byte"
    );
    assert_eq!(letter.deliveries, 1, "not retried: it can never run");
    assert!(
        letter
            .reason
            .starts_with("malformed envelope: no `v` field"),
        "{}",
        letter.reason
    );
    assert_eq!(worker.stats().retried, 0);
    cleanup(&url, &queue).await;
}

/// Not a test on its own: the worker process the crash-loop test starts, and
/// that its poison entry kills.
#[test]
fn child_crash_loop_worker() {
    let Ok(queue) = std::env::var(CHILD_QUEUE) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let worker = Worker::builder(&pyventus::redis::url_from_env())
            .queue(&queue)
            .linker(Letters::linker())
            .concurrency(1)
            .visibility_timeout(Duration::from_millis(300))
            .max_deliveries(2)
            .block(Duration::from_millis(50))
            .connect()
            .await
            .unwrap();
        worker.run().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_crashes_its_worker_is_dead_lettered_after_max_deliveries_without_running() {
    const PARCELS: u64 = 5;
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("crash-loop");
    let emitter = emitter(service(&url, &queue).await, Letters::linker());
    emitter.emit(Poison { id: 1 }).unwrap();
    for n in 0..PARCELS {
        emitter.emit(Parcel { n }).unwrap();
    }
    let mut conn = connection(&url).await;
    let (done, runs) = (
        format!("test:{queue}:done"),
        format!("test:{queue}:poison-runs"),
    );
    let dead = dead_letters(&url, &queue).await;

    // Workers crash on the poison entry; each one is replaced, like a
    // supervisor would. Its third delivery (max_deliveries is 2) must not run.
    let mut spawned = 0;
    let mut child = None;
    let finished = async || {
        conn.clone().scard::<_, u64>(&done).await.unwrap() == PARCELS
            && dead.len().await.unwrap() == 1
    };
    let start = std::time::Instant::now();
    while !finished().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the queue is stuck after {spawned} workers"
        );
        let alive = child
            .as_mut()
            .is_some_and(|c: &mut std::process::Child| c.try_wait().unwrap().is_none());
        if !alive {
            assert!(spawned < 6, "the poison entry keeps killing workers");
            child = Some(spawn_child(
                "child_crash_loop_worker",
                &[(CHILD_QUEUE, &queue)],
            ));
            spawned += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(mut child) = child {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let poison_runs: u64 = conn.get(&runs).await.unwrap();
    assert_eq!(poison_runs, 2, "ran max_deliveries times, then never again");
    let letter = &dead.list(1).await.unwrap()[0];
    assert_eq!(letter.event(), "Poison");
    assert_eq!(letter.deliveries, 3);
    assert!(
        letter.reason.contains("may crash the worker"),
        "{}",
        letter.reason
    );
    let _: () = conn.del(&runs).await.unwrap();
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_over_the_size_cap_is_refused_at_emit() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("too-large");
    let service = RedisProcessingService::builder(&url)
        .queue(&queue)
        .max_entry_size(1_024)
        .connect()
        .await
        .unwrap();
    let err = service
        .enqueue(&Envelope::new("Parcel", "x".repeat(2_000)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::EntryTooLarge { max: 1_024, .. }),
        "{err}"
    );
    // Through `emit`, the same error is the source of pyventus's.
    let emitter = emitter(service, Letters::linker());
    let err = emitter
        .emit(Bulky {
            pad: "x".repeat(2_000),
        })
        .unwrap_err();
    assert!(
        matches!(Error::of(&err), Some(Error::EntryTooLarge { .. })),
        "{err}"
    );
    emitter.emit(Parcel { n: 1 }).unwrap();
    let len: u64 = connection(&url)
        .await
        .xlen(stream_key(&queue))
        .await
        .unwrap();
    assert_eq!(len, 1, "only the small one was enqueued");
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "current_thread")]
async fn entries_over_the_workers_cap_or_failing_loudly_are_dead_lettered_with_short_logs() {
    let Some(url) = redis_url().await else { return };
    let (logs, _guard) = Logs::capture();
    let queue = fresh_queue("loud");
    let service = service(&url, &queue).await;
    // Over the worker's cap: never decoded.
    let huge = format!(r#"{{"n":1,"pad":"{}"}}"#, "p".repeat(2 * 1024 * 1024));
    let big = RedisProcessingService::builder(&url)
        .queue(&queue)
        .max_entry_size(4 * 1024 * 1024)
        .connect()
        .await
        .unwrap();
    big.enqueue(&Envelope::new("Parcel", huge)).await.unwrap();
    // Under it, but its decoding error quotes 100 kB of it.
    let loud = format!(r#"{{"n":"{}"}}"#, "q".repeat(100_000));
    service
        .enqueue(&Envelope::new("Parcel", loud))
        .await
        .unwrap();

    let worker = worker(&url, &queue)
        .max_deliveries(1)
        .connect()
        .await
        .unwrap();
    let running = spawn_run(&worker);
    let dead = dead_letters(&url, &queue).await;
    until(Duration::from_secs(10), "two letters", async || {
        dead.len().await.unwrap() == 2
    })
    .await;
    stop(&worker, running).await;

    let letters = dead.list(2).await.unwrap();
    assert!(
        letters[0].reason.starts_with("entry too large"),
        "{}",
        letters[0].reason
    );
    assert!(
        letters[0].payload().unwrap().len() > 2 * 1024 * 1024,
        "kept whole"
    );
    assert!(
        letters[1].reason.starts_with("malformed payload"),
        "{}",
        letters[1].reason
    );
    assert!(
        letters[1].reason.len() < 10_000,
        "the letter's reason is cut"
    );
    let text = logs.text();
    assert!(text.contains("moved to the dead letters"), "{text}");
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4_000, "a log line of {longest} bytes");
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_binary_entries_byte_for_byte_and_replay_them_as_they_were() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("binary");
    let payload: Vec<u8> = (0..65_536_u32)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    assert!(std::str::from_utf8(&payload).is_err());
    let fields: [(&[u8], &[u8]); 5] = [
        (b"v", b"1"),
        (b"id", b"binary-envelope"),
        (b"event", b"Parcel"),
        (b"payload", &payload),
        (b"emitted_at", b"0"),
    ];
    let worker = worker(&url, &queue).connect().await.unwrap();
    add_raw(&url, &queue, &fields).await;
    let running = spawn_run(&worker);
    let dead = dead_letters(&url, &queue).await;
    until(Duration::from_secs(10), "the letter", async || {
        dead.len().await.unwrap() == 1
    })
    .await;
    stop(&worker, running).await;

    let letter = &dead.list(1).await.unwrap()[0];
    assert_eq!(letter.payload(), Some(&payload[..]), "byte for byte");
    assert!(
        letter.reason.contains("`payload` is not UTF-8 text"),
        "{}",
        letter.reason
    );
    let before: Vec<String> = connection(&url)
        .await
        .xrange_all::<_, redis::streams::StreamRangeReply>(stream_key(&queue))
        .await
        .unwrap()
        .ids
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(dead.replay(&letter.id).await.unwrap());
    let replayed: Vec<String> = connection(&url)
        .await
        .xrange_all::<_, redis::streams::StreamRangeReply>(stream_key(&queue))
        .await
        .unwrap()
        .ids
        .into_iter()
        .map(|e| e.id)
        .filter(|id| !before.contains(id))
        .collect();
    let expected: Vec<Vec<u8>> = fields
        .iter()
        .flat_map(|(k, v)| [k.to_vec(), v.to_vec()])
        .collect();
    assert_eq!(raw_fields(&url, &queue, &replayed[0]).await, expected);
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replays_replay_each_letter_once() {
    const LETTERS: usize = 300;
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("replays");
    let worker = worker(&url, &queue).connect().await.unwrap();
    for i in 0..LETTERS {
        add_raw(&url, &queue, &[(b"garbage", i.to_string().as_bytes())]).await;
    }
    let running = spawn_run(&worker);
    let dead = dead_letters(&url, &queue).await;
    until(Duration::from_secs(20), "the letters", async || {
        dead.len().await.unwrap() == LETTERS as u64
    })
    .await;
    stop(&worker, running).await;
    let last: Vec<(String, Value)> = redis::cmd("XREVRANGE")
        .arg(stream_key(&queue))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut connection(&url).await)
        .await
        .unwrap();
    let last = last[0].0.clone();

    let other = dead_letters(&url, &queue).await;
    let (a, b) = tokio::join!(dead.replay_all(), other.replay_all());
    assert_eq!(a.unwrap() + b.unwrap(), LETTERS, "each counted once");
    assert!(dead.is_empty().await.unwrap());
    let queued: redis::streams::StreamRangeReply = connection(&url)
        .await
        .xrange(stream_key(&queue), format!("({last}"), "+")
        .await
        .unwrap();
    let garbage: Vec<String> = queued
        .ids
        .iter()
        .map(|e| e.get::<String>("garbage").unwrap())
        .collect();
    assert_eq!(garbage.len(), LETTERS, "each enqueued once");
    let unique: HashSet<_> = garbage.iter().collect();
    assert_eq!(unique.len(), LETTERS);
    cleanup(&url, &queue).await;
}
