//! The outbox: events emitted inside the caller's transaction exist exactly
//! when it commits; a relay delivers each committed one to every handler
//! once; typed, named and `NamedKey` forms; the schema's version is checked.
#![cfg(feature = "postgres")]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::{cleanup, outbox, outbox_rows, postgres_url, relay, spawn_run, stop};
use common::until;
use pyventus::postgres::{Error, Outbox, current_delivery};
use pyventus::{Event, Linker, NamedKey, on};
use serde::{Deserialize, Serialize};

#[derive(Linker)]
struct OutboxTests;

// --- Exactly the committed set, once per handler.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Paid {
    n: u64,
}

/// (event id, handler) -> runs.
static PAID_RUNS: Mutex<Option<HashMap<(uuid::Uuid, &'static str), u32>>> = Mutex::new(None);

fn record_paid(handler: &'static str) {
    let id = current_delivery().expect("run by a relay").event_id;
    let mut runs = PAID_RUNS.lock().unwrap();
    *runs
        .get_or_insert_with(HashMap::new)
        .entry((id, handler))
        .or_default() += 1;
}

#[on(Paid, linker = OutboxTests)]
fn ledger(_: &Paid) {
    record_paid("ledger");
}

#[on(Paid, linker = OutboxTests)]
async fn receipt(_: Arc<Paid>) {
    tokio::task::yield_now().await;
    record_paid("receipt");
}

const TASKS: u64 = 16;
const PER_TASK: u64 = 625; // 10,000 transactions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_transactions_with_thirty_percent_rolled_back_deliver_exactly_the_committed_set_once_per_handler()
 {
    let Some((pool, outbox)) = outbox("committed_set").await else {
        return;
    };
    let relay = relay(&outbox)
        .linker(OutboxTests::linker())
        .concurrency(64)
        .build()
        .unwrap();
    let running = spawn_run(&relay);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (pool, outbox) = (pool.clone(), outbox.clone());
        tasks.push(tokio::spawn(async move {
            let mut committed = HashSet::new();
            for i in 0..PER_TASK {
                let mut tx = pool.begin().await.unwrap();
                let id = outbox
                    .emit(
                        &mut tx,
                        Paid {
                            n: task * PER_TASK + i,
                        },
                    )
                    .await
                    .unwrap();
                if fastrand::u8(..100) < 30 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed.insert(id);
                }
            }
            committed
        }));
    }
    let mut committed = HashSet::new();
    for task in tasks {
        committed.extend(task.await.unwrap());
    }
    let emitted_in = started.elapsed();
    let total = committed.len();
    assert!(
        (6_000..8_000).contains(&total),
        "about 70% committed: {total}"
    );

    until(
        Duration::from_mins(1),
        "every committed event delivered",
        async || PAID_RUNS.lock().unwrap().as_ref().map_or(0, HashMap::len) >= 2 * total,
    )
    .await;
    stop(&relay, running).await;
    eprintln!(
        "10,000 transactions ({total} committed) in {emitted_in:?}; all delivered {:?} after the start; {:?}",
        started.elapsed(),
        relay.stats()
    );

    let runs = PAID_RUNS.lock().unwrap().take().unwrap();
    let delivered: HashSet<uuid::Uuid> = runs.keys().map(|(id, _)| *id).collect();
    assert_eq!(delivered, committed, "delivered exactly the committed set");
    for handler in ["ledger", "receipt"] {
        for id in &committed {
            assert_eq!(
                runs.get(&(*id, handler)),
                Some(&1),
                "{handler} ran once for {id}"
            );
        }
    }
    assert_eq!(outbox_rows(&pool, &outbox).await, 0, "the outbox is empty");
    cleanup(&pool, &outbox).await;
}

// --- Visible at COMMIT only.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Shipped {
    order: u64,
}

static SHIPPED: Mutex<Vec<(u64, uuid::Uuid, u32)>> = Mutex::new(Vec::new());

#[on(Shipped, linker = OutboxTests)]
fn shipped(e: &Shipped) {
    let delivery = current_delivery().unwrap();
    SHIPPED
        .lock()
        .unwrap()
        .push((e.order, delivery.event_id, delivery.attempt));
}

