//! In-process requests: one responder per request type, `emitter.request(r)
//! .timeout(d)` with a distinct error for each way it can go unanswered, and
//! `collect` for requests several responders answer.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{emitter, inline};
use pyventus::{
    Error, Event, EventEmission, EventLinker, ExecutorProcessingService, ProcessingService,
    Request, RequestError, TokioProcessingService, respond,
};

#[derive(Debug, Clone, Event, Request)]
#[request(response = u64, error = QuoteError)]
struct GetQuote {
    symbol: &'static str,
    n: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct QuoteError(String);

impl std::fmt::Display for QuoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no quote: {}", self.0)
    }
}

impl std::error::Error for QuoteError {}

/// A request several responders answer.
#[derive(Debug, Event, Request)]
#[request(response = &'static str, many)]
struct WhoIsThere;

fn quote(q: &GetQuote) -> Result<u64, QuoteError> {
    match q.symbol {
        "ACME" => Ok(q.n * 2),
        "PANIC" => panic!("the quote service fell over"),
        other => Err(QuoteError(other.to_owned())),
    }
}

fn tokio_emitter(linker: &EventLinker) -> pyventus::EventEmitter {
    emitter(linker, TokioProcessingService::default())
}

const SECOND: Duration = Duration::from_secs(1);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn a_responder_answers_its_request() {
    let linker = EventLinker::new();
    linker.respond(quote).unwrap();
    let emitter = tokio_emitter(&linker);
    let answer = emitter
        .request(GetQuote {
            symbol: "ACME",
            n: 21,
        })
        .timeout(SECOND)
        .await;
    assert_eq!(answer, Ok(42));
}

#[tokio::test]
async fn a_request_without_a_responder_fails_at_once() {
    let linker = EventLinker::new();
    // An observer is not a responder.
    linker.on::<GetQuote>().subscribe(|| ()).unwrap();
    let emitter = tokio_emitter(&linker);
    let mut samples = Vec::new();
    for _ in 0..101 {
        let started = Instant::now();
        let err = emitter
            .request(GetQuote {
                symbol: "ACME",
                n: 1,
            })
            .timeout(Duration::from_secs(10))
            .await
            .unwrap_err();
        samples.push(started.elapsed());
        assert_eq!(
            err,
            RequestError::NoResponder {
                request: "GetQuote"
            }
        );
    }
    let median = median(samples);
    eprintln!("no responder: median {median:?} over 101 requests");
    assert!(median < Duration::from_millis(1), "median {median:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fires_at_its_deadline() {
    let linker = EventLinker::new();
    linker
        .respond_async(|_: Arc<GetQuote>| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(0)
        })
        .unwrap();
    let emitter = tokio_emitter(&linker);
    let timeout = Duration::from_millis(100);
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let err = emitter
            .request(GetQuote {
                symbol: "ACME",
                n: 1,
            })
            .timeout(timeout)
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(
            err,
            RequestError::Timeout {
                request: "GetQuote",
                timeout
            }
        );
        assert!(elapsed >= timeout, "fired early: {elapsed:?}");
        samples.push(elapsed.saturating_sub(timeout));
    }
    let late = median(samples.clone());
    eprintln!("100 ms timeout: late by {samples:?}, median {late:?}");
    // The issue asks for 10 ms; a loaded machine gets some slack beyond it.
    assert!(late < Duration::from_millis(50), "median lateness {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_each_get_their_own_answer() {
    let linker = EventLinker::new();
    linker
        .respond_async(|q: Arc<GetQuote>| async move {
            // Answers out of order.
            if q.n.is_multiple_of(3) {
                tokio::task::yield_now().await;
            }
            Ok(q.n * 2)
        })
        .unwrap();
    let emitter = tokio_emitter(&linker);
    let started = Instant::now();
    let tasks: Vec<_> = (0..10_000_u64)
        .map(|n| {
            let emitter = emitter.clone();
            tokio::spawn(async move {
                let answer = emitter
                    .request(GetQuote { symbol: "ACME", n })
                    .timeout(Duration::from_secs(30))
                    .await;
                (n, answer)
            })
        })
        .collect();
    let mut answered = 0;
    for task in tasks {
        let (n, answer) = task.await.unwrap();
        assert_eq!(answer, Ok(n * 2), "request {n} got another's answer");
        answered += 1;
    }
    eprintln!("10,000 concurrent requests in {:?}", started.elapsed());
    assert_eq!(answered, 10_000);
}

