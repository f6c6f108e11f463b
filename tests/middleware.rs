//! Middleware around handlers: observing and timing each attempt, rejecting
//! deliveries, a linker's middleware around its subscriptions' own, and
//! panics contained.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyventus::resilience::{DeadLetter, Delivery, Exhausted, FailureReason, Middleware, Rejected};
use pyventus::{EventLinker, TokioProcessingService, current_emission};

/// Records every call it gets, under its name.
struct Recorder {
    name: &'static str,
    calls: Arc<Mutex<Vec<String>>>,
    emissions: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Recorder {
    fn new(name: &'static str, calls: &Arc<Mutex<Vec<String>>>) -> Self {
        Recorder {
            name,
            calls: calls.clone(),
            emissions: Arc::default(),
        }
    }
}

impl Middleware for Recorder {
    fn before(&self, delivery: &Delivery<'_>) -> anyhow::Result<()> {
        let current = current_emission().expect("in the delivery's context").id();
        self.emissions
            .lock()
            .unwrap()
            .push((current, delivery.emission_id()));
        self.calls.lock().unwrap().push(format!(
            "{} before {}/{}",
            self.name,
            delivery.attempt(),
            delivery.max_attempts()
        ));
        Ok(())
    }

    fn after(&self, delivery: &Delivery<'_>, outcome: Result<(), &anyhow::Error>, took: Duration) {
        assert!(took < Duration::from_secs(5));
        self.calls.lock().unwrap().push(format!(
            "{} after {} {}",
            self.name,
            delivery.attempt(),
            if outcome.is_ok() { "ok" } else { "failed" }
        ));
    }
}

fn flaky_once() -> impl Fn() -> anyhow::Result<()> + Send + Sync + 'static {
    let runs = AtomicU32::new(0);
    move || match runs.fetch_add(1, Ordering::SeqCst) {
        0 => anyhow::bail!("first attempt fails"),
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_sees_each_attempt_with_its_outcome_on_inline_and_tokio() {
    for on_tokio in [false, true] {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::new(Recorder::new("timing", &calls));
        let linker = EventLinker::builder().debug(false).build();
        linker
            .on_named("Job")
            .retries(1)
            .backoff(Duration::ZERO, Duration::ZERO)
            .middleware(recorder.clone())
            .subscribe(flaky_once())
            .unwrap();
        if on_tokio {
            let tokio = TokioProcessingService::default();
            common::emitter(&linker, tokio.clone())
                .emit_named("Job", ())
                .unwrap();
            tokio.wait_for_tasks().await.unwrap();
        } else {
            tokio::task::block_in_place(|| common::inline(&linker).emit_named("Job", ()).unwrap());
        }
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "timing before 1/2",
                "timing after 1 failed",
                "timing before 2/2",
                "timing after 2 ok"
            ],
            "tokio: {on_tokio}"
        );
        let emissions = recorder.emissions.lock().unwrap();
        assert!(
            emissions.iter().all(|(current, seen)| current == seen),
            "{emissions:?}"
        );
    }
}

struct Reject;

impl Middleware for Reject {
    fn before(&self, _: &Delivery<'_>) -> anyhow::Result<()> {
        anyhow::bail!("tenant suspended")
    }
}

#[test]
fn rejected_deliveries_never_run_and_reach_the_failure_callback_and_sink_once() {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let parked = letters.clone();
    let linker = EventLinker::builder()
        .dead_letters(move |letter: &DeadLetter<'_>| {
            parked.lock().unwrap().push(letter.exhausted());
        })
        .build();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (seen, runs) = (failures.clone(), Arc::new(AtomicU32::new(0)));
    let counted = runs.clone();
    linker
        .on_named("Job")
        .retries(3)
        .middleware(Reject)
        .on_failure(move |err: &anyhow::Error| {
            assert!(err.downcast_ref::<Rejected>().is_some());
            seen.lock().unwrap().push((
                err.downcast_ref::<Exhausted>().copied().unwrap(),
                format!("{err:#}"),
            ));
        })
        .subscribe(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    common::inline(&linker).emit_named("Job", ()).unwrap();

    assert_eq!(runs.load(Ordering::SeqCst), 0, "the handler never ran");
    let failures = failures.lock().unwrap();
    assert_eq!(failures.len(), 1, "once, not retried");
    assert_eq!(
        (failures[0].0.attempts(), failures[0].0.reason()),
        (0, FailureReason::Rejected)
    );
    assert_eq!(
        failures[0].1,
        "rejected before its first attempt: rejected by middleware: tenant suspended"
    );
    assert_eq!(letters.lock().unwrap().len(), 1);
}