/// A running relay of these tests' handlers, listening, that only the
/// doorbell can wake in time (its poll is 30 s apart).
async fn listening_relay(
    outbox: &Outbox,
) -> (
    pyventus::postgres::Relay,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let relay = relay(outbox)
        .linker(OutboxTests::linker())
        .poll_interval(Duration::from_secs(30))
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    tokio::time::sleep(Duration::from_millis(300)).await; // listening
    (relay, running)
}

#[tokio::test]
async fn an_event_reaches_the_relay_only_once_its_transaction_commits_and_the_relay_wakes_in_milliseconds()
 {
    let Some((pool, outbox)) = outbox("commit_only").await else {
        return;
    };
    let (relay, running) = listening_relay(&outbox).await;

    let mut tx = pool.begin().await.unwrap();
    let id = outbox.emit(&mut tx, Shipped { order: 1 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(SHIPPED.lock().unwrap().is_empty(), "not before COMMIT");
    let committed = Instant::now();
    tx.commit().await.unwrap();
    until(Duration::from_secs(5), "the committed event", async || {
        !SHIPPED.lock().unwrap().is_empty()
    })
    .await;
    let woke_in = committed.elapsed();
    assert!(
        woke_in < Duration::from_secs(2),
        "woken by the doorbell, not the poll: {woke_in:?}"
    );

    let mut tx = pool.begin().await.unwrap();
    outbox.emit(&mut tx, Shipped { order: 2 }).await.unwrap();
    tx.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(&relay, running).await;

    assert_eq!(
        *SHIPPED.lock().unwrap(),
        [(1, id, 1)],
        "the event id and attempt reach the handler; the rolled-back event never does"
    );
    assert_eq!(id.get_version_num(), 7, "a UUIDv7");
    cleanup(&pool, &outbox).await;
}

// --- Many emits in one transaction.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Batched {
    n: u64,
}

static BATCHED: AtomicU64 = AtomicU64::new(0);

/// How many events the transaction emits.
const EVENTS: u64 = 500;

#[on(Batched, linker = OutboxTests)]
fn batched(_: &Batched) {
    BATCHED.fetch_add(1, Ordering::SeqCst);
}

/// The doorbell's lock is the transaction's, not each emit's: a transaction
/// that emitted thousands of events once ran out of PostgreSQL's lock table
/// (`53200 out of shared memory`, at the 12,855th emit of 30,000 with the
/// default `max_locks_per_transaction`), each emit holding a lock of its
/// own until `COMMIT`.
#[tokio::test]
async fn a_transaction_holds_one_doorbell_lock_however_many_events_it_emits() {
    let Some((pool, outbox)) = outbox("one_lock").await else {
        return;
    };
    let (relay, running) = listening_relay(&outbox).await;

    let mut tx = pool.begin().await.unwrap();
    for n in 0..EVENTS {
        outbox.emit(&mut tx, Batched { n }).await.unwrap();
    }
    let locks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        locks, 1,
        "advisory locks held by a transaction that emitted {EVENTS} events"
    );
    let committed = Instant::now();
    tx.commit().await.unwrap();
    until(Duration::from_secs(5), "the committed events", async || {
        BATCHED.load(Ordering::SeqCst) == EVENTS
    })
    .await;
    let woke_in = committed.elapsed();
    assert!(
        woke_in < Duration::from_secs(2),
        "woken by the doorbell, not the poll: {woke_in:?}"
    );
    stop(&relay, running).await;
    cleanup(&pool, &outbox).await;
}

// --- Savepoints: an emit never waits for the doorbell.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Retried {
    n: u64,
}

#[on(Retried, linker = OutboxTests)]
fn retried(_: &Retried) {}

