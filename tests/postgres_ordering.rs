//! Ordering per partition key: the events of one key are delivered one at a
//! time, in commit order, even when transactions of that key race; unkeyed
//! events run in parallel.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use common::postgres::{cleanup, outbox, relay, spawn_run, stop};
use common::until;
use pyventus::postgres::current_delivery;
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};

#[derive(Linker)]
struct OrderingTests;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Step {
    n: u64,
}

/// Key -> the `n`s in the order they were delivered.
static DELIVERED: Mutex<Option<HashMap<String, Vec<u64>>>> = Mutex::new(None);
/// Key -> deliveries of that key running now.
static RUNNING: Mutex<Option<HashMap<String, i32>>> = Mutex::new(None);
static OVERLAPS: AtomicU32 = AtomicU32::new(0);
static UNKEYED_NOW: AtomicI32 = AtomicI32::new(0);
static UNKEYED_MAX: AtomicI32 = AtomicI32::new(0);

#[on(Step, linker = OrderingTests)]
async fn apply_step(step: Step) {
    let key = current_delivery().unwrap().partition_key;
    match &key {
        Some(key) => {
            let mut running = RUNNING.lock().unwrap();
            let now = running
                .get_or_insert_with(HashMap::new)
                .entry(key.clone())
                .or_default();
            *now += 1;
            if *now > 1 {
                OVERLAPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        None => {
            let now = UNKEYED_NOW.fetch_add(1, Ordering::SeqCst) + 1;
            UNKEYED_MAX.fetch_max(now, Ordering::SeqCst);
        }
    }
    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..4))).await;
    match key {
        Some(key) => {
            *RUNNING
                .lock()
                .unwrap()
                .as_mut()
                .unwrap()
                .get_mut(&key)
                .unwrap() -= 1;
            DELIVERED
                .lock()
                .unwrap()
                .get_or_insert_with(HashMap::new)
                .entry(key)
                .or_default()
                .push(step.n);
        }
        None => {
            UNKEYED_NOW.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

const KEYS: usize = 4;
const PER_TASK: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_keys_events_run_one_at_a_time_in_commit_order_and_unkeyed_ones_in_parallel() {
    let Some((pool, outbox)) = outbox("ordering").await else {
        return;
    };
    // Key -> the `n`s in commit order: a keyed emit holds its key's lock to
    // COMMIT, so the order in which emits of one key return is commit order.
    let committed = std::sync::Arc::new(Mutex::new(HashMap::<String, Vec<u64>>::new()));
    let mut tasks = Vec::new();
    for key in 0..KEYS {
        // Two tasks race on each key.
        for racer in 0..2_u64 {
            let (pool, outbox, committed) = (pool.clone(), outbox.clone(), committed.clone());
            tasks.push(tokio::spawn(async move {
                let key = format!("account-{key}");
                for i in 0..PER_TASK {
                    let n = racer * 1_000 + i;
                    let mut tx = pool.begin().await.unwrap();
                    outbox.keyed(&key).emit(&mut tx, Step { n }).await.unwrap();
                    committed
                        .lock()
                        .unwrap()
                        .entry(key.clone())
                        .or_default()
                        .push(n);
                    tokio::task::yield_now().await;
                    tx.commit().await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut tx = pool.begin().await.unwrap();
    for n in 0..64 {
        outbox.emit(&mut tx, Step { n }).await.unwrap();
    }
    tx.commit().await.unwrap();

    let relay = relay(&outbox)
        .linker(OrderingTests::linker())
        .concurrency(32)
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    let total = KEYS as u64 * 2 * PER_TASK + 64;
    until(Duration::from_mins(1), "every step", async || {
        relay.stats().delivered == total
    })
    .await;
    stop(&relay, running).await;

    let delivered = DELIVERED.lock().unwrap().take().unwrap();
    let committed = std::mem::take(&mut *committed.lock().unwrap());
    for (key, order) in &committed {
        assert_eq!(
            delivered.get(key),
            Some(order),
            "{key}: delivered in commit order"
        );
    }
    assert_eq!(
        OVERLAPS.load(Ordering::SeqCst),
        0,
        "one event of a key at a time"
    );
    let parallel = UNKEYED_MAX.load(Ordering::SeqCst);
    assert!(
        parallel > 1,
        "unkeyed events run in parallel (at most {parallel} at once)"
    );
    cleanup(&pool, &outbox).await;
}