#[tokio::test]
async fn a_responders_error_reaches_the_caller() {
    let linker = EventLinker::new();
    linker.respond(quote).unwrap();
    let emitter = inline(&linker);
    let err = emitter
        .request(GetQuote {
            symbol: "NOPE",
            n: 1,
        })
        .timeout(SECOND)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RequestError::Responder {
            request: "GetQuote",
            error: QuoteError("NOPE".to_owned())
        }
    );
    assert_eq!(
        err.to_string(),
        "the responder of `GetQuote` failed: no quote: NOPE"
    );
}

#[tokio::test]
async fn a_responders_panic_reaches_the_caller() {
    let linker = EventLinker::new();
    linker.respond(quote).unwrap();
    let emitter = tokio_emitter(&linker);
    let err = emitter
        .request(GetQuote {
            symbol: "PANIC",
            n: 1,
        })
        .timeout(SECOND)
        .await
        .unwrap_err();
    let RequestError::Panicked { request, panic } = err else {
        panic!("expected a panic, got {err:?}");
    };
    assert_eq!(request, "GetQuote");
    assert_eq!(panic.message(), "the quote service fell over");
    // The responder still answers the next request.
    let again = emitter
        .request(GetQuote {
            symbol: "ACME",
            n: 2,
        })
        .timeout(SECOND)
        .await;
    assert_eq!(again, Ok(4));
}

#[tokio::test]
async fn an_async_responders_panic_reaches_the_caller() {
    let linker = EventLinker::new();
    linker
        .respond_async(|_: Arc<GetQuote>| async {
            tokio::task::yield_now().await;
            panic!("async boom")
        })
        .unwrap();
    let err = tokio_emitter(&linker)
        .request(GetQuote {
            symbol: "ACME",
            n: 1,
        })
        .timeout(SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Panicked { panic, .. } if panic.message() == "async boom"),
        "{err:?}"
    );
}

#[test]
fn a_second_responder_is_refused_when_it_subscribes() {
    let linker = EventLinker::new();
    let first = linker.respond(quote).unwrap();
    let err = linker.respond(|_: &GetQuote| Ok(0)).unwrap_err();
    assert!(
        matches!(&err, Error::TwoResponders { request, .. } if request == "GetQuote"),
        "{err}"
    );
    assert!(
        err.to_string().contains("a request has exactly one"),
        "{err}"
    );
    assert_eq!(linker.subscriber_count(), 1);
    // Once the first is gone, another may take its place.
    assert!(first.unsubscribe());
    linker.respond(|_: &GetQuote| Ok(0)).unwrap();
}

/// Holds emissions until the test runs them.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<Vec<EventEmission>>>);

