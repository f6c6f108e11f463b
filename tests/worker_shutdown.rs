//! A worker process whose synchronous handler is stuck still exits once its
//! shutdown timeout has passed after SIGTERM, and at once after a second
//! SIGTERM: the shape of the documented worker (`run_until_signal`, then
//! `main` returns and its runtime drops), run as a child process on RabbitMQ
//! and on Redis. The held message or entry is not lost: the broker delivers
//! it again. Each wait is bounded.
#![cfg(any(feature = "amqp", feature = "redis"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};

const CHILD_QUEUE: &str = "PYVENTUS_TEST_CHILD_QUEUE";
const CHILD_MARKER: &str = "PYVENTUS_TEST_CHILD_MARKER";
const CHILD_TIMEOUT: &str = "PYVENTUS_TEST_CHILD_TIMEOUT";
/// The worker's shutdown timeout in the child.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// The child's shutdown timeout when a second signal is to cut it short.
const LONG_SHUTDOWN_TIMEOUT: Duration = Duration::from_mins(1);
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

/// Starts the test binary again as a child running only `test`, its worker
/// with the shutdown timeout `timeout`.
fn spawn_child(test: &str, queue: &str, marker: &Path, timeout: Duration) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--quiet"])
        .env(CHILD_QUEUE, queue)
        .env(CHILD_MARKER, marker)
        .env(CHILD_TIMEOUT, timeout.as_secs().to_string())
        .spawn()
        .unwrap()
}

/// The shutdown timeout the test gave the child's worker.
fn child_timeout() -> Duration {
    std::env::var(CHILD_TIMEOUT)
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map_or(SHUTDOWN_TIMEOUT, Duration::from_secs)
}

/// How a test stops the child: the signals it sends, and how long after the
/// first the child has to exit.
#[derive(Clone, Copy)]
struct Stop {
    signals: u32,
    within: Duration,
}

/// One SIGTERM: the child drains, up to its shutdown timeout.
const DRAIN: Stop = Stop {
    signals: 1,
    within: SHUTDOWN_TIMEOUT.checked_add(MARGIN).unwrap(),
};

/// Two SIGTERMs half a second apart: the second cuts a long drain short.
const TWICE: Stop = Stop {
    signals: 2,
    within: MARGIN,
};

/// Waits for the child's handler to start, sends it SIGTERM (twice for
/// [`TWICE`]), and returns how it exited and how long after the first signal,
/// or `None` if it was still running past `stop.within` (then it is killed).
async fn terminate(mut child: Child, marker: &Path, stop: Stop) -> (Option<ExitStatus>, Duration) {
    let start = Instant::now();
    while !marker.exists() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child's handler did not start within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term = |child: &Child| {
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM");
    };
    term(&child);
    let signalled = Instant::now();
    let mut sent = 1;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (Some(status), signalled.elapsed());
        }
        if sent < stop.signals && signalled.elapsed() > Duration::from_millis(500) {
            term(&child);
            sent += 1;
        }
        if signalled.elapsed() > stop.within {
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

fn assert_exited_in_time(backend: &str, stop: Stop, exited: Option<ExitStatus>, after: Duration) {
    let signals = stop.signals;
    eprintln!("{backend} worker process after {signals} SIGTERM: {exited:?} in {after:?}");
    let status = exited.unwrap_or_else(|| {
        panic!(
            "the {backend} worker process was still running {after:?} after {signals} SIGTERM \
             (it had {:?}); killed",
            stop.within
        )
    });
    assert!(status.success(), "{backend} worker process: {status}");
}

#[cfg(feature = "amqp")]
mod amqp {
    use super::*;
    use common::amqp::{amqp_url, cleanup, fresh_queue, queue_of, ready};
    use common::until;
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
                .shutdown_timeout(child_timeout())
                .connect()
                .await
                .unwrap();
            worker.run_until_signal().await.unwrap();
        });
    }

    /// Starts the child on a queue holding one message, which its stuck
    /// handler takes; stops it as `stop` says, then checks that it exited in
    /// time and the message is back on the queue.
    async fn stop_a_stuck_worker(name: &str, timeout: Duration, stop: Stop) {
        let Some(url) = amqp_url().await else { return };
        let queue = fresh_queue(name);
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
            timeout,
        );
        let (exited, after) = terminate(child, &marker, stop).await;
        let _ = std::fs::remove_file(&marker);
        assert_exited_in_time("RabbitMQ", stop, exited, after);
        // The message it held is back on the queue.
        until(Duration::from_secs(10), "the message back", async || {
            ready(&url, &queue_of(&queue)).await == 1
        })
        .await;
        cleanup(&url, &queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_sync_handler_does_not_keep_an_amqp_worker_process_from_exiting_after_sigterm()
    {
        stop_a_stuck_worker("sigterm", SHUTDOWN_TIMEOUT, DRAIN).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_sigterm_stops_an_amqp_worker_process_at_once() {
        stop_a_stuck_worker("sigterm-twice", LONG_SHUTDOWN_TIMEOUT, TWICE).await;
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
                .shutdown_deadline(child_timeout())
                .block(Duration::from_millis(100))
                .connect()
                .await
                .unwrap();
            worker.run_until_signal().await.unwrap();
        });
    }

    /// The Redis twin of the AMQP `stop_a_stuck_worker`: the entry the
    /// stuck handler held is still pending, for another worker to claim.
    async fn stop_a_stuck_worker(name: &str, timeout: Duration, stop: Stop) {
        let Some(url) = redis_url().await else { return };
        let queue = fresh_queue(name);
        emitter(service(&url, &queue).await, Stuck::linker())
            .emit(Jam { id: 1 })
            .unwrap();
        let marker = marker_path(&queue);
        let child = spawn_child(
            "redis::child_redis_worker_with_a_stuck_sync_handler",
            &queue,
            &marker,
            timeout,
        );
        let (exited, after) = terminate(child, &marker, stop).await;
        let _ = std::fs::remove_file(&marker);
        assert_exited_in_time("Redis", stop, exited, after);
        assert_eq!(pending(&url, &queue).await, 1);
        cleanup(&url, &queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_sync_handler_does_not_keep_a_redis_worker_process_from_exiting_after_sigterm()
    {
        stop_a_stuck_worker("sigterm", SHUTDOWN_TIMEOUT, DRAIN).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_sigterm_stops_a_redis_worker_process_at_once() {
        stop_a_stuck_worker("sigterm-twice", LONG_SHUTDOWN_TIMEOUT, TWICE).await;
    }
}