#[test]
fn a_linkers_middleware_wraps_its_subscriptions_own_outermost_first() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let linker = EventLinker::builder()
        .debug(false)
        .middleware(Recorder::new("linker", &calls))
        .build();
    linker
        .on_named("Job")
        .middleware(Recorder::new("own", &calls))
        .subscribe(|| ())
        .unwrap();
    let plain = Arc::new(AtomicU32::new(0));
    let counted = plain.clone();
    // Every runtime subscription of the linker is wrapped, with or without its own.
    linker
        .on_named("Other")
        .subscribe(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let emitter = common::inline(&linker);
    emitter.emit_named("Job", ()).unwrap();
    emitter.emit_named("Other", ()).unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "linker before 1/1",
            "own before 1/1",
            "own after 1 ok",
            "linker after 1 ok",
            "linker before 1/1",
            "linker after 1 ok",
        ]
    );
    assert_eq!(plain.load(Ordering::SeqCst), 1);
}

struct Panics;

impl Middleware for Panics {
    fn after(&self, _: &Delivery<'_>, _: Result<(), &anyhow::Error>, _: Duration) {
        panic!("middleware bug");
    }
}

#[test]
fn a_panicking_middleware_is_contained() {
    let linker = EventLinker::new();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    linker
        .on_named("Job")
        .middleware(Panics)
        .subscribe(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let emitter = common::inline(&linker);
    emitter.emit_named("Job", ()).unwrap();
    emitter.emit_named("Job", ()).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// Enriches each attempt with the tenant its event names.
struct Tenant;

impl Middleware for Tenant {
    fn span(&self, delivery: &Delivery<'_>) -> Option<tracing::Span> {
        let tenant = delivery.event().downcast_ref::<&'static str>()?;
        Some(tracing::info_span!("tenant", name = *tenant))
    }
}

#[test]
fn middleware_enriches_what_the_handler_logs_with_a_span_of_its_own() {
    let linker = EventLinker::builder()
        .debug(false)
        .middleware(Tenant)
        .build();
    linker
        .on_named("Invoice")
        .subscribe(|| tracing::info!("invoice sent"))
        .unwrap();
    let (logs, _capturing) = common::Logs::capture();
    common::inline(&linker)
        .emit_named("Invoice", "acme")
        .unwrap();
    let text = logs.text();
    let line = text
        .lines()
        .find(|line| line.contains("invoice sent"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("tenant{name=\"acme\"}"), "{line}");
    assert!(
        line.find("tenant{").unwrap() < line.find("pyventus.delivery").unwrap_or(usize::MAX),
        "the delivery span is inside the tenant's: {line}"
    );
}

// --- A namespace's middleware, around its declared handlers.

/// Counts the attempts it is asked about, process-wide.
struct CountAttempts;

static WRAPPED: AtomicU32 = AtomicU32::new(0);

impl Middleware for CountAttempts {
    fn before(&self, _: &Delivery<'_>) -> anyhow::Result<()> {
        WRAPPED.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(pyventus::Linker)]
#[linker(middleware = CountAttempts, middleware = Reject)]
struct Suspended;

static SUSPENDED_RUNS: AtomicU32 = AtomicU32::new(0);
static SUSPENDED_FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[pyventus::on("Invoice", linker = Suspended)]
fn bill() {
    SUSPENDED_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[pyventus::on_failure(bill)]
fn bill_failed(err: &anyhow::Error) {
    SUSPENDED_FAILURES.lock().unwrap().push(format!("{err:#}"));
}

#[test]
fn a_namespaces_middleware_wraps_its_declared_handlers() {
    common::inline(&Suspended::linker())
        .emit_named("Invoice", ())
        .unwrap();
    assert_eq!(
        SUSPENDED_RUNS.load(Ordering::SeqCst),
        0,
        "the inner middleware rejected the delivery"
    );
    assert_eq!(
        WRAPPED.load(Ordering::SeqCst),
        1,
        "the outer one was asked first"
    );
    let failures = SUSPENDED_FAILURES.lock().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("tenant suspended"), "{failures:?}");
}
