//! Resilient handlers on every in-process processing service (inline, tokio,
//! ordered tokio, the thread pool, and axum with `--features axum`): retries
//! that rerun only the failed handler under the same emission, exhaustion
//! reaching the failure callback and the dead-letter sink once, timeouts that
//! cancel async handlers, and concurrency limits with wait or refuse.

mod common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyventus::resilience::{Busy, DeadLetter, Exhausted, FailureReason, Policy, Refused, TimedOut};
use pyventus::{
    Error, EventLinker, ExecutorProcessingService, HandlerPanic, Linker, TokioProcessingService,
    current_emission, on, on_failure,
};

const MS: Duration = Duration::from_millis(1);

/// The processing services a policy means the same on.
#[derive(Clone, Copy, Debug)]
enum Service {
    Inline,
    Tokio,
    OrderedTokio,
    Executor,
    #[cfg(feature = "axum")]
    Axum,
}

fn services() -> Vec<Service> {
    #[allow(unused_mut)]
    let mut all = vec![
        Service::Inline,
        Service::Tokio,
        Service::OrderedTokio,
        Service::Executor,
    ];
    #[cfg(feature = "axum")]
    all.push(Service::Axum);
    all
}

/// Emits `count` `Job`s (payloads `0..count`) on `linker` through `service`,
/// then waits until every one has finished, retries included.
async fn emit_jobs(service: Service, linker: &EventLinker, count: u32) {
    match service {
        Service::Inline => {
            let emitter = common::inline(linker);
            tokio::task::block_in_place(|| {
                for i in 0..count {
                    emitter.emit_named("Job", i).unwrap();
                }
            });
        }
        Service::Tokio | Service::OrderedTokio => {
            let tokio = TokioProcessingService::builder()
                .enforce_submission_order(matches!(service, Service::OrderedTokio))
                .build();
            let emitter = common::emitter(linker, tokio.clone());
            for i in 0..count {
                emitter.emit_named("Job", i).unwrap();
            }
            tokio.wait_for_tasks().await.unwrap();
        }
        Service::Executor => {
            let pool = ExecutorProcessingService::with_threads(2);
            let emitter = common::emitter(linker, pool.clone());
            tokio::task::block_in_place(|| {
                for i in 0..count {
                    emitter.emit_named("Job", i).unwrap();
                }
                pool.wait_for_tasks().unwrap();
            });
        }
        #[cfg(feature = "axum")]
        Service::Axum => via_axum::emit_jobs(linker, count).await,
    }
}

#[cfg(feature = "axum")]
mod via_axum {
    use axum::Router;
    use axum::body::Bytes;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use pyventus::EventLinker;
    use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};
    use std::time::Duration;

    /// One request whose handler emits the jobs; they run after its response.
    pub(super) async fn emit_jobs(linker: &EventLinker, count: u32) {
        let layer = BackgroundEmitterLayer::new().linker(linker.clone());
        let app = Router::new()
            .route(
                "/",
                get(move |emitter: BackgroundEmitter| async move {
                    for i in 0..count {
                        emitter.emit_named("Job", i).unwrap();
                    }
                    "queued"
                }),
            )
            .layer(layer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<Bytes>>();
        let response = client
            .get(format!("http://{addr}/").parse().unwrap())
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.into_body().collect().await.unwrap();
        layer.close();
        tokio::time::timeout(Duration::from_mins(1), layer.wait())
            .await
            .expect("the layer did not drain");
    }
}

/// What a failure callback and a dead-letter sink saw.
#[derive(Default)]
struct Seen {
    failures: Mutex<Vec<(Option<Exhausted>, String)>>,
    letters: Mutex<Vec<(u32, Exhausted)>>,
}

impl Seen {
    fn linker(self: &Arc<Self>) -> EventLinker {
        let seen = self.clone();
        EventLinker::builder()
            .debug(false)
            .dead_letters(move |letter: &DeadLetter<'_>| {
                let job = *letter.event().downcast_ref::<u32>().unwrap();
                seen.letters.lock().unwrap().push((job, letter.exhausted()));
            })
            .build()
    }

    fn failure(self: &Arc<Self>) -> impl Fn(&anyhow::Error) + Send + Sync + 'static {
        let seen = self.clone();
        move |err: &anyhow::Error| {
            seen.failures
                .lock()
                .unwrap()
                .push((err.downcast_ref::<Exhausted>().copied(), format!("{err:#}")));
        }
    }
}

