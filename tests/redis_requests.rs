//! Requests answered by a worker over a real Redis (`PYVENTUS_REDIS_URL`,
//! default 127.0.0.1:6379): the answer, the responder's error and panic, no
//! responder, a worker killed mid-request, many requests at once; and never
//! a reply list left behind. Without a Redis, these tests say so and pass,
//! unless `PYVENTUS_REQUIRE_SERVICES=1`.
#![cfg(feature = "redis")]

mod common;
// Not in `common`: its request types would be in every test binary.
#[path = "common/requests.rs"]
mod requests;

use std::time::{Duration, Instant};

use common::redis::{
    cleanup, connection, emitter, fresh_queue, pending, redis_url, service, spawn_child, spawn_run,
    stop,
};
use common::until;
use pyventus::redis::Worker;
use pyventus::{Event, EventEmitter, EventLinker, Request, RequestError};
use requests::{Stuck, responders};
use serde::{Deserialize, Serialize};

/// A request not declared `remote`: answered in its process only.
#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = u64)]
struct LocalOnly;

async fn worker(url: &str, queue: &str) -> Worker {
    Worker::builder(url)
        .queue(queue)
        .linker(responders())
        .block(Duration::from_millis(50))
        .concurrency(64)
        .connect()
        .await
        .unwrap()
}

async fn caller(url: &str, queue: &str) -> EventEmitter {
    emitter(service(url, queue).await, EventLinker::new())
}

/// Fails if a reply list of `queue` is left in Redis.
async fn no_reply_list(url: &str, queue: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("pyventus:{{{queue}}}:reply:*"))
        .query_async(&mut connection(url).await)
        .await
        .unwrap();
    assert_eq!(keys, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_by_a_worker_with_its_value_error_or_panic() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("requests");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    requests::value_error_and_panic_come_back(&caller(&url, &queue).await).await;
    no_reply_list(&url, &queue).await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_a_responder_answers_no_responder_at_once() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("no-responder");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    requests::no_responder_comes_back_at_once(&caller(&url, &queue).await).await;
    // Answered, the request is settled: no retry answers again later.
    until(
        Duration::from_secs(5),
        "the request to be settled",
        async || pending(&url, &queue).await == 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    no_reply_list(&url, &queue).await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_takes_times_out_at_its_deadline_and_leaves_no_reply_list() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("no-worker");
    requests::times_out_at_its_deadline(&caller(&url, &queue).await).await;
    no_reply_list(&url, &queue).await;
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_declared_remote_is_refused_at_once() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("local-only");
    let emitter = caller(&url, &queue).await;
    let answer = emitter
        .request(LocalOnly)
        .timeout(Duration::from_secs(5))
        .await;
    let err = answer.unwrap_err();
    assert!(
        matches!(
            err,
            RequestError::Remote {
                request: "LocalOnly"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("remote)]`"), "{err}");
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_each_get_their_own_answer() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("concurrent");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    requests::each_of_many_gets_its_own_answer(&caller(&url, &queue).await, 500).await;
    no_reply_list(&url, &queue).await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

const CHILD_QUEUE: &str = "PYVENTUS_TEST_REQUEST_QUEUE";

/// Not a test on its own: the worker process the kill test starts and kills.
#[test]
fn child_responder_process() {
    let Ok(queue) = std::env::var(CHILD_QUEUE) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let worker = worker(&pyventus::redis::url_from_env(), &queue).await;
        worker.run().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_request_gives_the_caller_a_timeout_not_a_hang() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("killed");
    let emitter = caller(&url, &queue).await;
    let mut child = spawn_child("child_responder_process", &[(CHILD_QUEUE, &queue)]);
    requests::until_a_worker_answers(&emitter).await;

    let timeout = Duration::from_secs(2);
    let stuck = tokio::spawn(emitter.request(Stuck).timeout(timeout));
    // Mid-request: the child has taken it (it is pending) and sits on it.
    until(
        Duration::from_secs(5),
        "the child to take the request",
        async || pending(&url, &queue).await == 1,
    )
    .await;
    let killed = Instant::now();
    child.kill().unwrap(); // SIGKILL: no answer, no shutdown
    child.wait().unwrap();

    requests::times_out_after_the_kill(stuck, timeout, killed).await;
    no_reply_list(&url, &queue).await;
    cleanup(&url, &queue).await;
}
