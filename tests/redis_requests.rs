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
    cleanup, connection, emitter, fresh_queue, redis_url, service, spawn_run, stop,
};
use pyventus::redis::Worker;
use pyventus::{Event, EventLinker, Request, RequestError};
use requests::{GetQuote, Quote, QuoteError, Square, Stuck, Unanswered, responders};
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

/// The reply lists of `queue` still in Redis.
async fn reply_keys(url: &str, queue: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("pyventus:{{{queue}}}:reply:*"))
        .query_async(&mut connection(url).await)
        .await
        .unwrap()
}

/// Bounds a wait so that a hang fails the test within seconds.
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_by_a_worker_with_its_value_error_or_panic() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("requests");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    let emitter = emitter(service(&url, &queue).await, EventLinker::new());
    let second = Duration::from_secs(5);
    let ask = |symbol: &str| {
        emitter
            .request(GetQuote {
                symbol: symbol.into(),
            })
            .timeout(second)
    };

    let acme = bounded("the request", ask("ACME")).await;
    assert_eq!(
        acme,
        Ok(Quote {
            symbol: "ACME".into(),
            price: 42
        })
    );

    let unknown = bounded("the request", ask("NOPE")).await;
    assert_eq!(
        unknown,
        Err(RequestError::Responder {
            request: "GetQuote",
            error: QuoteError::UnknownSymbol("NOPE".into()),
        })
    );

    let panicked = bounded("the request", ask("PANIC")).await.unwrap_err();
    let RequestError::Panicked {
        request: "GetQuote",
        panic,
    } = &panicked
    else {
        panic!("expected Panicked, got {panicked:?}");
    };
    assert_eq!(panic.message(), "the quote service fell over");

    // The worker keeps answering after a panic; an `Infallible` error crosses too.
    assert_eq!(
        bounded("the request", emitter.request(Square(12)).timeout(second)).await,
        Ok(144)
    );
    assert!(bounded("the request", ask("ACME")).await.is_ok());

    assert_eq!(reply_keys(&url, &queue).await, Vec::<String>::new());
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_a_responder_answers_no_responder_at_once() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("no-responder");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    let emitter = emitter(service(&url, &queue).await, EventLinker::new());

    let start = Instant::now();
    let answer = bounded(
        "the request",
        emitter.request(Unanswered).timeout(Duration::from_secs(5)),
    )
    .await;
    println!("NoResponder came back after {:?}", start.elapsed());
    assert_eq!(
        answer,
        Err(RequestError::NoResponder {
            request: "Unanswered"
        })
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );

    assert_eq!(reply_keys(&url, &queue).await, Vec::<String>::new());
    stop(&worker, running).await;
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_takes_times_out_at_its_deadline_and_leaves_no_reply_list() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("no-worker");
    let emitter = emitter(service(&url, &queue).await, EventLinker::new());
    let timeout = Duration::from_millis(200);

    let start = Instant::now();
    let answer = bounded("the request", emitter.request(Square(2)).timeout(timeout)).await;
    let took = start.elapsed();
    println!("a 200 ms request with no worker timed out after {took:?}");
    assert_eq!(
        answer,
        Err(RequestError::Timeout {
            request: "Square",
            timeout
        })
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "took {took:?}"
    );
    assert_eq!(reply_keys(&url, &queue).await, Vec::<String>::new());
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_declared_remote_is_refused_at_once() {
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("local-only");
    let emitter = emitter(service(&url, &queue).await, EventLinker::new());
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
    assert!(
        err.to_string().contains("`Serialize` and `Deserialize`"),
        "{err}"
    );
    cleanup(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_each_get_their_own_answer() {
    const REQUESTS: u64 = 500;
    let Some(url) = redis_url().await else { return };
    let queue = fresh_queue("concurrent");
    let worker = worker(&url, &queue).await;
    let running = spawn_run(&worker);
    let emitter = emitter(service(&url, &queue).await, EventLinker::new());

    let start = Instant::now();
    let asks = (0..REQUESTS).map(|n| {
        let ask = emitter.request(Square(n)).timeout(Duration::from_secs(20));
        tokio::spawn(async move { (n, ask.await) })
    });
    let answers = bounded("the requests", futures::future::join_all(asks)).await;
    for answer in answers {
        let (n, answer) = answer.unwrap();
        assert_eq!(answer, Ok(n * n), "request {n}");
    }
    println!(
        "{REQUESTS} concurrent requests answered in {:?}",
        start.elapsed()
    );

    assert_eq!(reply_keys(&url, &queue).await, Vec::<String>::new());
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
    let emitter = emitter(service(&url, &queue).await, EventLinker::new());
    let mut child = common::redis::spawn_child("child_responder_process", &[(CHILD_QUEUE, &queue)]);

    // The child is up once it answers.
    let up = Instant::now();
    loop {
        let answer = emitter
            .request(Square(3))
            .timeout(Duration::from_millis(500))
            .await;
        if answer == Ok(9) {
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "the child never answered: {answer:?}"
        );
    }

    let timeout = Duration::from_secs(2);
    let stuck = tokio::spawn(emitter.request(Stuck).timeout(timeout));
    // Mid-request: the child has taken it (it is pending) and sits on it.
    common::redis::until(
        Duration::from_secs(5),
        "the child to take the request",
        async || common::redis::pending(&url, &queue).await == 1,
    )
    .await;
    let killed = Instant::now();
    child.kill().unwrap(); // SIGKILL: no answer, no shutdown
    child.wait().unwrap();

    let answer = bounded("the request", stuck).await.unwrap();
    println!(
        "the caller's 2 s timeout ended its wait {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(
        answer,
        Err(RequestError::Timeout {
            request: "Stuck",
            timeout
        })
    );
    assert!(
        killed.elapsed() < timeout + Duration::from_millis(500),
        "took {:?}",
        killed.elapsed()
    );
    assert_eq!(reply_keys(&url, &queue).await, Vec::<String>::new());
    cleanup(&url, &queue).await;
}
