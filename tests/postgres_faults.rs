//! The relay under faults, on a private PostgreSQL (`initdb`/`pg_ctl`, never
//! the shared server): killed with `kill -9` three times and PostgreSQL
//! restarted once while it delivers 10,000 events; nothing is lost, delivery
//! resumes within seconds of the server coming back, and the only handlers
//! that run twice are those of events in flight at a kill.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::postgres::{PrivatePostgres, pool};
use common::until;
use pyventus::postgres::{Outbox, Relay, current_delivery};
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};

#[derive(Linker)]
struct FaultTests;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Booked {
    n: u64,
}

/// The child's run log: one line per handler run, `<event id> <handler>`.
static LOG: Mutex<Option<std::fs::File>> = Mutex::new(None);

fn log_run(handler: &str) {
    let id = current_delivery().unwrap().event_id;
    let mut log = LOG.lock().unwrap();
    // One write per line, to a file opened for appending: whole lines, even
    // when the process is killed.
    log.as_mut()
        .unwrap()
        .write_all(format!("{id} {handler}\n").as_bytes())
        .unwrap();
}

#[on(Booked, linker = FaultTests)]
fn book_seat(_: &Booked) {
    log_run("book_seat");
}

#[on(Booked, linker = FaultTests)]
async fn send_ticket(_: Booked) {
    tokio::task::yield_now().await;
    log_run("send_ticket");
}

const CONCURRENCY: usize = 32;

/// The relay process the fault test starts, kills and starts again (it does
/// nothing when run on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_child_process() {
    let (Ok(url), Ok(log)) = (
        std::env::var("PYVENTUS_TEST_RELAY_URL"),
        std::env::var("PYVENTUS_TEST_RELAY_LOG"),
    ) else {
        return;
    };
    *LOG.lock().unwrap() = Some(
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .unwrap(),
    );
    let pool = pool(&url, 8).await;
    let outbox = Outbox::builder().build(&pool).unwrap();
    let relay = Relay::builder(&outbox)
        .linker(FaultTests::linker())
        .concurrency(CONCURRENCY)
        .lease(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(200))
        .give_up_after(Duration::from_mins(1))
        .build()
        .unwrap();
    relay.run().await.unwrap();
}

/// A relay child, killed when dropped.
struct RelayProcess(Child);

impl RelayProcess {
    fn start(url: &str, log: &PathBuf) -> RelayProcess {
        RelayProcess(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "relay_child_process", "--nocapture", "--quiet"])
                .env("PYVENTUS_TEST_RELAY_URL", url)
                .env("PYVENTUS_TEST_RELAY_LOG", log)
                .spawn()
                .unwrap(),
        )
    }

    /// `kill -9`.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

const N: i64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
async fn the_relay_killed_three_times_and_postgres_restarted_once_loses_nothing_and_reruns_only_what_was_in_flight()
 {
    let Some(server) = PrivatePostgres::start() else {
        return;
    };
    let url = server.url();
    let log = std::env::temp_dir().join(format!(
        "pyventus-relay-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let pool = pool(&url, 4).await;
    let outbox = Outbox::builder().build(&pool).unwrap();
    outbox.migrate().await.unwrap();

    for chunk in 0..N / 200 {
        let mut tx = pool.begin().await.unwrap();
        for i in 0..200 {
            #[expect(clippy::cast_sign_loss, reason = "positive")]
            let n = (chunk * 200 + i) as u64;
            outbox.emit(&mut tx, Booked { n }).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    drop(pool);

    let delivered = async |url: &str| -> Option<i64> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(500))
            .connect(url)
            .await
            .ok()?;
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pyventus.outbox")
            .fetch_one(&pool)
            .await
            .ok()?;
        pool.close().await;
        Some(N - left)
    };
    let started = Instant::now();
    let mut relay = RelayProcess::start(&url, &log);
    for (kill, at) in [1_500, 3_500, 5_500].into_iter().enumerate() {
        until(
            Duration::from_mins(1),
            &format!("{at} delivered"),
            async || delivered(&url).await.is_some_and(|d| d >= at),
        )
        .await;
        relay.kill();
        eprintln!("kill -9 #{} at {:?}", kill + 1, started.elapsed());
        relay = RelayProcess::start(&url, &log);
    }

    until(Duration::from_mins(1), "7,500 delivered", async || {
        delivered(&url).await.is_some_and(|d| d >= 7_500)
    })
    .await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.start_again();
    let back = Instant::now();
    let before = delivered(&url).await.unwrap();
    until(Duration::from_secs(10), "delivery to resume", async || {
        delivered(&url).await.is_some_and(|d| d > before)
    })
    .await;
    let resumed = back.elapsed();
    eprintln!(
        "PostgreSQL restarted at {:?}; delivery resumed {resumed:?} after it was back",
        back - started
    );
    assert!(
        resumed < Duration::from_secs(5),
        "resumed within 5 s: {resumed:?}"
    );

    until(
        Duration::from_mins(1),
        "every event delivered",
        async || delivered(&url).await == Some(N),
    )
    .await;
    let total = started.elapsed();
    relay.kill();

    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let mut runs: HashMap<(&str, &str), u32> = HashMap::new();
    for line in text.lines() {
        let (id, handler) = line.split_once(' ').expect("whole lines");
        *runs.entry((id, handler)).or_default() += 1;
    }
    let events: std::collections::HashSet<&str> = runs.keys().map(|(id, _)| *id).collect();
    assert_eq!(
        events.len(),
        usize::try_from(N).unwrap(),
        "every event's handlers ran: nothing lost"
    );
    assert_eq!(
        runs.len(),
        2 * usize::try_from(N).unwrap(),
        "both handlers of every event"
    );
    let repeated: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "10,000 events, 3 kills and a restart in {total:?}; {} handler runs repeated (events in flight at a kill)",
        repeated.len()
    );
    // Only what was in flight at one of the three kills can run again: at
    // most the relay's concurrency, for each handler, at each kill.
    assert!(
        repeated.len() <= 3 * CONCURRENCY * 2,
        "{} repeated runs: more than the events in flight at the kills",
        repeated.len()
    );
}
