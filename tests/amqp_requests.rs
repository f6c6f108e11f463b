//! Requests answered by a worker over a real RabbitMQ (`PYVENTUS_AMQP_URL`,
//! default 127.0.0.1:5672), with direct reply-to: the answer, the
//! responder's error and panic, no responder, a worker killed mid-request,
//! many requests at once; and no reply queue, ever. Without a RabbitMQ,
//! these tests say so and pass, unless `PYVENTUS_REQUIRE_SERVICES=1`.
#![cfg(feature = "amqp")]

mod common;
// Not in `common`: its request types would be in every test binary.
#[path = "common/requests.rs"]
mod requests;

use std::time::{Duration, Instant};

use common::amqp::{amqp_url, cleanup, fresh_queue, queue_of, ready, spawn_run, stop};
use common::until;
use pyventus::amqp::{AmqpProcessingService, Worker};
use pyventus::{EventEmitter, EventLinker};
use requests::{Stuck, responders};

async fn worker(url: &str, queue: &str) -> Worker {
    Worker::builder(url)
        .queue(queue)
        .linker(responders())
        .concurrency(64)
        .connect()
        .await
        .unwrap()
}

async fn emitter(url: &str, queue: &str) -> EventEmitter {
    let service = AmqpProcessingService::builder(url)
        .queue(queue)
        .connect()
        .await
        .unwrap();
    EventEmitter::builder()
        .processor(service)
        .linker(EventLinker::new())
        .build()
}

/// The broker's queues whose name mentions `queue` or that it generated for
/// replies (`amq.gen-...`): only the queue and its dead letters may be.
fn queues_of(queue: &str) -> Vec<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "--quiet", "--no-table-headers", "name"])
        .output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        common::skip("rabbitmqctl cannot list the queues: not checked");
        return vec![queue_of(queue), format!("{}.dead", queue_of(queue))];
    };
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|name| name.contains(queue) || name.starts_with("amq.gen"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn no_reply_queue(queue: &str) {
    let mut expected = vec![queue_of(queue), format!("{}.dead", queue_of(queue))];
    expected.sort();
    assert_eq!(queues_of(queue), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_by_a_worker_with_its_value_error_or_panic() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("requests");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    requests::value_error_and_panic_come_back(&emitter(&url, &queue).await).await;
    stop(&worker, running).await;
    no_reply_queue(&queue);
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_a_responder_answers_no_responder_at_once() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("no-responder");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    requests::no_responder_comes_back_at_once(&emitter(&url, &queue).await).await;
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_takes_times_out_at_its_deadline_and_leaves_no_reply_queue() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("no-worker");
    requests::times_out_at_its_deadline(&emitter(&url, &queue).await).await;
    no_reply_queue(&queue);
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_each_get_their_own_answer() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("concurrent");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    requests::each_of_many_gets_its_own_answer(&emitter(&url, &queue).await, 500).await;
    stop(&worker, running).await;
    no_reply_queue(&queue);
    cleanup(&url, &queue).await;
}

const CHILD_QUEUE: &str = "PYVENTUS_TEST_AMQP_REQUEST_QUEUE";

/// Not a test on its own: the worker process the kill test starts and kills.
#[test]
fn child_responder_process() {
    let Ok(queue) = std::env::var(CHILD_QUEUE) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let worker = worker(&pyventus::amqp::url_from_env(), &queue).await;
        worker.run().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_request_gives_the_caller_a_timeout_not_a_hang() {
    let Some(url) = amqp_url().await else { return };
    let queue = fresh_queue("killed");
    let emitter = emitter(&url, &queue).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_responder_process",
            "--nocapture",
            "--quiet",
        ])
        .env(CHILD_QUEUE, &queue)
        .spawn()
        .unwrap();
    requests::until_a_worker_answers(&emitter).await;

    let timeout = Duration::from_secs(2);
    let stuck = tokio::spawn(emitter.request(Stuck).timeout(timeout));
    // Mid-request: the child has taken it (none ready) and sits on it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    until(
        Duration::from_secs(5),
        "the child to take the request",
        async || ready(&url, &queue_of(&queue)).await == 0,
    )
    .await;
    let killed = Instant::now();
    child.kill().unwrap(); // SIGKILL: no answer, no shutdown
    child.wait().unwrap();

    requests::times_out_after_the_kill(stuck, timeout, killed).await;
    no_reply_queue(&queue);
    cleanup(&url, &queue).await;
}
