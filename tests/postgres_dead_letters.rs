//! Retries and dead letters: a handler that fails twice then succeeds runs
//! three times and its sibling once; one that always fails is dead-lettered
//! with its error after `max_attempts` and replays from the API; bad input
//! (a payload that no longer decodes, an unknown event, a row edited by hand)
//! is dead-lettered with a readable reason while the relay keeps going.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::postgres::{cleanup, outbox, outbox_rows, relay, spawn_run, stop};
use common::until;
use pyventus::postgres::current_delivery;
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};

#[derive(Linker)]
struct RetryTests;

/// Handler name -> runs.
static RUNS: Mutex<Option<HashMap<&'static str, u32>>> = Mutex::new(None);

fn ran(handler: &'static str) -> u32 {
    let mut runs = RUNS.lock().unwrap();
    let n = runs
        .get_or_insert_with(HashMap::new)
        .entry(handler)
        .or_default();
    *n += 1;
    *n
}

fn runs(handler: &str) -> u32 {
    RUNS.lock()
        .unwrap()
        .as_ref()
        .and_then(|runs| runs.get(handler).copied())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Charge {
    cents: u64,
}

#[on(Charge, linker = RetryTests)]
async fn flaky_gateway(_: Charge) -> anyhow::Result<()> {
    tokio::task::yield_now().await;
    let attempt = current_delivery().unwrap().attempt;
    let n = ran("flaky_gateway");
    assert_eq!(n, attempt, "runs once per attempt");
    if n <= 2 {
        anyhow::bail!("gateway timeout (attempt {n})");
    }
    Ok(())
}

#[on(Charge, linker = RetryTests)]
fn charge_audit(_: &Charge) {
    ran("charge_audit");
}

#[tokio::test]
async fn a_handler_failing_twice_then_succeeding_runs_three_times_and_its_sibling_once() {
    let Some((pool, outbox)) = outbox("flaky").await else {
        return;
    };
    let relay = relay(&outbox)
        .linker(RetryTests::linker())
        .max_attempts(5)
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    let mut tx = pool.begin().await.unwrap();
    outbox.emit(&mut tx, Charge { cents: 100 }).await.unwrap();
    tx.commit().await.unwrap();
    until(Duration::from_secs(10), "the third attempt", async || {
        relay.stats().delivered == 1
    })
    .await;
    stop(&relay, running).await;
    assert_eq!(runs("flaky_gateway"), 3);
    assert_eq!(
        runs("charge_audit"),
        1,
        "a handler that succeeded never runs again"
    );
    assert_eq!(relay.stats().retried, 2);
    assert_eq!(outbox_rows(&pool, &outbox).await, 0);
    cleanup(&pool, &outbox).await;
}

// --- Dead letters, and their replay.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Refund {
    cents: u64,
}

static BANK_BACK: AtomicBool = AtomicBool::new(false);

#[on(Refund, linker = RetryTests)]
fn refund_bank(_: &Refund) -> anyhow::Result<()> {
    ran("refund_bank");
    if BANK_BACK.load(Ordering::SeqCst) {
        Ok(())
    } else {
        anyhow::bail!("card declined")
    }
}

#[on(Refund, linker = RetryTests)]
fn refund_email(_: &Refund) {
    ran("refund_email");
}