/// Found by a review: with the transaction's id as the doorbell's token, a
/// `ROLLBACK TO SAVEPOINT` freed the token while the transaction went on,
/// the doorbell (locking its batch's tokens in turn) took it and held it
/// while it waited on another open transaction, and the next emit waited
/// behind the doorbell. When that other transaction waited on the emitting
/// one (a row both update), PostgreSQL saw a cycle and aborted it: `deadlock
/// detected`, in 4 runs of 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emits_in_rolled_back_savepoints_never_wait_for_the_doorbell() {
    let Some((pool, outbox)) = outbox("savepoints").await else {
        return;
    };
    let (relay, running) = listening_relay(&outbox).await;
    let table = format!("{}.accounts", outbox.schema());
    sqlx::raw_sql(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, n int); INSERT INTO {table} VALUES (1, 0)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let update = format!("UPDATE {table} SET n = n + 1 WHERE id = 1");
    for trial in 0..3 {
        // A updates the row first: its id, so its token, sorts before L's.
        let mut a = pool.begin().await.unwrap();
        sqlx::query(&update).execute(&mut *a).await.unwrap();
        // L emits (the doorbell waits on it), then waits for A's row.
        let (pool_l, outbox_l, update_l) = (pool.clone(), outbox.clone(), update.clone());
        let l = tokio::spawn(async move {
            let mut l = pool_l.begin().await.unwrap();
            outbox_l.emit(&mut l, Retried { n: 1 }).await.unwrap();
            sqlx::query(&update_l).execute(&mut *l).await?;
            l.commit().await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A emits in savepoints it rolls back, as a retry loop does, past
        // L's deadlock check (`deadlock_timeout`, 1 s).
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1_300) {
            sqlx::query("SAVEPOINT s").execute(&mut *a).await.unwrap();
            outbox.emit(&mut a, Retried { n: 2 }).await.unwrap();
            sqlx::query("ROLLBACK TO SAVEPOINT s")
                .execute(&mut *a)
                .await
                .unwrap();
        }
        a.commit().await.unwrap();
        let l = tokio::time::timeout(Duration::from_secs(5), l)
            .await
            .expect("L ends once A commits")
            .unwrap();
        assert!(l.is_ok(), "trial {trial}: L was aborted: {l:?}");
    }
    stop(&relay, running).await;
    cleanup(&pool, &outbox).await;
}

/// The user's own rules on the outbox table (an audit copy of each row)
/// keep working with the doorbell on: a statement with an `INSERT` in a
/// `WITH` is refused on a table with `DO ALSO` rules, which an emit's
/// statement once was (found by a review).
#[tokio::test]
async fn an_audit_rule_on_the_outbox_table_leaves_emits_working() {
    let Some((pool, outbox)) = outbox("audit_rule").await else {
        return;
    };
    let s = outbox.schema();
    sqlx::raw_sql(&format!(
        "CREATE TABLE {s}.audit (id uuid, event text);
         CREATE RULE audit AS ON INSERT TO {s}.outbox
             DO ALSO INSERT INTO {s}.audit VALUES (NEW.id, NEW.event)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let id = outbox.emit(&mut tx, Retried { n: 3 }).await.unwrap();
    outbox
        .keyed("k")
        .emit(&mut tx, Retried { n: 4 })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let audited: Vec<uuid::Uuid> =
        sqlx::query_scalar(&format!("SELECT id FROM {s}.audit ORDER BY id"))
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!((audited.len(), audited[0]), (2, id));
    cleanup(&pool, &outbox).await;
}

/// Rules that put the rows elsewhere (`DO INSTEAD`, a partitioning by
/// hand, say) leave emits working: PostgreSQL refuses `RETURNING` on such a
/// table, which an emit's statement once had (found by a review).
#[tokio::test]
async fn a_rule_putting_rows_elsewhere_leaves_emits_working() {
    let Some((pool, outbox)) = outbox("instead_rule").await else {
        return;
    };
    let s = outbox.schema();
    sqlx::raw_sql(&format!(
        "CREATE TABLE {s}.elsewhere (LIKE {s}.outbox);
         CREATE RULE reroute AS ON INSERT TO {s}.outbox
             DO INSTEAD INSERT INTO {s}.elsewhere SELECT NEW.*"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    outbox.emit(&mut tx, Retried { n: 5 }).await.unwrap();
    outbox
        .keyed("k")
        .emit(&mut tx, Retried { n: 6 })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let moved: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {s}.elsewhere"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(moved, 2);
    cleanup(&pool, &outbox).await;
}

// --- Named events and named keys.

pyventus::named_key!(static CREDITED: NamedKey<u64> = "Credited");

static GREETED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static CREDITS: AtomicU64 = AtomicU64::new(0);

#[on("Greet", linker = OutboxTests)]
#[expect(
    clippy::ptr_arg,
    reason = "a named event's handler takes its payload's type"
)]
fn greet(name: &String) {
    GREETED.lock().unwrap().push(name.clone());
}

#[on("Credited", linker = OutboxTests)]
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "a named event's handler takes its payload by reference"
)]
fn credit(amount: &u64) {
    CREDITS.fetch_add(*amount, Ordering::SeqCst);
}

