//! Relays side by side: two relays on one table never deliver an event twice
//! while both are healthy; a relay that stalls past its lease loses the event
//! to the other and cannot complete it afterwards (fencing); a relay hands
//! events to a processing service instead of running handlers itself.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::postgres::{cleanup, outbox, outbox_rows, relay, spawn_run, stop};
use common::until;
use pyventus::postgres::current_delivery;
use pyventus::{Event, ExecutorProcessingService, Linker, on};
use serde::{Deserialize, Serialize};

#[derive(Linker)]
struct RelayTests;

// --- Two healthy relays.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Order {
    n: u64,
}

static ORDERS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

#[on(Order, linker = RelayTests)]
async fn fulfil(order: Order) {
    tokio::time::sleep(Duration::from_micros(200)).await;
    *ORDERS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(order.n)
        .or_default() += 1;
}

const N: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_table_never_deliver_an_event_twice_while_healthy() {
    let Some((pool, outbox)) = outbox("two_relays").await else {
        return;
    };
    let relays: Vec<_> = (0..2)
        .map(|i| {
            relay(&outbox)
                .linker(RelayTests::linker())
                .name(format!("relay-{i}"))
                .concurrency(16)
                .build()
                .unwrap()
        })
        .collect();
    let running: Vec<_> = relays.iter().map(spawn_run).collect();
    for chunk in 0..N as u64 / 100 {
        let mut tx = pool.begin().await.unwrap();
        for i in 0..100 {
            outbox
                .emit(&mut tx, Order { n: chunk * 100 + i })
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    until(Duration::from_mins(1), "every order", async || {
        ORDERS.lock().unwrap().as_ref().map_or(0, HashMap::len) == N
    })
    .await;
    for (relay, running) in relays.iter().zip(running) {
        stop(relay, running).await;
    }
    let orders = ORDERS.lock().unwrap().take().unwrap();
    assert!(
        orders.values().all(|runs| *runs == 1),
        "no order fulfilled twice"
    );
    let shares: Vec<u64> = relays.iter().map(|r| r.stats().delivered).collect();
    assert_eq!(shares.iter().sum::<u64>(), N as u64);
    assert!(
        shares.iter().all(|s| *s > 0),
        "both relays took a share: {shares:?}"
    );
    assert_eq!(outbox_rows(&pool, &outbox).await, 0);
    cleanup(&pool, &outbox).await;
}

// --- A relay that stalls past its lease.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Transfer;

static TRANSFER_RUNS: AtomicU32 = AtomicU32::new(0);
static STALLED_STARTED: AtomicBool = AtomicBool::new(false);
static STALLED_GAVE_UP: AtomicBool = AtomicBool::new(false);

#[on(Transfer, linker = RelayTests)]
async fn transfer(_: Transfer) {
    let run = TRANSFER_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 1 {
        // The first relay's whole runtime stalls (a paused process, a long
        // GC): its lease keeper cannot renew either.
        STALLED_STARTED.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(2));
    } else {
        // The second relay holds the event until the first has tried, and
        // failed, to complete it.
        assert!(current_delivery().unwrap().attempt >= 2);
        while !STALLED_GAVE_UP.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_stalled_past_its_lease_loses_the_event_and_cannot_complete_it_afterwards() {
    let Some((pool, outbox)) = outbox("fencing").await else {
        return;
    };
    let lease = Duration::from_millis(600);
    // On a runtime of its own, with one thread, and a pool of its own (a
    // connection belongs to the runtime that opened it): the stall stops all
    // of it, and only it.
    let (url, schema) = (
        pyventus::postgres::url_from_env(),
        outbox.schema().to_owned(),
    );
    let (handle, stalled) = std::sync::mpsc::channel();
    let stalled_thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let pool = common::postgres::pool(&url, 4).await;
                let outbox = pyventus::postgres::Outbox::builder()
                    .schema(schema)
                    .build(&pool)
                    .unwrap();
                let stalled = relay(&outbox)
                    .linker(RelayTests::linker())
                    .name("stalled")
                    .lease(lease)
                    .build()
                    .unwrap();
                handle.send(stalled.clone()).unwrap();
                stalled.run().await
            })
    });
    let stalled = stalled.recv().unwrap();
    let mut tx = pool.begin().await.unwrap();
    let id = outbox.emit(&mut tx, Transfer).await.unwrap();
    tx.commit().await.unwrap();
    until(
        Duration::from_secs(5),
        "the first relay's claim",
        async || STALLED_STARTED.load(Ordering::SeqCst),
    )
    .await;

    let healthy = relay(&outbox)
        .linker(RelayTests::linker())
        .name("healthy")
        .lease(lease)
        .build()
        .unwrap();
    let running = spawn_run(&healthy);
    until(
        Duration::from_secs(5),
        "the healthy relay's claim",
        async || TRANSFER_RUNS.load(Ordering::SeqCst) == 2,
    )
    .await;
    until(
        Duration::from_secs(5),
        "the stalled relay noticing",
        async || stalled.stats().leases_lost == 1,
    )
    .await;
    let (owner, fence): (String, i64) = sqlx::query_as(&format!(
        "SELECT lease_owner, fence FROM {}.outbox WHERE id = $1",
        outbox.schema()
    ))
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (owner.as_str(), fence),
        ("healthy", 2),
        "still there, the healthy relay's"
    );
    assert_eq!(
        stalled.stats().delivered,
        0,
        "the stalled relay completed nothing"
    );

    STALLED_GAVE_UP.store(true, Ordering::SeqCst);
    until(
        Duration::from_secs(5),
        "the healthy relay's completion",
        async || healthy.stats().delivered == 1,
    )
    .await;
    stop(&healthy, running).await;
    stalled.shutdown();
    stalled_thread.join().unwrap().unwrap();
    assert_eq!(TRANSFER_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(outbox_rows(&pool, &outbox).await, 0);
    cleanup(&pool, &outbox).await;
}