fn quick_retries(retries: u32) -> Policy {
    Policy::new().retries(retries).backoff(MS, 5 * MS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_failing_twice_then_succeeding_runs_three_times_and_its_sibling_once() {
    for service in services() {
        for asynchronous in [false, true] {
            let seen = Arc::new(Seen::default());
            let linker = seen.linker();
            let sibling = Arc::new(AtomicU32::new(0));
            let runs = Arc::new(AtomicU32::new(0));
            let emissions = Arc::new(Mutex::new(Vec::new()));
            let successes = Arc::new(AtomicU32::new(0));

            let counter = sibling.clone();
            linker
                .on_named("Job")
                .subscribe(move || counter.fetch_add(1, Ordering::SeqCst))
                .unwrap();
            // A sibling with a policy of its own, which succeeds at once: it
            // is never run again for this emission.
            let steady = Arc::new(AtomicU32::new(0));
            let counter = steady.clone();
            linker
                .on_named("Job")
                .policy(quick_retries(3))
                .subscribe(move || counter.fetch_add(1, Ordering::SeqCst))
                .unwrap();
            let flaky = {
                let (runs, emissions) = (runs.clone(), emissions.clone());
                move || -> anyhow::Result<u32> {
                    emissions
                        .lock()
                        .unwrap()
                        .push(current_emission().unwrap().id());
                    match runs.fetch_add(1, Ordering::SeqCst) + 1 {
                        n @ 1..=2 => anyhow::bail!("attempt {n} fails"),
                        n => Ok(n),
                    }
                }
            };
            let succeeded = successes.clone();
            let subscription = linker
                .on_named("Job")
                .policy(quick_retries(3))
                .on_success(move |n: u32| {
                    assert_eq!(n, 3);
                    succeeded.fetch_add(1, Ordering::SeqCst);
                })
                .on_failure(seen.failure());
            if asynchronous {
                subscription
                    .subscribe_async(move || {
                        let result = flaky();
                        async move { result }
                    })
                    .unwrap();
            } else {
                subscription.subscribe(flaky).unwrap();
            }

            emit_jobs(service, &linker, 1).await;

            let what = format!("{service:?}, async: {asynchronous}");
            assert_eq!(runs.load(Ordering::SeqCst), 3, "{what}");
            assert_eq!(
                sibling.load(Ordering::SeqCst),
                1,
                "{what}: the sibling ran once"
            );
            assert_eq!(
                steady.load(Ordering::SeqCst),
                1,
                "{what}: so did the one with a policy"
            );
            assert_eq!(successes.load(Ordering::SeqCst), 1, "{what}: one success");
            assert!(seen.failures.lock().unwrap().is_empty(), "{what}");
            assert!(seen.letters.lock().unwrap().is_empty(), "{what}");
            let emissions = emissions.lock().unwrap();
            assert_eq!(emissions.len(), 3, "{what}");
            assert!(
                emissions.iter().all(|id| *id == emissions[0]),
                "{what}: every attempt runs as the same emission: {emissions:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_that_always_fails_reaches_its_failure_callback_and_the_sink_once() {
    for service in services() {
        for panics in [false, true] {
            let seen = Arc::new(Seen::default());
            let linker = seen.linker();
            let runs = Arc::new(AtomicU32::new(0));
            let counted = runs.clone();
            linker
                .on_named("Job")
                .policy(quick_retries(2))
                .on_failure(seen.failure())
                .subscribe(move |_: &u32| -> anyhow::Result<()> {
                    counted.fetch_add(1, Ordering::SeqCst);
                    assert!(!panics, "the handler panics");
                    anyhow::bail!("always fails")
                })
                .unwrap();

            emit_jobs(service, &linker, 1).await;

            let what = format!("{service:?}, panics: {panics}");
            let reason = if panics {
                FailureReason::Panicked
            } else {
                FailureReason::Failed
            };
            assert_eq!(runs.load(Ordering::SeqCst), 3, "{what}: 1 + 2 retries");
            let failures = seen.failures.lock().unwrap();
            assert_eq!(failures.len(), 1, "{what}: the callback ran once");
            let exhausted = failures[0].0.expect("the error carries `Exhausted`");
            assert_eq!(
                (exhausted.attempts(), exhausted.reason()),
                (3, reason),
                "{what}"
            );
            let expected = if panics {
                "gave up after 3 attempts (panicked): handler panicked: the handler panics"
            } else {
                "gave up after 3 attempts (failed): always fails"
            };
            assert_eq!(failures[0].1, expected, "{what}");
            assert_eq!(
                *seen.letters.lock().unwrap(),
                [(0, exhausted)],
                "{what}: the sink got the event once"
            );
        }
    }
}

#[test]
fn the_last_error_keeps_its_type_under_the_exhausted_context() {
    let linker = EventLinker::new();
    let panicked = Arc::new(AtomicU32::new(0));
    let seen = panicked.clone();
    linker
        .on_named("Job")
        .policy(quick_retries(1))
        .on_failure(move |err: &anyhow::Error| {
            assert!(err.downcast_ref::<HandlerPanic>().is_some());
            assert!(err.downcast_ref::<Exhausted>().is_some());
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .subscribe(|| -> () { panic!("boom") })
        .unwrap();
    common::inline(&linker).emit_named("Job", 0_u32).unwrap();
    assert_eq!(panicked.load(Ordering::SeqCst), 1);
}

/// Records when the future holding it is dropped.
struct DroppedAt(Arc<Mutex<Option<Instant>>>);

impl Drop for DroppedAt {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_async_handler_is_cancelled_at_its_deadline() {
    const TIMEOUT: Duration = Duration::from_millis(100);
    for service in services() {
        let seen = Arc::new(Seen::default());
        let linker = seen.linker();
        let started = Arc::new(Mutex::new(None));
        let dropped = Arc::new(Mutex::new(None));
        let finished = Arc::new(AtomicU32::new(0));
        let (start, drop_at, done) = (started.clone(), dropped.clone(), finished.clone());
        linker
            .on_named("Job")
            .timeout(TIMEOUT)
            .on_failure(seen.failure())
            .subscribe_async(move || {
                let (start, drop_at, done) = (start.clone(), drop_at.clone(), done.clone());
                async move {
                    *start.lock().unwrap() = Some(Instant::now());
                    let _guard = DroppedAt(drop_at);
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();

        let emitted = Instant::now();
        emit_jobs(service, &linker, 1).await;

        let started = started.lock().unwrap().expect("the handler started");
        let dropped = dropped.lock().unwrap().expect("the handler was cancelled");
        let late = dropped.duration_since(started).saturating_sub(TIMEOUT);
        eprintln!("{service:?}: cancelled {late:?} after its deadline");
        assert!(
            dropped.duration_since(started) + MS >= TIMEOUT,
            "{service:?}: not before it"
        );
        // 50 ms on an idle machine; generous for a loaded CI runner.
        assert!(
            late < Duration::from_millis(500),
            "{service:?}: {late:?} late"
        );
        assert!(
            emitted.elapsed() < Duration::from_secs(5),
            "{service:?}: nobody waited 10 s"
        );
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "{service:?}: it never finished"
        );
        let failures = seen.failures.lock().unwrap();
        let exhausted = failures[0].0.unwrap();
        assert_eq!(
            (exhausted.attempts(), exhausted.reason()),
            (1, FailureReason::TimedOut),
            "{service:?}"
        );
        assert_eq!(
            failures[0].1,
            "gave up after 1 attempt (timed out): timed out after 100ms"
        );
        assert_eq!(seen.letters.lock().unwrap().len(), 1, "{service:?}");
    }
}

#[test]
fn a_timeout_on_a_synchronous_handler_is_refused_at_subscription() {
    let linker = EventLinker::new();
    let err = linker
        .on_named("Job")
        .timeout(Duration::from_secs(1))
        .subscribe(|| ())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSetting {
                setting: "timeout",
                ..
            }
        ),
        "{err}"
    );
    assert!(linker.is_empty(), "nothing was subscribed");
    let err = linker
        .on_named("Job")
        .concurrency(0, Busy::Wait)
        .subscribe(|| ())
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidSetting {
            setting: "concurrency",
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrency_limit_of_four_bounds_a_thousand_emissions_in_flight() {
    for service in services() {
        let linker = EventLinker::builder().debug(false).build();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let high_water = Arc::new(AtomicUsize::new(0));
        let completed = Arc::new(AtomicUsize::new(0));
        let (now, most, done) = (in_flight.clone(), high_water.clone(), completed.clone());
        linker
            .on_named("Job")
            .concurrency(4, Busy::Wait)
            .subscribe_async(move || {
                let (now, most, done) = (now.clone(), most.clone(), done.clone());
                async move {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();

        emit_jobs(service, &linker, 1_000).await;

        let most = high_water.load(Ordering::SeqCst);
        eprintln!("{service:?}: at most {most} runs in flight");
        assert_eq!(completed.load(Ordering::SeqCst), 1_000, "{service:?}");
        assert!(most <= 4, "{service:?}: {most} runs in flight");
        if matches!(service, Service::Tokio) {
            assert!(most > 1, "tasks run concurrently up to the limit: {most}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusing_when_busy_fails_the_deliveries_beyond_the_limit() {
    let seen = Arc::new(Seen::default());
    let linker = seen.linker();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let runs = Arc::new(AtomicU32::new(0));
    let (opened, counted) = (gate.clone(), runs.clone());
    linker
        .on_named("Job")
        .concurrency(1, Busy::Refuse)
        .on_failure(seen.failure())
        .subscribe_async(move || {
            let (opened, counted) = (opened.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = opened.acquire().await.unwrap();
            }
        })
        .unwrap();
    let tokio = TokioProcessingService::default();
    let emitter = common::emitter(&linker, tokio.clone());
    emitter.emit_named("Job", 0_u32).unwrap();
    // The first run holds the one slot...
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(MS).await;
    }
    for i in 1..5_u32 {
        emitter.emit_named("Job", i).unwrap();
    }
    // ...so the next four are refused, each at once.
    while seen.letters.lock().unwrap().len() < 4 {
        tokio::time::sleep(MS).await;
    }
    gate.add_permits(1);
    tokio.wait_for_tasks().await.unwrap();

    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let failures = seen.failures.lock().unwrap();
    assert_eq!(failures.len(), 4);
    for (exhausted, message) in failures.iter() {
        let exhausted = exhausted.unwrap();
        assert_eq!(
            (exhausted.attempts(), exhausted.reason()),
            (0, FailureReason::Refused)
        );
        assert_eq!(
            message,
            "refused before its first attempt: refused: the handler already has 1 run in flight"
        );
    }
    let mut refused: Vec<u32> = seen.letters.lock().unwrap().iter().map(|l| l.0).collect();
    refused.sort_unstable();
    assert_eq!(refused, [1, 2, 3, 4]);
    let _ = Refused::limit; // the error underneath, for a callback that wants the limit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_all_waits_for_retries_still_scheduled() {
    let linker = EventLinker::builder().debug(false).build();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    linker
        .on_named("Job")
        .retries(1)
        .backoff(300 * MS, 300 * MS)
        .subscribe_async(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    anyhow::bail!("first attempt fails");
                }
                Ok(())
            }
        })
        .unwrap();
    let emitter = common::emitter(&linker, TokioProcessingService::default());
    let start = Instant::now();
    emitter.emit_named("Job", 0_u32).unwrap();
    pyventus::wait_for_all().await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the retry ran before the wait returned"
    );
    assert!(
        start.elapsed() >= 150 * MS,
        "after its backoff (jittered down to half)"
    );
}

#[test]
fn a_handler_that_emits_from_inside_its_attempt_does_not_confuse_the_retry_loop() {
    // The inner handler fails on the same thread while the outer one's attempt
    // runs: it reaches its own callback, once, with no `Exhausted` context.
    let seen = Arc::new(Seen::default());
    let linker = seen.linker();
    let inner_failures = Arc::new(Mutex::new(Vec::new()));
    let recorded = inner_failures.clone();
    linker
        .on_named("Inner")
        .on_failure(move |err: &anyhow::Error| {
            recorded
                .lock()
                .unwrap()
                .push(err.downcast_ref::<Exhausted>().is_some());
        })
        .subscribe(|| -> anyhow::Result<()> { anyhow::bail!("inner fails") })
        .unwrap();
    let emitter = common::inline(&linker);
    let runs = Arc::new(AtomicU32::new(0));
    let (inner, counted) = (emitter.clone(), runs.clone());
    linker
        .on_named("Job")
        .policy(quick_retries(1))
        .on_failure(seen.failure())
        .subscribe(move |_: &u32| -> anyhow::Result<()> {
            counted.fetch_add(1, Ordering::SeqCst);
            inner.emit_named("Inner", ()).unwrap();
            anyhow::bail!("outer fails")
        })
        .unwrap();
    emitter.emit_named("Job", 9_u32).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(*inner_failures.lock().unwrap(), [false, false]);
    assert_eq!(seen.failures.lock().unwrap().len(), 1);
    assert_eq!(seen.letters.lock().unwrap().len(), 1);
}

// Declared handlers: the attribute's policy, in a namespace of this test's own.

#[derive(Linker)]
struct Declared;

static DECLARED_RUNS: AtomicU32 = AtomicU32::new(0);
static DECLARED_FAILURES: Mutex<Vec<(u32, FailureReason)>> = Mutex::new(Vec::new());

#[on("Flaky", linker = Declared, retries = 3, backoff = "1ms..4ms")]
fn flaky_declared() -> anyhow::Result<()> {
    match DECLARED_RUNS.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => anyhow::bail!("not yet"),
        _ => Ok(()),
    }
}

#[on("Slow", linker = Declared, timeout = "50ms", concurrency = 2, busy = wait)]
async fn slow_declared() {
    tokio::time::sleep(Duration::from_secs(10)).await;
}

#[on_failure(slow_declared)]
fn slow_declared_failed(err: &anyhow::Error) {
    let exhausted = err.downcast_ref::<Exhausted>().unwrap();
    assert!(err.root_cause().downcast_ref::<TimedOut>().is_some());
    DECLARED_FAILURES
        .lock()
        .unwrap()
        .push((exhausted.attempts(), exhausted.reason()));
}

#[test]
fn declared_policies_retry_and_time_out_as_runtime_ones_do() {
    let emitter = common::inline(&Declared::linker());
    emitter.emit_named("Flaky", ()).unwrap();
    assert_eq!(DECLARED_RUNS.load(Ordering::SeqCst), 3);

    let started = Instant::now();
    emitter.emit_named("Slow", ()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        *DECLARED_FAILURES.lock().unwrap(),
        [(1, FailureReason::TimedOut)]
    );
}

// Linker defaults: a policy for every handler without one of its own.

#[test]
fn a_linkers_default_policy_applies_to_handlers_without_their_own() {
    let seen = Arc::new(Seen::default());
    let linker = EventLinker::builder()
        .debug(false)
        .default_policy(
            Policy::new()
                .retries(2)
                .backoff(Duration::ZERO, Duration::ZERO)
                .timeout(Duration::from_secs(5)),
        )
        .build();
    let (defaulted, own) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let counted = defaulted.clone();
    // Synchronous: the default's timeout is left out, not refused.
    linker
        .on_named("Job")
        .on_failure(seen.failure())
        .subscribe(move || -> anyhow::Result<()> {
            counted.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("fails")
        })
        .unwrap();
    let counted = own.clone();
    linker
        .on_named("Job")
        .retries(1)
        .backoff(Duration::ZERO, Duration::ZERO)
        .subscribe(move || -> anyhow::Result<()> {
            counted.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("fails")
        })
        .unwrap();
    common::inline(&linker).emit_named("Job", 0_u32).unwrap();
    assert_eq!(
        defaulted.load(Ordering::SeqCst),
        3,
        "the default: 1 + 2 retries"
    );
    assert_eq!(own.load(Ordering::SeqCst), 2, "its own: 1 + 1 retry");
    assert_eq!(seen.failures.lock().unwrap()[0].0.unwrap().attempts(), 3);

    let err = EventLinker::builder()
        .default_policy(Policy::new().concurrency(0))
        .try_build()
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidSetting {
            setting: "concurrency",
            ..
        }
    ));
}

#[derive(Linker)]
#[linker(retries = 2, backoff = "1ms", timeout = "50ms")]
struct Defaulted;

static DEFAULTED_RUNS: AtomicU32 = AtomicU32::new(0);
static DEFAULTED_TIMEOUTS: AtomicU32 = AtomicU32::new(0);

#[on("Flaky", linker = Defaulted)]
fn defaulted_flaky() -> anyhow::Result<()> {
    match DEFAULTED_RUNS.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => anyhow::bail!("not yet"),
        _ => Ok(()),
    }
}

#[on("Slow", linker = Defaulted)]
async fn defaulted_slow() {
    tokio::time::sleep(Duration::from_secs(10)).await;
}

#[on_failure(defaulted_slow)]
fn defaulted_slow_failed(err: &anyhow::Error) {
    let exhausted = err.downcast_ref::<Exhausted>().unwrap();
    assert_eq!(
        (exhausted.attempts(), exhausted.reason()),
        (3, FailureReason::TimedOut)
    );
    DEFAULTED_TIMEOUTS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_namespaces_default_policy_applies_to_its_declared_handlers() {
    let emitter = common::inline(&Defaulted::linker());
    emitter.emit_named("Flaky", ()).unwrap();
    assert_eq!(DEFAULTED_RUNS.load(Ordering::SeqCst), 3);
    let started = Instant::now();
    emitter.emit_named("Slow", ()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "three 50 ms attempts"
    );
    assert_eq!(DEFAULTED_TIMEOUTS.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocking_handler_with_a_policy_keeps_its_attempts_off_the_runtime_thread() {
    let linker = EventLinker::builder().debug(false).build();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    linker
        .on_named("Job")
        .blocking()
        .policy(quick_retries(1))
        .subscribe(move || -> anyhow::Result<()> {
            // Blocks its thread: were it the runtime's only one, the ticker
            // below could not tick meanwhile.
            std::thread::sleep(Duration::from_millis(100));
            match counted.fetch_add(1, Ordering::SeqCst) {
                0 => anyhow::bail!("first attempt fails"),
                _ => Ok(()),
            }
        })
        .unwrap();
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(5 * MS).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let tokio = TokioProcessingService::default();
    common::emitter(&linker, tokio.clone())
        .emit_named("Job", 0_u32)
        .unwrap();
    tokio.wait_for_tasks().await.unwrap();
    ticker.abort();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let counted_ticks = ticks.load(Ordering::SeqCst);
    assert!(
        counted_ticks >= 10,
        "the runtime kept ticking through 200 ms of attempts: {counted_ticks}"
    );
}

#[derive(Debug, pyventus::Event)]
struct Ping;

#[test]
fn a_retry_whose_runtime_shuts_down_mid_backoff_is_reported_lost() {
    let linker = EventLinker::builder().debug(false).build();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    linker
        .on::<Ping>()
        .retries(3)
        .backoff(Duration::from_secs(30), Duration::from_secs(30))
        .subscribe(move || -> anyhow::Result<()> {
            counted.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("down")
        })
        .unwrap();
    let mut emission = pyventus::EventEmission::resolve(&linker, Arc::new(Ping)).unwrap();
    let done = emission.completion();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(emission.run());
    // The first attempt fails; its retry waits 30 s when the runtime goes.
    runtime.block_on(async {
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(MS).await;
        }
        tokio::time::sleep(20 * MS).await;
    });
    drop(runtime);
    assert_eq!(
        pyventus::runtime::block_on(done),
        Err(Error::EmissionDropped)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
