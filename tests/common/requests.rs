//! The requests the broker tests (`redis_requests`, `amqp_requests`) ask a
//! worker, and the worker's responders. Included by those tests alone, not
//! by `common`: its request types would be in every test binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyventus::{Event, EventEmitter, EventLinker, Request, RequestError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = Quote, error = QuoteError, remote)]
pub(crate) struct GetQuote {
    pub(crate) symbol: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Quote {
    pub(crate) symbol: String,
    pub(crate) price: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum QuoteError {
    UnknownSymbol(String),
}

/// A request whose error is `Infallible` (the default): its answers cross too.
#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = u64, remote)]
pub(crate) struct Square(pub(crate) u64);

/// A request no worker answers.
#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = (), remote)]
pub(crate) struct Unanswered;

/// A request the child worker sits on until it is killed.
#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = (), remote)]
pub(crate) struct Stuck;

/// The worker's responders: `ACME` is 42, `PANIC` panics, `SLOW` takes 50 ms,
/// anything else is unknown.
pub(crate) fn responders() -> EventLinker {
    let linker = EventLinker::new();
    linker
        .respond_async(|q: Arc<GetQuote>| async move {
            match q.symbol.as_str() {
                "PANIC" => panic!("the quote service fell over"),
                "SLOW" => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Quote {
                        symbol: q.symbol.clone(),
                        price: 1,
                    })
                }
                "ACME" => Ok(Quote {
                    symbol: q.symbol.clone(),
                    price: 42,
                }),
                other => Err(QuoteError::UnknownSymbol(other.to_owned())),
            }
        })
        .unwrap();
    linker.respond(|s: &Square| Ok(s.0 * s.0)).unwrap();
    linker
        .respond_async(|_: Arc<Stuck>| async {
            tokio::time::sleep(Duration::from_hours(1)).await;
            Ok(())
        })
        .unwrap();
    linker
}

/// Bounds a wait so that a hang fails the test within seconds.
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// The worker behind `emitter` answers with the responder's value, its
/// error and its panic, and keeps answering after the panic.
pub(crate) async fn value_error_and_panic_come_back(emitter: &EventEmitter) {
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
    // An `Infallible` error crosses too.
    assert_eq!(
        bounded("the request", emitter.request(Square(12)).timeout(second)).await,
        Ok(144)
    );
    assert!(bounded("the request", ask("ACME")).await.is_ok());
}

/// A worker without a responder answers `NoResponder`, long before the
/// caller's timeout.
pub(crate) async fn no_responder_comes_back_at_once(emitter: &EventEmitter) {
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
}

/// With no worker, a 200 ms request times out at its deadline.
pub(crate) async fn times_out_at_its_deadline(emitter: &EventEmitter) {
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
}

/// `count` requests at once: each gets its own answer.
pub(crate) async fn each_of_many_gets_its_own_answer(emitter: &EventEmitter, count: u64) {
    let start = Instant::now();
    let asks = (0..count).map(|n| {
        let ask = emitter.request(Square(n)).timeout(Duration::from_secs(20));
        tokio::spawn(async move { (n, ask.await) })
    });
    let answers = bounded("the requests", futures::future::join_all(asks)).await;
    for answer in answers {
        let (n, answer) = answer.unwrap();
        assert_eq!(answer, Ok(n * n), "request {n}");
    }
    println!(
        "{count} concurrent requests answered in {:?}",
        start.elapsed()
    );
}

/// Waits until a worker (a child process starting up) answers.
pub(crate) async fn until_a_worker_answers(emitter: &EventEmitter) {
    let up = Instant::now();
    loop {
        let answer = emitter
            .request(Square(3))
            .timeout(Duration::from_millis(500))
            .await;
        if answer == Ok(9) {
            return;
        }
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "the worker never answered: {answer:?}"
        );
    }
}

/// The caller of a request whose worker was killed (`killed`: when) gets
/// `Timeout` at its deadline, and not long after.
pub(crate) async fn times_out_after_the_kill(
    stuck: tokio::task::JoinHandle<Result<(), RequestError<std::convert::Infallible>>>,
    timeout: Duration,
    killed: Instant,
) {
    let answer = bounded("the request", stuck).await.unwrap();
    println!(
        "the caller's {timeout:?} timeout ended its wait {:?} after the kill",
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
}