impl ProcessingService for Held {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        self.0.lock().unwrap().push(emission);
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_responder_unsubscribed_while_the_request_waits_fails_it_at_once() {
    let linker = EventLinker::new();
    let responder = linker.respond(quote).unwrap();
    let held = Held::default();
    let emitter = emitter(&linker, held.clone());
    let started = Instant::now();
    let asking = tokio::spawn(async move {
        emitter
            .request(GetQuote {
                symbol: "ACME",
                n: 1,
            })
            .timeout(Duration::from_secs(30))
            .await
    });
    // The request is emitted, with its responder, and waits.
    while held.0.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    assert!(responder.unsubscribe());
    let queued = std::mem::take(&mut *held.0.lock().unwrap());
    for emission in queued {
        drop(emission.run_blocking());
    }
    let err = asking.await.unwrap().unwrap_err();
    assert_eq!(
        err,
        RequestError::Unsubscribed {
            request: "GetQuote"
        }
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn observers_of_a_request_see_it_too() {
    let linker = EventLinker::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    linker
        .on::<GetQuote>()
        .subscribe(move |q: &GetQuote| s.fetch_add(usize::try_from(q.n).unwrap(), SeqCst))
        .unwrap();
    linker.respond(quote).unwrap();
    let answer = inline(&linker)
        .request(GetQuote {
            symbol: "ACME",
            n: 5,
        })
        .timeout(SECOND)
        .await;
    assert_eq!(answer, Ok(10));
    assert_eq!(seen.load(SeqCst), 5);
}

#[tokio::test]
async fn a_request_emitted_with_emit_runs_its_responder_for_nobody() {
    let linker = EventLinker::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    linker
        .respond(move |_: &GetQuote| {
            r.fetch_add(1, SeqCst);
            Ok(0)
        })
        .unwrap();
    inline(&linker)
        .emit(GetQuote {
            symbol: "ACME",
            n: 1,
        })
        .unwrap();
    assert_eq!(runs.load(SeqCst), 1);
}

/// A processing service that accepts emissions and drops them.
struct Dropping;

impl ProcessingService for Dropping {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        drop(emission);
        Ok(())
    }
}

#[tokio::test]
async fn a_request_whose_emission_is_dropped_says_so() {
    let linker = EventLinker::new();
    linker.respond(quote).unwrap();
    let err = emitter(&linker, Dropping)
        .request(GetQuote {
            symbol: "ACME",
            n: 1,
        })
        .timeout(Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RequestError::Dropped {
            request: "GetQuote"
        }
    );
}

/// A processing service that would run emissions in other processes.
struct Remote;

impl ProcessingService for Remote {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        emission.handed_off();
        Ok(())
    }

    fn runs_remotely(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_request_through_a_remote_service_is_refused() {
    let linker = EventLinker::new();
    linker.respond(quote).unwrap();
    let err = emitter(&linker, Remote)
        .request(GetQuote {
            symbol: "ACME",
            n: 1,
        })
        .timeout(SECOND)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RequestError::Remote {
            request: "GetQuote"
        }
    );
}

#[test]
fn a_request_outside_a_runtime_times_out_on_pyventus_own() {
    let linker = EventLinker::new();
    let pool = ExecutorProcessingService::with_threads(1);
    linker
        .respond(|_: &GetQuote| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(0)
        })
        .unwrap();
    let emitter = emitter(&linker, pool);
    let answer = pyventus::runtime::block_on(
        emitter
            .request(GetQuote {
                symbol: "ACME",
                n: 1,
            })
            .timeout(Duration::from_millis(20)),
    );
    assert!(
        matches!(answer, Err(RequestError::Timeout { .. })),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_with_three_responders_one_slow_returns_two_at_the_deadline() {
    let linker = EventLinker::new();
    linker.respond(|_: &WhoIsThere| Ok("billing")).unwrap();
    linker
        .respond_async(|_: Arc<WhoIsThere>| async { Ok("shipping") })
        .unwrap();
    linker
        .respond_async(|_: Arc<WhoIsThere>| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok("archive")
        })
        .unwrap();
    let emitter = tokio_emitter(&linker);
    let deadline = Duration::from_millis(100);
    let started = Instant::now();
    let answers = emitter.collect(WhoIsThere).timeout(deadline).await.unwrap();
    let elapsed = started.elapsed();
    let mut names: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    names.sort_unstable();
    assert_eq!(names, ["billing", "shipping"]);
    eprintln!("collect returned at {elapsed:?} for a {deadline:?} deadline");
    assert!(
        elapsed >= deadline,
        "returned before the deadline: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_returns_once_every_responder_answered() {
    let linker = EventLinker::new();
    linker.respond(|_: &WhoIsThere| Ok("billing")).unwrap();
    linker
        .respond_async(|_: Arc<WhoIsThere>| async { Ok("shipping") })
        .unwrap();
    let started = Instant::now();
    let answers = tokio_emitter(&linker)
        .collect(WhoIsThere)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(answers.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_returns_early_when_until_says_enough() {
    let linker = EventLinker::new();
    for _ in 0..2 {
        linker.respond(|_: &WhoIsThere| Ok("fast")).unwrap();
    }
    linker
        .respond_async(|_: Arc<WhoIsThere>| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok("slow")
        })
        .unwrap();
    let started = Instant::now();
    let answers = tokio_emitter(&linker)
        .collect(WhoIsThere)
        .until(|answers| answers.len() >= 2)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(answers, [Ok("fast"), Ok("fast")]);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn collect_without_responders_gives_no_answers_at_once() {
    let linker = EventLinker::new();
    let answers = inline(&linker)
        .collect(WhoIsThere)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(answers.is_empty());
}

#[tokio::test]
async fn request_refuses_a_request_with_several_responders() {
    let linker = EventLinker::new();
    linker.respond(|_: &WhoIsThere| Ok("a")).unwrap();
    linker.respond(|_: &WhoIsThere| Ok("b")).unwrap();
    let err = inline(&linker)
        .request(WhoIsThere)
        .timeout(SECOND)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RequestError::ManyResponders {
            request: "WhoIsThere",
            count: 2
        }
    );
}

// Declared responders.

#[derive(Debug, Event, Request)]
#[request(response = String)]
struct Greet {
    name: &'static str,
}

#[respond]
fn greet(g: &Greet) -> Result<String, std::convert::Infallible> {
    Ok(format!("Hello, {}!", g.name))
}

#[derive(Debug, Event, Request)]
#[request(response = usize, error = String)]
struct Measure(&'static str);

#[respond]
async fn measure(m: Arc<Measure>) -> Result<usize, String> {
    tokio::task::yield_now().await;
    if m.0.is_empty() {
        return Err("nothing to measure".to_owned());
    }
    Ok(m.0.len())
}

#[tokio::test]
async fn a_declared_responder_answers_on_the_default_linker() {
    let emitter = pyventus::EventEmitter::builder()
        .processor(TokioProcessingService::default())
        .build();
    let hello = emitter.request(Greet { name: "Ada" }).timeout(SECOND).await;
    assert_eq!(hello.as_deref(), Ok("Hello, Ada!"));
    let length = emitter.request(Measure("four")).timeout(SECOND).await;
    assert_eq!(length, Ok(4));
    let err = emitter
        .request(Measure(""))
        .timeout(SECOND)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RequestError::Responder {
            request: "Measure",
            error: "nothing to measure".to_owned()
        }
    );
    // Still plain functions.
    assert_eq!(greet(&Greet { name: "Bo" }).unwrap(), "Hello, Bo!");
    let linker = EventLinker::global();
    assert_eq!(linker.handler(concat!(module_path!(), "::greet")).len(), 1);
}

#[tokio::test]
async fn a_runtime_responder_beside_a_declared_one_is_refused() {
    let linker = EventLinker::isolated_global().unwrap();
    let err = linker
        .respond(|_: &Greet| Ok("again".to_owned()))
        .unwrap_err();
    let Error::TwoResponders { existing, .. } = &err else {
        panic!("expected TwoResponders, got {err}");
    };
    assert_eq!(existing, &format!("`{}::greet`", module_path!()));
}

#[derive(pyventus::Linker)]
struct Doubled;

#[derive(Debug, Event, Request)]
#[request(response = u8)]
struct Twice;

#[respond(linker = Doubled)]
fn first_answer(_: &Twice) -> Result<u8, std::convert::Infallible> {
    Ok(1)
}

#[respond(linker = Doubled)]
fn second_answer(_: &Twice) -> Result<u8, std::convert::Infallible> {
    Ok(2)
}

#[test]
fn two_declared_responders_of_one_request_are_reported_by_verify() {
    let err = pyventus::verify().unwrap_err();
    let failures = err.failures();
    assert_eq!(failures.len(), 1, "{err}");
    let (namespace, error) = &failures[0];
    assert!(namespace.ends_with("Doubled"), "{namespace}");
    assert!(
        matches!(error, Error::TwoResponders { request, .. } if request == "Twice"),
        "{error}"
    );
    assert!(err.to_string().contains("second_answer"), "{err}");
}

#[tokio::test]
async fn a_request_on_a_thread_pool_is_answered_from_a_pool_thread() {
    let linker = EventLinker::new();
    let caller = std::thread::current().id();
    let elsewhere = Arc::new(AtomicUsize::new(0));
    let e = elsewhere.clone();
    linker
        .respond(move |q: &GetQuote| {
            if std::thread::current().id() != caller {
                e.fetch_add(1, SeqCst);
            }
            quote(q)
        })
        .unwrap();
    let pool = ExecutorProcessingService::with_threads(2);
    let answer = emitter(&linker, pool.clone())
        .request(GetQuote {
            symbol: "ACME",
            n: 4,
        })
        .timeout(SECOND)
        .await;
    assert_eq!(answer, Ok(8));
    assert_eq!(
        elsewhere.load(SeqCst),
        1,
        "the responder ran on the caller's thread"
    );
    pool.shutdown(true);
}

#[derive(Debug, Event, Request)]
#[request(response = u32, error = anyhow::Error)]
struct Parse(&'static str);

/// What a caller with `anyhow` writes: `?` on a request whose responder
/// fails with `anyhow::Error`.
async fn parse(emitter: &pyventus::EventEmitter, text: &'static str) -> anyhow::Result<u32> {
    Ok(emitter.request(Parse(text)).timeout(SECOND).await?)
}

#[tokio::test]
async fn a_request_error_goes_into_anyhow_with_its_responders_error_in_the_message() {
    let linker = EventLinker::new();
    linker.respond(|p: &Parse| Ok(p.0.parse::<u32>()?)).unwrap();
    let emitter = inline(&linker);
    assert_eq!(parse(&emitter, "42").await.unwrap(), 42);
    let err = parse(&emitter, "forty-two").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the responder of `Parse` failed: invalid digit"),
        "{err}"
    );
    let request_error = err.downcast_ref::<RequestError<anyhow::Error>>().unwrap();
    assert!(request_error.responder_error().is_some());
    // A panic keeps its source.
    let panicked = emitter_panic().await;
    let source = std::error::Error::source(&panicked).expect("the panic");
    assert_eq!(
        source.to_string(),
        "handler panicked: the quote service fell over"
    );
}

async fn emitter_panic() -> RequestError<QuoteError> {
    let linker = EventLinker::new();
    linker.respond(quote).unwrap();
    inline(&linker)
        .request(GetQuote {
            symbol: "PANIC",
            n: 1,
        })
        .timeout(SECOND)
        .await
        .unwrap_err()
}
