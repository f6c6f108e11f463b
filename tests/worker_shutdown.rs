//! A worker process whose synchronous handler is stuck still exits once its
//! shutdown timeout has passed after SIGTERM: the shape of the documented
//! worker (`run_until_signal`, then `main` returns and its runtime drops), run
//! as a child process on RabbitMQ and on Redis. The held message or entry is
//! not lost: the broker delivers it again. Each wait is bounded.
#![cfg(any(feature = "amqp", feature = "redis"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};

const CHILD_QUEUE: &str = "PYVENTUS_TEST_CHILD_QUEUE";
const CHILD_MARKER: &str = "PYVENTUS_TEST_CHILD_MARKER";
/// The worker's shutdown timeout in the child.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// What the process may take beyond it to exit.
const MARGIN: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Jam {
    id: u64,
}

#[derive(Linker)]
struct Stuck;

/// A plain synchronous handler that never returns in time: it says it started
/// (the marker file), then sleeps two minutes.
#[on(Jam, linker = Stuck)]
fn jammed(_jam: &Jam) {
    if let Ok(marker) = std::env::var(CHILD_MARKER) {
        let _ = std::fs::write(marker, "started");
    }
    std::thread::sleep(Duration::from_mins(2));
}

/// Starts the test binary again as a child running only `test`.
fn spawn_child(test: &str, queue: &str, marker: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--quiet"])
        .env(CHILD_QUEUE, queue)
        .env(CHILD_MARKER, marker)
        .spawn()
        .unwrap()
}

/// Waits for the child's handler to start, sends it SIGTERM, and returns how
/// it exited and how long after the signal, or `None` if it was still running
/// past the shutdown timeout and the margin (then it is killed).
async fn terminate(mut child: Child, marker: &Path) -> (Option<ExitStatus>, Duration) {
    let start = Instant::now();
    while !marker.exists() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child's handler did not start within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM");
    let signalled = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (Some(status), signalled.elapsed());
        }
        if signalled.elapsed() > SHUTDOWN_TIMEOUT + MARGIN {
            let _ = child.kill();
            let _ = child.wait();
            return (None, signalled.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn marker_path(queue: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{queue}.started"))
}

fn assert_exited_in_time(backend: &str, exited: Option<ExitStatus>, after: Duration) {
    eprintln!("{backend} worker process after SIGTERM: {exited:?} in {after:?}");
    let status = exited.unwrap_or_else(|| {
        panic!(
            "the {backend} worker process was still running {after:?} after SIGTERM \
             (shutdown timeout {SHUTDOWN_TIMEOUT:?}); killed"
        )
    });
    assert!(status.success(), "{backend} worker process: {status}");
}

#[cfg(feature = "amqp")]
mod amqp {
    use super::*;
    use common::amqp::{amqp_url, cleanup, fresh_queue, queue_of, ready, until};
    use pyventus::EventEmitter;
    use pyventus::amqp::{AmqpProcessingService, Worker};

    /// Not a test on its own: the worker process the SIGTERM test starts. Its
    /// `main` as the guide writes it: a runtime that runs the worker until a
    /// signal, then is dropped.
    #[test]
    fn child_amqp_worker_with_a_stuck_sync_handler() {
        let Ok(queue) = std::env::var(CHILD_QUEUE) else {
            return;
        };
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let worker = Worker::builder(&pyventus::amqp::url_from_env())
                .queue(&queue)
                .linker(Stuck::linker())
                .shutdown_timeout(SHUTDOWN_TIMEOUT)
                .connect()
                .await
                .unwrap();
            worker.run_until_signal().await.unwrap();
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_sync_handler_does_not_keep_an_amqp_worker_process_from_exiting_after_sigterm()
    {
        let Some(url) = amqp_url().await else { return };
        let queue = fresh_queue("sigterm");
        let service = AmqpProcessingService::builder(&url)
            .queue(&queue)
            .connect()
            .await
            .unwrap();
        EventEmitter::builder()
            .processor(service)
            .linker(Stuck::linker())
            .build()
            .emit(Jam { id: 1 })
            .unwrap();
        let marker = marker_path(&queue);
        let child = spawn_child(
            "amqp::child_amqp_worker_with_a_stuck_sync_handler",
            &queue,
            &marker,
        );
        let (exited, after) = terminate(child, &marker).await;
        let _ = std::fs::remove_file(&marker);
        assert_exited_in_time("RabbitMQ", exited, after);
        // The message it held is back on the queue.
        until(Duration::from_secs(10), "the message back", async || {
            ready(&url, &queue_of(&queue)).await == 1
        })
        .await;
        cleanup(&url, &queue).await;
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use common::redis::{cleanup, emitter, fresh_queue, pending, redis_url, service};
    use pyventus::redis::Worker;

    /// Not a test on its own: the Redis twin of the AMQP child above.
    #[test]
    fn child_redis_worker_with_a_stuck_sync_handler() {
        let Ok(queue) = std::env::var(CHILD_QUEUE) else {
            return;
        };
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let worker = Worker::builder(&pyventus::redis::url_from_env())
                .queue(&queue)
                .linker(Stuck::linker())
                .shutdown_deadline(SHUTDOWN_TIMEOUT)
                .block(Duration::from_millis(100))
                .connect()
                .await
                .unwrap();
            worker.run_until_signal().await.unwrap();
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_sync_handler_does_not_keep_a_redis_worker_process_from_exiting_after_sigterm()
    {
        let Some(url) = redis_url().await else { return };
        let queue = fresh_queue("sigterm");
        emitter(service(&url, &queue).await, Stuck::linker())
            .emit(Jam { id: 1 })
            .unwrap();
        let marker = marker_path(&queue);
        let child = spawn_child(
            "redis::child_redis_worker_with_a_stuck_sync_handler",
            &queue,
            &marker,
        );
        let (exited, after) = terminate(child, &marker).await;
        let _ = std::fs::remove_file(&marker);
        assert_exited_in_time("Redis", exited, after);
        // The entry it held is still pending, for another worker to claim.
        assert_eq!(pending(&url, &queue).await, 1);
        cleanup(&url, &queue).await;
    }
}
