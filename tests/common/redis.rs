//! Helpers of the Redis tests: the shared Redis, private `redis-server`
//! children for the tests that kill or restart one, queues, waiting.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pyventus::redis::{DeadLetters, RedisProcessingService, Worker};
use pyventus::{EventEmitter, EventLinker};
use redis::AsyncCommands;

fn required() -> bool {
    std::env::var("PYVENTUS_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// The shared Redis to test against, or `None` (and why) when it is not
/// reachable and not required.
pub async fn redis_url() -> Option<String> {
    let url = pyventus::redis::url_from_env();
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    match tokio::time::timeout(Duration::from_secs(3), reachable).await {
        Ok(Some(_)) => Some(url),
        _ if required() => panic!(
            "Redis is required (PYVENTUS_REQUIRE_SERVICES=1) but not reachable at {url}; set PYVENTUS_REDIS_URL"
        ),
        _ => {
            super::skip(&format!(
                "no Redis reachable at {url} (set PYVENTUS_REDIS_URL to run this test)"
            ));
            None
        }
    }
}

/// A queue name no other test uses.
pub fn fresh_queue(name: &str) -> String {
    format!("test-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// The stream key of a queue.
pub fn stream_key(queue: &str) -> String {
    format!("pyventus:{{{queue}}}:stream")
}

/// The dead-letter key of a queue.
pub fn dead_key(queue: &str) -> String {
    format!("pyventus:{{{queue}}}:dead")
}

pub async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes a queue's keys.
pub async fn cleanup(url: &str, queue: &str) {
    let mut conn = connection(url).await;
    let keys = [
        stream_key(queue),
        dead_key(queue),
        format!("test:{queue}:done"),
    ];
    let _: () = conn.del(&keys).await.unwrap();
}

/// Runs `worker` on a task of its own.
pub fn spawn_run(worker: &Worker) -> tokio::task::JoinHandle<Result<(), pyventus::redis::Error>> {
    let worker = worker.clone();
    tokio::spawn(async move { worker.run().await })
}

/// Stops a worker and waits for its run, failing after a few seconds.
pub async fn stop(
    worker: &Worker,
    running: tokio::task::JoinHandle<Result<(), pyventus::redis::Error>>,
) {
    worker.shutdown();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops within seconds")
        .unwrap()
        .unwrap();
}

/// The processing service of `queue`.
pub async fn service(url: &str, queue: &str) -> RedisProcessingService {
    RedisProcessingService::builder(url)
        .queue(queue)
        .connect()
        .await
        .unwrap()
}

pub fn emitter(service: RedisProcessingService, linker: EventLinker) -> EventEmitter {
    EventEmitter::builder()
        .processor(service)
        .linker(linker)
        .build()
}

/// The number of entries pending in a queue's consumer group.
pub async fn pending(url: &str, queue: &str) -> u64 {
    let summary: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(stream_key(queue))
        .arg("pyventus")
        .query_async(&mut connection(url).await)
        .await
        .unwrap();
    summary.0
}

/// Who holds a pending entry, if anyone.
pub async fn holder(url: &str, queue: &str, entry: &str) -> Option<String> {
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream_key(queue))
        .arg("pyventus")
        .arg(entry)
        .arg(entry)
        .arg(1)
        .query_async(&mut connection(url).await)
        .await
        .unwrap();
    pending.into_iter().next().map(|p| p.1)
}

/// Connects to the dead letters of `queue`.
pub async fn dead_letters(url: &str, queue: &str) -> DeadLetters {
    DeadLetters::connect(url, queue).await.unwrap()
}

/// A `redis-server` of the test's own, on a free port and a fresh directory,
/// for tests that kill or restart Redis (never the shared one). Killed, and
/// its directory removed, when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts one with `args` on top of no persistence; `None` (after saying
    /// why) if `redis-server` is not installed and not required.
    pub fn start(args: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                !required(),
                "redis-server is required (PYVENTUS_REQUIRE_SERVICES=1) but not installed: \
                 the fault tests start their own"
            );
            super::skip("redis-server is not installed (the fault tests start their own)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "pyventus-redis-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.launch();
        Some(server)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let start = Instant::now();
        let url = format!("redis://127.0.0.1:{}", self.port);
        loop {
            let ready = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match ready {
                Ok(_) => return,
                // Answers but refuses us: up, with a password.
                Err(err) if err.kind() == redis::ErrorKind::AuthenticationFailed => return,
                Err(err) if err.code() == Some("NOAUTH") => return,
                Err(_) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("redis-server did not start on port {}: {err}", self.port),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kill -9`: no shutdown, no save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (with AOF, the data
    /// comes back).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the test binary again as a child running only `test`, with `env`:
/// a worker process for a test to kill, pause or crash.
pub fn spawn_child(test: &str, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--quiet"])
        .envs(env.iter().copied())
        .spawn()
        .unwrap()
}