#[tokio::test]
async fn a_handler_that_always_fails_is_dead_lettered_after_max_attempts_with_its_error_and_replays()
 {
    let Some((pool, outbox)) = outbox("doomed").await else {
        return;
    };
    let relay = relay(&outbox)
        .linker(RetryTests::linker())
        .max_attempts(3)
        .build()
        .unwrap();
    let running = spawn_run(&relay);
    let mut tx = pool.begin().await.unwrap();
    let id = outbox.emit(&mut tx, Refund { cents: 5 }).await.unwrap();
    tx.commit().await.unwrap();
    let dead = outbox.dead_letters();
    until(Duration::from_secs(10), "the dead letter", async || {
        dead.count().await.unwrap() == 1
    })
    .await;
    let letter = dead.list(10).await.unwrap().remove(0);
    assert_eq!(letter.event_id, id);
    assert_eq!(letter.event, "Refund");
    assert_eq!(letter.kind, "failed");
    assert_eq!(letter.attempts, 3);
    assert!(letter.reason.contains("card declined"), "{}", letter.reason);
    assert_eq!(letter.failed, ["postgres_dead_letters::refund_bank"]);
    assert_eq!(letter.done, ["postgres_dead_letters::refund_email"]);
    assert_eq!(runs("refund_bank"), 3);
    assert_eq!(runs("refund_email"), 1);

    // The bank is back: replay. Only the handler that had not succeeded runs.
    BANK_BACK.store(true, Ordering::SeqCst);
    assert_eq!(dead.replay(&[letter.seq]).await.unwrap(), 1);
    until(Duration::from_secs(10), "the replayed event", async || {
        relay.stats().delivered == 1
    })
    .await;
    stop(&relay, running).await;
    assert_eq!(runs("refund_bank"), 4);
    assert_eq!(runs("refund_email"), 1, "not run again on replay");
    assert_eq!(dead.count().await.unwrap(), 0);
    assert_eq!(outbox_rows(&pool, &outbox).await, 0);
    cleanup(&pool, &outbox).await;
}

// --- Bad input.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Invoice {
    number: u64,
}

static INVOICES: AtomicU32 = AtomicU32::new(0);

#[on(Invoice, linker = RetryTests)]
fn file_invoice(_: &Invoice) {
    INVOICES.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn bad_input_is_dead_lettered_with_a_readable_reason_while_the_relay_keeps_going() {
    let Some((pool, outbox)) = outbox("bad_input").await else {
        return;
    };
    let schema = outbox.schema().to_owned();
    let relay = relay(&outbox)
        .linker(RetryTests::linker())
        .max_attempts(2)
        .build()
        .unwrap();
    let running = spawn_run(&relay);

    let mut tx = pool.begin().await.unwrap();
    // Schema drift: the payload no longer matches the type.
    sqlx::query(&format!(
        "INSERT INTO {schema}.outbox (id, event, payload) VALUES (gen_random_uuid(), 'Invoice', '{{\"num\": \"seven\"}}')"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    // An event no process knows.
    sqlx::query(&format!(
        "INSERT INTO {schema}.outbox (id, event, payload) VALUES (gen_random_uuid(), 'NoSuchEvent', '{{}}')"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    // A row emitted properly, then edited by hand.
    let edited = outbox.emit(&mut tx, Invoice { number: 1 }).await.unwrap();
    sqlx::query(&format!(
        "UPDATE {schema}.outbox SET payload = '[\"edited\"]' WHERE id = $1"
    ))
    .bind(edited)
    .execute(&mut *tx)
    .await
    .unwrap();
    // And a good one after them.
    outbox.emit(&mut tx, Invoice { number: 2 }).await.unwrap();
    tx.commit().await.unwrap();

    let dead = outbox.dead_letters();
    until(
        Duration::from_secs(10),
        "three dead letters and the good event",
        async || dead.count().await.unwrap() == 3 && INVOICES.load(Ordering::SeqCst) == 1,
    )
    .await;
    stop(&relay, running).await;
    let letters = dead.list(10).await.unwrap();
    let kinds: Vec<(&str, &str)> = letters
        .iter()
        .map(|l| (l.event.as_str(), l.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Invoice", "malformed"),
            ("NoSuchEvent", "unknown_event"),
            ("Invoice", "malformed")
        ]
    );
    assert!(
        letters[0].reason.contains("missing field `number`"),
        "{}",
        letters[0].reason
    );
    assert!(
        letters[1].reason.contains("unknown event `NoSuchEvent`"),
        "{}",
        letters[1].reason
    );
    assert!(
        letters[2].reason.contains("malformed payload"),
        "{}",
        letters[2].reason
    );
    assert_eq!(letters[2].event_id, edited);
    assert_eq!(
        INVOICES.load(Ordering::SeqCst),
        1,
        "the good event was delivered"
    );

    assert_eq!(dead.purge(&[letters[1].seq]).await.unwrap(), 1);
    assert_eq!(dead.purge_all().await.unwrap(), 2);
    cleanup(&pool, &outbox).await;
}
