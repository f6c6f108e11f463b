//! The PostgreSQL outbox beside hand-written sqlx floors, run by
//! `benches/postgres/run.sh`, every ratio from one run:
//!
//! 1. emit inside a transaction (insert an order, emit its event, commit)
//!    against the same transaction without the event, at 1 and 8
//!    connections; beside the floors of a hand-written outbox row, and of
//!    that row plus `pg_notify` in the same transaction;
//! 2. relay throughput end to end against a hand-written loop that claims
//!    with `FOR UPDATE SKIP LOCKED` under a lease, then deletes;
//! 3. wake-up latency, from `COMMIT` returning to the handler running;
//! 4. statements per second of an idle relay.
//!
//! Measures only when given `--measure` (a plain `cargo bench` skips it).
//! Works in schemas of its own (`bench_*`), dropped at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyventus::postgres::{Outbox, Relay};
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct OrderPlaced {
    id: i64,
}

#[derive(Linker)]
struct Bench;

static HANDLED: AtomicU64 = AtomicU64::new(0);
static WOKEN: Mutex<Option<Instant>> = Mutex::new(None);

#[on(OrderPlaced, linker = Bench)]
fn count(_: &OrderPlaced) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
    let mut woken = WOKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if woken.is_none() {
        *woken = Some(Instant::now());
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Each case runs this long per round, in `ROUNDS` rounds.
const MILLIS_PER_CASE: u64 = 600;
const ROUNDS: u32 = 5;
const CASES: [Case; 5] = [
    Case::Plain,
    Case::FloorRow,
    Case::FloorNotify,
    Case::Emit,
    Case::EmitQuiet,
];
const RELAYED: i64 = 10_000;

#[tokio::main]
#[expect(clippy::too_many_lines, reason = "the four parts, one after the other")]
async fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--measure") {
        return Ok(());
    }
    let statements = Statements::install();
    let url = pyventus::postgres::url_from_env();
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect(&url)
        .await?;
    let schema = format!("bench_{}", std::process::id());
    let outbox = Outbox::builder().schema(&schema).build(&pool)?;
    let quiet = Outbox::builder()
        .schema(&schema)
        .doorbell(false)
        .build(&pool)?;
    outbox.migrate().await?;
    sqlx::raw_sql(&format!(
        "CREATE TABLE {schema}.orders (id bigserial PRIMARY KEY, email text NOT NULL);
         CREATE TABLE {schema}.floor (
             seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id uuid NOT NULL,
             event text NOT NULL, payload jsonb NOT NULL,
             due_at timestamptz NOT NULL DEFAULT '-infinity', lease_owner text);"
    ))
    .execute(&pool)
    .await?;

    // `-- --measure --only=relay` (or emit, wake, idle) runs one part.
    let only = std::env::args().find_map(|a| a.strip_prefix("--only=").map(str::to_owned));
    let part = |name: &str| only.as_deref().is_none_or(|only| only == name);
    if part("emit") {
        println!(
            "## emit inside a transaction ({ROUNDS} rounds of {MILLIS_PER_CASE} ms a case, in turn)\n"
        );
        println!(
            "| connections | plain transaction | + hand-written outbox row | + row and `pg_notify` | + `outbox.emit` | + `outbox.emit`, no doorbell |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
        for connections in [1, 8] {
            // Rounds of every case in turn, summed: drift (other load, the
            // disk's flushes) falls on every case alike.
            let mut done = [0_u64; 5];
            let mut spent = [Duration::ZERO; 5];
            for _ in 0..ROUNDS {
                for (i, case) in CASES.into_iter().enumerate() {
                    let which = match case {
                        Case::EmitQuiet => &quiet,
                        _ => &outbox,
                    };
                    let (n, time) = emit_rate(&pool, which, &schema, case, connections).await?;
                    done[i] += n;
                    spent[i] += time;
                }
            }
            #[expect(clippy::cast_precision_loss, reason = "a rate")]
            let rates: Vec<f64> = done
                .iter()
                .zip(spent)
                .map(|(n, time)| *n as f64 / time.as_secs_f64())
                .collect();
            let plain = rates[0];
            let cells: Vec<String> = rates
                .iter()
                .map(|rate| format!("{rate:.0} /s ({:.2}×)", rate / plain))
                .collect();
            println!("| {connections} | {} |", cells.join(" | "));
        }
    }

    if part("relay") {
        println!("\n## relay throughput, {RELAYED} events\n");
        println!(
            "| round | hand-written: claim 64 with a lease (`FOR UPDATE SKIP LOCKED`), then delete, 4 loops | pyventus relay: claim, decode, run the handler, delete (256 in flight, claims of 64) | relay's time / floor's |"
        );
        println!("| ---: | ---: | ---: | ---: |");
        let mut ratios = Vec::new();
        for round in 1..=3 {
            sqlx::query(&format!("TRUNCATE {schema}.outbox, {schema}.floor"))
                .execute(&pool)
                .await?;
            let floor = floor_throughput(&pool, &schema).await?;
            let ours = relay_throughput(&pool, &quiet, &schema).await?;
            ratios.push(floor / ours);
            println!(
                "| {round} | {floor:.0} /s | {ours:.0} /s | {:.2}× |",
                floor / ours
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "\nmedian: the relay takes {:.2}× the floor's time",
            ratios[1]
        );
    }

    if part("wake") {
        println!("\n## wake-up latency, commit to handler\n");
        let (p50, p90, p99) = wake_up(&pool, &outbox).await?;
        println!("| p50 | p90 | p99 |");
        println!("| ---: | ---: | ---: |");
        println!("| {p50:.1} ms | {p90:.1} ms | {p99:.1} ms |");
    }

    if part("idle") {
        println!("\n## an idle relay\n");
        let per_second = idle(&outbox, &statements).await?;
        println!("{per_second:.2} statements per second over 10 s (default poll interval, 1 s)");
    }

    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Plain,
    FloorRow,
    FloorNotify,
    Emit,
    EmitQuiet,
}

/// Transactions done, and the time taken: insert an order, and the case's
/// event, commit.
async fn emit_rate(
    pool: &PgPool,
    outbox: &Outbox,
    schema: &str,
    case: Case,
    connections: usize,
) -> Result<(u64, Duration)> {
    let until = Instant::now() + Duration::from_millis(MILLIS_PER_CASE);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (pool, outbox, schema) = (pool.clone(), outbox.clone(), schema.to_owned());
        tasks.push(tokio::spawn(async move {
            let insert_order = format!("INSERT INTO {schema}.orders (email) VALUES ($1) RETURNING id");
            let insert_floor = format!(
                "INSERT INTO {schema}.floor (id, event, payload) VALUES ($1, 'OrderPlaced', $2::jsonb)"
            );
            let mut done = 0_u64;
            while Instant::now() < until {
                let mut tx = pool.begin().await?;
                let id: i64 = sqlx::query_scalar(&insert_order)
                    .bind("ada@example.com")
                    .fetch_one(&mut *tx)
                    .await?;
                match case {
                    Case::Plain => {}
                    Case::FloorRow | Case::FloorNotify => {
                        sqlx::query(&insert_floor)
                            .bind(uuid::Uuid::now_v7())
                            .bind(format!("{{\"id\":{id}}}"))
                            .execute(&mut *tx)
                            .await?;
                        if case == Case::FloorNotify {
                            sqlx::query("SELECT pg_notify('bench_floor', '')")
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    Case::Emit | Case::EmitQuiet => {
                        outbox.emit(&mut tx, OrderPlaced { id }).await?;
                    }
                }
                tx.commit().await?;
                done += 1;
            }
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?.map_err(|e| e.to_string())?;
    }
    Ok((total, started.elapsed()))
}

/// The floor relay: `loops` tasks, each claiming 64 rows with a lease, then
/// deleting them; returns rows per second.
async fn floor_throughput(pool: &PgPool, schema: &str) -> Result<f64> {
    sqlx::query(&format!(
        "INSERT INTO {schema}.floor (id, event, payload)
         SELECT gen_random_uuid(), 'OrderPlaced', jsonb_build_object('id', n) FROM generate_series(1, $1) n"
    ))
    .bind(RELAYED)
    .execute(pool)
    .await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (pool, schema) = (pool.clone(), schema.to_owned());
        tasks.push(tokio::spawn(async move {
            let claim = format!(
                "WITH c AS (SELECT seq FROM {schema}.floor WHERE due_at <= now()
                            ORDER BY seq LIMIT 64 FOR UPDATE SKIP LOCKED)
                 UPDATE {schema}.floor f SET due_at = now() + interval '30 s', lease_owner = $1
                 FROM c WHERE f.seq = c.seq RETURNING f.seq, f.payload::text"
            );
            let delete =
                format!("DELETE FROM {schema}.floor WHERE seq = ANY($1) AND lease_owner = $2");
            let owner = format!("floor-{worker}");
            loop {
                let rows: Vec<(i64, String)> =
                    sqlx::query_as(&claim).bind(&owner).fetch_all(&pool).await?;
                if rows.is_empty() {
                    return Ok::<(), sqlx::Error>(());
                }
                let seqs: Vec<i64> = rows.iter().map(|(seq, _)| *seq).collect();
                sqlx::query(&delete)
                    .bind(&seqs)
                    .bind(&owner)
                    .execute(&pool)
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    Ok(RELAYED as f64 / started.elapsed().as_secs_f64())
}

/// The relay draining `RELAYED` events; returns events per second.
async fn relay_throughput(pool: &PgPool, outbox: &Outbox, schema: &str) -> Result<f64> {
    sqlx::query(&format!(
        "INSERT INTO {schema}.outbox (id, event, payload)
         SELECT gen_random_uuid(), 'OrderPlaced', jsonb_build_object('id', n) FROM generate_series(1, $1) n"
    ))
    .bind(RELAYED)
    .execute(pool)
    .await?;
    let goal = HANDLED.load(Ordering::Relaxed) + RELAYED.unsigned_abs();
    let relay = Relay::builder(outbox)
        .linker(Bench::linker())
        .concurrency(256)
        .batch_size(64)
        .sync_handlers_inline(true)
        .build()?;
    let started = Instant::now();
    let running = tokio::spawn({
        let relay = relay.clone();
        async move { relay.run().await }
    });
    while relay.stats().delivered < RELAYED.unsigned_abs() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    assert!(HANDLED.load(Ordering::Relaxed) >= goal);
    relay.shutdown();
    running.await??;
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    Ok(RELAYED as f64 / elapsed.as_secs_f64())
}

/// Milliseconds from `COMMIT` returning to the handler running: p50, p90, p99
/// of 200 commits, 20 to 50 ms apart, to an idle relay.
async fn wake_up(pool: &PgPool, outbox: &Outbox) -> Result<(f64, f64, f64)> {
    let relay = Relay::builder(outbox)
        .linker(Bench::linker())
        .sync_handlers_inline(true)
        .build()?;
    let running = tokio::spawn({
        let relay = relay.clone();
        async move { relay.run().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::new();
    for id in 0..200 {
        *WOKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let mut tx = pool.begin().await?;
        outbox.emit(&mut tx, OrderPlaced { id }).await?;
        tx.commit().await?;
        let committed = Instant::now();
        let woken = loop {
            if let Some(at) = *WOKEN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                break at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples.push(woken.saturating_duration_since(committed).as_secs_f64() * 1_000.0);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..50))).await;
    }
    relay.shutdown();
    running.await??;
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index"
        )]
        samples[((samples.len() as f64 - 1.0) * q) as usize]
    };
    Ok((at(0.5), at(0.9), at(0.99)))
}

/// Statements an idle relay sends per second, counted from sqlx's own log of
/// each statement.
async fn idle(outbox: &Outbox, statements: &Statements) -> Result<f64> {
    let relay = Relay::builder(outbox).linker(Bench::linker()).build()?;
    let running = tokio::spawn({
        let relay = relay.clone();
        async move { relay.run().await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await; // started, caught up
    let before = statements.count();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let sent = statements.count() - before;
    relay.shutdown();
    running.await??;
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    Ok(sent as f64 / 10.0)
}

/// Counts the statements sqlx sends (its `sqlx::query` log events).
#[derive(Clone, Default)]
struct Statements(Arc<AtomicU64>);

impl Statements {
    fn install() -> Statements {
        use tracing_subscriber::layer::SubscriberExt;
        let statements = Statements::default();
        let subscriber = tracing_subscriber::registry().with(statements.clone());
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        statements
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Statements {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.target() == "sqlx::query" {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}
