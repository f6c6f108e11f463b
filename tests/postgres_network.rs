//! A relay whose network to PostgreSQL fails without closing anything: a
//! server that accepts connections and never answers, or a network gone
//! silent under open connections (packets dropped). Its shutdown still ends:
//! `shutdown_now` at once, `shutdown` within its deadline and the settling
//! time after it. The relay talks to PostgreSQL through a TCP proxy the test
//! controls; the test itself reads and writes directly. Each wait is bounded,
//! so a hang fails within seconds.
#![cfg(feature = "postgres")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::postgres::{cleanup, outbox, outbox_rows, pool, postgres_url, relay, spawn_run};
use common::proxy::Proxy;
use common::until;
use pyventus::postgres::{Error, Outbox, Relay};
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

#[derive(Linker)]
struct Network;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Stuck;

static STUCK_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Holds its delivery for two minutes.
#[on(Stuck, linker = Network)]
async fn stall(_: Stuck) {
    STUCK_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_mins(2)).await;
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Held;

static HELD_STARTED: AtomicBool = AtomicBool::new(false);
static HELD_RELEASED: AtomicBool = AtomicBool::new(false);

/// Holds its delivery until the test lets it go.
#[on(Held, linker = Network)]
async fn hold(_: Held) {
    HELD_STARTED.store(true, Ordering::SeqCst);
    while !HELD_RELEASED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type Running = tokio::task::JoinHandle<Result<(), Error>>;

/// The same outbox as `outbox`, on a pool whose connections go through
/// `proxy`; and that pool.
async fn behind(proxy: &Proxy, outbox: &Outbox) -> (Outbox, PgPool) {
    let url = postgres_url().await.unwrap();
    let pool = pool(&proxy.url(&url), 10).await;
    let outbox = Outbox::builder()
        .schema(outbox.schema())
        .build(&pool)
        .unwrap();
    (outbox, pool)
}

/// A relay on `outbox` with a 3 s lease (renewed every second) and a 2 s
/// shutdown deadline.
fn network_relay(outbox: &Outbox) -> Relay {
    relay(outbox)
        .linker(Network::linker())
        .lease(Duration::from_secs(3))
        .build()
        .unwrap()
}

/// How long `run` took to return after `stop`, failing after `limit`.
async fn ended_within(limit: Duration, running: Running, stop: impl FnOnce()) -> Duration {
    let asked = Instant::now();
    stop();
    let ended = tokio::time::timeout(limit, running).await;
    assert!(
        ended.is_ok(),
        "run() still running {limit:?} after the stop"
    );
    asked.elapsed()
}

/// A `network_relay` behind a proxy running `event`'s handler (started once
/// `started` holds), then the network gone silent for 1.5 s: a lease renewal
/// and a poll's claim go out into the silence.
async fn silenced_relay<E: pyventus::Event + Serialize>(
    pool: &PgPool,
    direct: &Outbox,
    event: E,
    started: impl Fn() -> bool,
) -> (Relay, Running, Proxy) {
    let proxy = Proxy::start(&postgres_url().await.unwrap(), 5432).await;
    let relay = network_relay(&behind(&proxy, direct).await.0);
    let running = spawn_run(&relay);
    let mut tx = pool.begin().await.unwrap();
    direct.emit(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
    until(
        Duration::from_secs(10),
        "the handler to start",
        async || started(),
    )
    .await;
    proxy.silence();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    (relay, running, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_stops_a_relay_at_once_on_a_silent_network() {
    let Some((pool, direct)) = outbox("silent_now").await else {
        return;
    };
    let before = STUCK_STARTED.load(Ordering::SeqCst);
    let (relay, running, _proxy) = silenced_relay(&pool, &direct, Stuck, || {
        STUCK_STARTED.load(Ordering::SeqCst) > before
    })
    .await;
    let took = ended_within(Duration::from_secs(20), running, || relay.shutdown_now()).await;
    assert!(
        took < Duration::from_secs(3),
        "shutdown_now on a silent network took {took:?}"
    );
    cleanup(&pool, &direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_of_a_relay_ends_on_a_silent_network() {
    let Some((pool, direct)) = outbox("silent_graceful").await else {
        return;
    };
    let (relay, running, _proxy) =
        silenced_relay(&pool, &direct, Held, || HELD_STARTED.load(Ordering::SeqCst)).await;
    // The handler finishes within the deadline; its outcome cannot be written.
    let took = ended_within(Duration::from_secs(20), running, || {
        relay.shutdown();
        HELD_RELEASED.store(true, Ordering::SeqCst);
    })
    .await;
    // A claim that went out into the silence has 5 s (the deadline, 2 s, or
    // 5 s at least), the deliveries what is left of the deadline, then the
    // outcomes at most 5 s: 10 s.
    assert!(
        took < Duration::from_secs(12),
        "a graceful shutdown on a silent network took {took:?}"
    );
    cleanup(&pool, &direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_a_relay_at_once_while_postgres_does_not_answer() {
    let Some((pool, direct)) = outbox("black_hole").await else {
        return;
    };
    let mut proxy = Proxy::start(&postgres_url().await.unwrap(), 5432).await;
    let (outbox, _) = behind(&proxy, &direct).await;
    proxy.black_hole().await;
    // Starting: its schema check waits on a connection that never opens.
    let relay = network_relay(&outbox);
    let running = spawn_run(&relay);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = ended_within(Duration::from_secs(20), running, || relay.shutdown()).await;
    assert!(
        took < Duration::from_secs(2),
        "shutdown while PostgreSQL does not answer took {took:?}"
    );
    cleanup(&pool, &direct).await;
}

// --- `shutdown_now` over a slow but healthy network (a database in another
// zone): what finished is written, what was cut short is given back, within
// the grace.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Gated {
    n: u64,
}

static GATE: AtomicBool = AtomicBool::new(false);
static GATED_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Even events finish when the gate opens; odd ones run until cut short.
#[on(Gated, linker = Network)]
async fn gated(g: Gated) {
    GATED_STARTED.fetch_add(1, Ordering::SeqCst);
    while !(GATE.load(Ordering::SeqCst) && g.n.is_multiple_of(2)) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A relay running 64 deliveries at once on `direct`'s outbox, its leases of
/// `lease`, 10 ms each way from PostgreSQL (a round trip of 20 ms), with
/// `events` emitted; the proxy it goes through.
async fn slow_relay<E: pyventus::Event + Serialize>(
    pool: &PgPool,
    direct: &Outbox,
    lease: Duration,
    events: impl IntoIterator<Item = E>,
) -> (Relay, Running, Proxy) {
    let url = postgres_url().await.unwrap();
    let proxy = Proxy::slow(&url, 5432, Duration::from_millis(10)).await;
    let (outbox, _) = behind(&proxy, direct).await;
    let relay = relay(&outbox)
        .linker(Network::linker())
        .concurrency(64)
        .lease(lease)
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    let mut tx = pool.begin().await.unwrap();
    for event in events {
        direct.emit(&mut tx, event).await.unwrap();
    }
    tx.commit().await.unwrap();
    (relay, running, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_over_a_slow_network_writes_what_finished_and_gives_back_the_rest() {
    const N: usize = 64;
    let Some((pool, direct)) = outbox("slow_now").await else {
        return;
    };
    let events = (0..N as u64).map(|n| Gated { n });
    let (relay, running, _proxy) =
        slow_relay(&pool, &direct, Duration::from_secs(30), events).await;
    until(
        Duration::from_secs(20),
        "every handler to start",
        async || GATED_STARTED.load(Ordering::SeqCst) == N,
    )
    .await;
    GATE.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    ended_within(Duration::from_secs(20), running, || relay.shutdown_now()).await;
    let stats = relay.stats();
    // Every event was either written as delivered or given back: none left
    // to run again though it succeeded, none leased for the next 30 s.
    assert_eq!(stats.delivered + stats.abandoned, N as u64, "{stats:?}");
    assert!(stats.delivered >= N as u64 / 4, "{stats:?}");
    let leased: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.outbox WHERE lease_owner IS NOT NULL",
        direct.schema()
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leased, 0, "{stats:?}");
    assert_eq!(
        u64::try_from(outbox_rows(&pool, &direct).await).unwrap(),
        stats.abandoned
    );
    cleanup(&pool, &direct).await;
}

// --- Deadlines at the edges: none at all, and every one.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_stops_with_an_unbounded_or_a_zero_shutdown_deadline() {
    let Some((pool, direct)) = outbox("edge_deadlines").await else {
        return;
    };
    for deadline in [Duration::MAX, Duration::ZERO] {
        for now in [false, true] {
            let relay = relay(&direct)
                .linker(Network::linker())
                .shutdown_deadline(deadline)
                .build()
                .unwrap();
            let running = spawn_run(&relay);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let asked = Instant::now();
            if now {
                relay.shutdown_now();
            } else {
                relay.shutdown();
            }
            tokio::time::timeout(Duration::from_secs(10), running)
                .await
                .expect("the relay stops")
                .expect("run() does not panic")
                .unwrap();
            assert!(asked.elapsed() < Duration::from_secs(3), "{deadline:?}");
        }
    }
    cleanup(&pool, &direct).await;
}

// --- A renewal that lands after a retry was written (a long batch of
// outcomes over a slow network) does not push that retry back by a lease.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Flaky {
    n: u64,
}

/// Odd ones fail their first attempt; every other run succeeds.
#[on(Flaky, linker = Network)]
async fn flaky(f: Flaky) -> anyhow::Result<()> {
    tokio::task::yield_now().await;
    if !f.n.is_multiple_of(2) && pyventus::postgres::current_delivery().unwrap().attempt == 1 {
        anyhow::bail!("first attempt");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_during_a_batch_of_outcomes_neither_push_back_retries_nor_lose_leases() {
    const N: u64 = 64;
    let Some((pool, direct)) = outbox("renewed_retry").await else {
        return;
    };
    // A batch holds 32 successes, written first in one statement, and 32
    // failures, each written on its own, a few round trips each: over a
    // second, while the lease keeper renews every 300 ms.
    let events = (0..N).map(|n| Flaky { n });
    let (relay, running, _proxy) =
        slow_relay(&pool, &direct, Duration::from_millis(900), events).await;
    // A retry is due 10 to 50 ms after it is written; one due more than
    // half a second ahead was pushed back by a renewal.
    let schema = direct.schema().to_owned();
    let pushed_back = async || -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {schema}.outbox
             WHERE lease_owner IS NULL AND due_at > now() + interval '500 milliseconds'"
        ))
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let start = Instant::now();
    while outbox_rows(&pool, &direct).await > 0 {
        assert_eq!(pushed_back().await, 0, "retries pushed back by a renewal");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            relay.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last DELETE's answer comes 10 ms after the rows are gone.
    until(
        Duration::from_secs(5),
        "the last outcomes counted",
        async || relay.stats().delivered == N,
    )
    .await;
    let stats = relay.stats();
    assert_eq!((stats.delivered, stats.retried), (N, N / 2), "{stats:?}");
    // One relay: no lease is lost, though renewals ask for rows already
    // deleted in the batch being written.
    assert_eq!(stats.leases_lost, 0, "{stats:?}");
    ended_within(Duration::from_secs(20), running, || relay.shutdown()).await;
    cleanup(&pool, &direct).await;
}

// --- The outbox locked for seconds (a migration, a plain CREATE INDEX):
// the relay's statements wait for the lock, none is given up and left to
// run later on the server.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Migrated {
    n: u64,
}

static MIGRATED_RAN: AtomicUsize = AtomicUsize::new(0);

#[on(Migrated, linker = Network)]
fn migrated(_: &Migrated) {
    MIGRATED_RAN.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_emitted_while_the_outbox_is_locked_for_longer_than_the_lease_each_run_once() {
    const N: usize = 8;
    let Some((pool, direct)) = outbox("locked").await else {
        return;
    };
    // No retry: an attempt counted without a run would dead-letter an event.
    let relay = relay(&direct)
        .linker(Network::linker())
        .lease(Duration::from_millis(1_500))
        .max_attempts(1)
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!(
        "LOCK TABLE {}.outbox IN ACCESS EXCLUSIVE MODE",
        direct.schema()
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    for n in 0..N as u64 {
        direct.emit(&mut tx, Migrated { n }).await.unwrap();
    }
    // The relay's statements queue behind the lock, each held by its
    // connection: claims, one at a time.
    let mut waiting = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let now: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE '%' || $1 || '.outbox%'",
        )
        .bind(direct.schema())
        .fetch_one(&pool)
        .await
        .unwrap();
        waiting = waiting.max(now);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tx.commit().await.unwrap();
    until(Duration::from_secs(10), "every event to run", async || {
        MIGRATED_RAN.load(Ordering::SeqCst) >= N
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(MIGRATED_RAN.load(Ordering::SeqCst), N);
    let stats = relay.stats();
    assert_eq!(
        (stats.delivered, stats.dead_lettered),
        (N as u64, 0),
        "{stats:?}"
    );
    assert!(waiting <= 3, "{waiting} statements waiting on the lock");
    ended_within(Duration::from_secs(20), running, || relay.shutdown()).await;
    cleanup(&pool, &direct).await;
}