#[tokio::test]
async fn named_events_and_named_keys_reach_their_handlers_with_their_payloads() {
    let Some((pool, outbox)) = outbox("named").await else {
        return;
    };
    let relay = relay(&outbox)
        .linker(OutboxTests::linker())
        .named::<String>("Greet")
        .named_key(&CREDITED)
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    let mut tx = pool.begin().await.unwrap();
    outbox
        .emit_named(&mut tx, "Greet", "Pyventus".to_owned())
        .await
        .unwrap();
    outbox.emit_to(&mut tx, &CREDITED, 250).await.unwrap();
    outbox
        .keyed("account-1")
        .emit_to(&mut tx, &CREDITED, 50)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    until(Duration::from_secs(10), "both named events", async || {
        CREDITS.load(Ordering::SeqCst) == 300 && !GREETED.lock().unwrap().is_empty()
    })
    .await;
    stop(&relay, running).await;
    assert_eq!(*GREETED.lock().unwrap(), ["Pyventus"]);

    let mut conn = pool.acquire().await.unwrap();
    for bad in ["", "..."] {
        let err = outbox.emit_named(&mut conn, bad, 1).await.unwrap_err();
        assert!(matches!(err, Error::InvalidEventName(_)), "{err}");
    }
    cleanup(&pool, &outbox).await;
}

// --- The schema's version.

#[tokio::test]
async fn a_missing_or_newer_schema_is_a_clear_error_at_startup() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let pool = common::postgres::pool(&url, 2).await;
    let schema = common::postgres::fresh_schema("version");
    let builder = || Outbox::builder().schema(schema.clone());
    let err = builder().connect(&pool).await.unwrap_err();
    assert!(matches!(err, Error::SchemaMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("migrate"),
        "says what to do: {err}"
    );

    let outbox = builder().build(&pool).unwrap();
    assert_eq!(
        outbox.migrate().await.unwrap(),
        pyventus::postgres::SCHEMA_VERSION
    );
    assert_eq!(
        outbox.migrate().await.unwrap(),
        pyventus::postgres::SCHEMA_VERSION,
        "idempotent"
    );
    builder().connect(&pool).await.unwrap();

    sqlx::query(&format!(
        "INSERT INTO {schema}.schema_version (version) VALUES (99)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let err = builder().connect(&pool).await.unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    let relay = pyventus::postgres::Relay::builder(&outbox).build().unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), relay.run())
        .await
        .expect("refused at once")
        .unwrap_err();
    assert!(matches!(err, Error::SchemaTooNew { .. }), "{err}");
    cleanup(&pool, &outbox).await;
}

// --- Retention.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Archived {
    n: u64,
}

static ARCHIVED: AtomicU64 = AtomicU64::new(0);

#[on(Archived, linker = OutboxTests)]
fn archived(_: &Archived) {
    ARCHIVED.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn an_archiving_relay_keeps_delivered_events_until_they_are_purged() {
    let Some((pool, outbox)) = outbox("archive").await else {
        return;
    };
    let mut tx = pool.begin().await.unwrap();
    for n in 0..5 {
        outbox.emit(&mut tx, Archived { n }).await.unwrap();
    }
    tx.commit().await.unwrap();
    let (waiting, _) = outbox.backlog().await.unwrap();
    assert_eq!(waiting, 5);

    let relay = relay(&outbox)
        .linker(OutboxTests::linker())
        .archive(true)
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    until(
        Duration::from_secs(10),
        "every event archived",
        async || relay.stats().delivered == 5,
    )
    .await;
    stop(&relay, running).await;
    assert_eq!(ARCHIVED.load(Ordering::SeqCst), 5);
    let archived: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.delivered",
        outbox.schema()
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(archived, 5);
    assert_eq!(outbox.backlog().await.unwrap().0, 0);
    assert_eq!(
        outbox
            .purge_older_than(Duration::from_hours(1))
            .await
            .unwrap(),
        0,
        "none that old"
    );
    assert_eq!(outbox.purge_older_than(Duration::ZERO).await.unwrap(), 5);
    cleanup(&pool, &outbox).await;
}
