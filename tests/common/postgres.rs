//! Helpers of the PostgreSQL tests: the shared server (a schema of its own per
//! test), private servers started with `initdb`/`pg_ctl` for the tests that
//! kill or restart one, relays on tasks, waiting.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use pyventus::postgres::{Outbox, Relay, RelayBuilder};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

fn required() -> bool {
    std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// The shared PostgreSQL to test against, or `None` (and why) when it is not
/// reachable and not required.
pub async fn postgres_url() -> Option<String> {
    let url = pyventus::postgres::url_from_env();
    let reachable = async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .ok()?;
        sqlx::query("SELECT 1").execute(&pool).await.ok()
    };
    match tokio::time::timeout(Duration::from_secs(3), reachable).await {
        Ok(Some(_)) => Some(url),
        _ if required() => panic!(
            "PostgreSQL is required (PYVENTUS_REQUIRE_SERVICES=1) but not reachable at {url}; set PYVENTUS_POSTGRES_URL"
        ),
        _ => {
            super::skip(&format!(
                "no PostgreSQL reachable at {url} (set PYVENTUS_POSTGRES_URL to run this test)"
            ));
            None
        }
    }
}

/// A schema name no other test uses.
pub fn fresh_schema(name: &str) -> String {
    format!(
        "t_{name}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A pool on `url` with room for a relay and the test's own transactions.
pub async fn pool(url: &str, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .unwrap()
}

/// A migrated outbox in a fresh schema of the shared server, with its pool;
/// `None` when PostgreSQL is not reachable (and not required).
pub async fn outbox(name: &str) -> Option<(PgPool, Outbox)> {
    let url = postgres_url().await?;
    let pool = pool(&url, 20).await;
    let outbox = Outbox::builder()
        .schema(fresh_schema(name))
        .build(&pool)
        .unwrap();
    outbox.migrate().await.unwrap();
    Some((pool, outbox))
}

/// Drops a test's schema.
pub async fn cleanup(pool: &PgPool, outbox: &Outbox) {
    sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", outbox.schema()))
        .execute(pool)
        .await
        .unwrap();
}

/// A relay builder with the quick settings tests want.
pub fn relay(outbox: &Outbox) -> RelayBuilder {
    Relay::builder(outbox)
        .poll_interval(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .shutdown_deadline(Duration::from_secs(2))
}

/// Runs `relay` on a task of its own.
pub fn spawn_run(relay: &Relay) -> tokio::task::JoinHandle<Result<(), pyventus::postgres::Error>> {
    let relay = relay.clone();
    tokio::spawn(async move { relay.run().await })
}

/// Stops a relay and waits for its run, failing after a few seconds.
pub async fn stop(
    relay: &Relay,
    running: tokio::task::JoinHandle<Result<(), pyventus::postgres::Error>>,
) {
    relay.shutdown();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the relay stops within seconds")
        .unwrap()
        .unwrap();
}

/// How many rows the outbox holds.
pub async fn outbox_rows(pool: &PgPool, outbox: &Outbox) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {}.outbox", outbox.schema()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A PostgreSQL server of the test's own (`initdb` in a temporary directory,
/// on a free port), for tests that kill or restart it: never the shared one.
/// Stopped, and its directory removed, when dropped.
pub struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts one; `None` (after saying why) if `initdb` is not
    /// installed and not required.
    pub fn start() -> Option<PrivatePostgres> {
        if Command::new("initdb")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                !required(),
                "initdb and pg_ctl are required (PYVENTUS_REQUIRE_SERVICES=1) but not on the PATH: \
                 the fault tests start a PostgreSQL of their own"
            );
            super::skip(
                "initdb is not on the PATH (the fault tests start a PostgreSQL of their own)",
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "pyventus-postgres-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            // PostgreSQL refuses to run as root: its files belong to `postgres`.
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the data directory to postgres");
        }
        let server = PrivatePostgres { dir, port };
        let data = server.data();
        let out = command("initdb")
            .args([
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.launch();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn launch(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        let out = command("pg_ctl")
            .args([
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "start",
            ])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it the way a crash does (`pg_ctl stop -m immediate`: no
    /// checkpoint; recovery at the next start).
    pub fn kill(&self) {
        let _ = command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Starts it again after [`kill`](Self::kill), on the same port and data.
    pub fn start_again(&self) {
        self.launch();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `program`, as `postgres` when this runs as root (PostgreSQL refuses root).
fn command(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