// --- Relaying to a processing service.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Ping {
    n: u64,
}

static PINGS: AtomicU32 = AtomicU32::new(0);

#[on(Ping, linker = RelayTests)]
fn pong(_: &Ping) {
    std::thread::sleep(Duration::from_millis(1));
    PINGS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn a_relay_hands_committed_events_to_a_processing_service() {
    let Some((pool, outbox)) = outbox("forward").await else {
        return;
    };
    let relay = relay(&outbox)
        .linker(RelayTests::linker())
        .forward_to(ExecutorProcessingService::with_threads(2))
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    let mut tx = pool.begin().await.unwrap();
    for n in 0..20 {
        outbox.emit(&mut tx, Ping { n }).await.unwrap();
    }
    tx.commit().await.unwrap();
    until(Duration::from_secs(10), "every ping", async || {
        relay.stats().delivered == 20
    })
    .await;
    // Delivered means the service ran it: every handler had finished.
    assert_eq!(PINGS.load(Ordering::SeqCst), 20);
    stop(&relay, running).await;
    assert_eq!(outbox_rows(&pool, &outbox).await, 0);
    cleanup(&pool, &outbox).await;
}

// --- A run dropped midway.

/// A `run` future dropped (a `select!` that took another branch) leaves no
/// task of its own behind once what it started has ended, as a run that
/// returned leaves none: its lease keeper once went on for good, waking every
/// third of a lease to renew nothing.
#[tokio::test]
async fn a_dropped_run_leaves_no_task_behind() {
    let Some((pool, outbox)) = outbox("dropped_run").await else {
        return;
    };
    let first = relay(&outbox).linker(RelayTests::linker()).build().unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    // What is alive once a run has returned: the tasks no run leaves.
    let running = spawn_run(&first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(&first, running).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let settled = metrics.num_alive_tasks();
    let second = relay(&outbox).linker(RelayTests::linker()).build().unwrap();
    // Started: the same 300 ms the first run had.
    let started = tokio::time::Instant::now();
    common::drop_run_once(second.run(), "300 ms", async || {
        started.elapsed() >= Duration::from_millis(300)
    })
    .await;
    until(
        Duration::from_secs(3),
        "the dropped run's tasks to end",
        async || metrics.num_alive_tasks() == settled,
    )
    .await;
    cleanup(&pool, &outbox).await;
}
