//! Handlers that take more than their event: `State<T>`, a value provided once
//! to the linker (axum's `State`, apalis's `Data`), and the emission being
//! delivered; a state nobody provided is an error at each delivery and in
//! `verify()`, never a silent skip. Each test uses a namespace of its own.

// Handlers take their extractors by value, as axum's do; and the `Result`
// handlers here show that a fallible handler's output reaches its callbacks.
#![allow(clippy::needless_pass_by_value, clippy::unnecessary_wraps)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyventus::{
    CurrentEmission, Error, Event, EventEmitter, EventLinker, InlineProcessingService, Linker,
    State, TokioProcessingService, on, on_failure,
};

/// A stand-in for a database pool: what handlers share.
#[derive(Debug, Default)]
struct Ledger {
    entries: Mutex<Vec<String>>,
    total: AtomicU64,
}

impl Ledger {
    fn record(&self, entry: String) {
        self.entries.lock().unwrap().push(entry);
    }

    fn entries(&self) -> Vec<String> {
        let mut entries = self.entries.lock().unwrap().clone();
        entries.sort();
        entries
    }
}

/// Configuration, a second state.
#[derive(Debug)]
struct Currency(&'static str);

#[derive(Debug, Clone, Event)]
struct OrderPlaced {
    id: u64,
    cents: u64,
}

// --- State in every handler form.

#[derive(Linker)]
struct Shop;

#[on(OrderPlaced, linker = Shop)]
fn record_by_ref(e: &OrderPlaced, ledger: State<Ledger>, currency: State<Currency>) {
    // `State` derefs to the value (its field `.0` is the `Arc`).
    let Currency(code) = &*currency;
    ledger.record(format!("ref {} {code}", e.id));
}

#[on(OrderPlaced, linker = Shop)]
fn record_by_value(e: OrderPlaced, State(ledger): State<Ledger>) -> anyhow::Result<u64> {
    ledger.total.fetch_add(e.cents, Ordering::SeqCst);
    ledger.record(format!("value {}", e.id));
    Ok(e.cents)
}

#[on(OrderPlaced, linker = Shop)]
fn record_shared(e: Arc<OrderPlaced>, ledger: State<Ledger>) {
    ledger.record(format!("shared {}", e.id));
}

#[on(OrderPlaced, linker = Shop)]
async fn record_async(e: Arc<OrderPlaced>, ledger: State<Ledger>) {
    tokio::task::yield_now().await;
    ledger.record(format!("async {}", e.id));
}

#[on(OrderPlaced, linker = Shop, inline)]
fn record_inline(e: &OrderPlaced, ledger: State<Ledger>) {
    ledger.record(format!("inline {}", e.id));
}

/// Provides `Shop`'s states once, as a program does at startup: every test
/// that looks at the process-wide linkers (`verify()`) sees them provided,
/// whichever test runs first.
fn shop() -> (EventLinker, Arc<Ledger>) {
    static LEDGER: std::sync::OnceLock<Arc<Ledger>> = std::sync::OnceLock::new();
    let linker = Shop::linker();
    let ledger = LEDGER.get_or_init(|| {
        let ledger = Arc::new(Ledger::default());
        linker
            .provide_shared(ledger.clone())
            .provide(Currency("EUR"));
        ledger
    });
    (linker, ledger.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_of_every_form_get_the_state_provided_to_their_linker() {
    let (linker, ledger) = shop();
    assert!(linker.missing_states().is_empty());
    for processor in [
        Arc::new(InlineProcessingService::new()) as Arc<dyn pyventus::ProcessingService>,
        Arc::new(TokioProcessingService::default()),
    ] {
        let emitter = EventEmitter::builder()
            .processor(processor)
            .linker(linker.clone())
            .build();
        emitter
            .emit_and_wait(OrderPlaced { id: 7, cents: 250 })
            .await
            .unwrap();
        assert_eq!(
            ledger.entries(),
            ["async 7", "inline 7", "ref 7 EUR", "shared 7", "value 7"]
        );
        ledger.entries.lock().unwrap().clear();
    }
    assert_eq!(ledger.total.load(Ordering::SeqCst), 500);
}

// --- A state nobody provided.

#[derive(Linker)]
struct Unprovided;

#[derive(Debug, Clone, Event)]
struct Audit;

#[on(Audit, linker = Unprovided)]
fn audit(_: &Audit, _ledger: State<Ledger>) {
    panic!("an unprovided state must fail the delivery before the handler runs");
}

static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[on_failure(audit)]
fn audit_failed(err: &anyhow::Error) {
    FAILURES.lock().unwrap().push(err.to_string());
}

#[test]
fn a_state_nobody_provided_fails_each_delivery_with_a_clear_error() {
    let linker = Unprovided::linker();
    assert_eq!(
        linker.missing_states(),
        [("state::audit".to_owned(), std::any::type_name::<Ledger>())]
    );
    let emitter = EventEmitter::builder()
        .processor(InlineProcessingService::new())
        .linker(linker)
        .build();
    emitter.emit(Audit).unwrap();
    let failures = std::mem::take(&mut *FAILURES.lock().unwrap());
    assert_eq!(failures.len(), 1, "{failures:?}");
    let expected = format!(
        "no `{}` was provided to the linker",
        std::any::type_name::<Ledger>()
    );
    assert!(failures[0].contains(&expected), "{failures:?}");
    assert!(failures[0].contains("Unprovided"), "{failures:?}");
}

#[test]
fn verify_reports_a_state_nobody_provided_before_the_first_emit() {
    // `Shop`'s states are provided at "startup"; `Unprovided`'s never are.
    shop();
    let err = pyventus::verify().unwrap_err();
    let missing: Vec<_> = err
        .failures()
        .iter()
        .filter(|(_, error)| matches!(error, Error::MissingState { .. }))
        .collect();
    assert_eq!(missing.len(), 1, "{err}");
    let (linker, error) = missing[0];
    assert!(linker.ends_with("Unprovided"), "{err}");
    assert!(
        error.to_string().contains("provide"),
        "the message says what to do: {error}"
    );
}

// --- Runtime API.

#[test]
fn a_linker_hands_back_what_was_provided_and_the_last_value_of_a_type_wins() {
    let linker = EventLinker::builder().state(Currency("USD")).build();
    assert_eq!(linker.state::<Currency>().unwrap().0, "USD");
    linker.provide(Currency("JPY"));
    assert_eq!(linker.state::<Currency>().unwrap().0, "JPY");
    assert!(linker.state::<Ledger>().is_none());
    // Closures capture what they need: no state is missing for them.
    linker.on::<Audit>().subscribe(|| {}).unwrap();
    assert!(linker.missing_states().is_empty());
}

/// A state whose `Drop` provides again: user code, run when a later value
/// replaces it.
struct ProvidesOnDrop(EventLinker);

impl Drop for ProvidesOnDrop {
    fn drop(&mut self) {
        self.0.provide(Currency("dropped"));
    }
}

#[test]
fn a_replaced_state_drops_outside_the_linkers_lock() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let linker = EventLinker::new();
        linker.provide(ProvidesOnDrop(linker.clone()));
        // Replacing it drops the first value, whose `Drop` provides: under a
        // lock held across the drop, this would deadlock.
        linker.provide(ProvidesOnDrop(EventLinker::new()));
        done.send(linker.state::<Currency>().map(|c| c.0)).unwrap();
    });
    let provided = finished
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("providing a state deadlocked in the replaced value's Drop");
    assert_eq!(provided, Some("dropped"));
}

// --- The emission being delivered.

#[derive(Linker)]
struct Traced;

static EMISSIONS: Mutex<Vec<Option<u64>>> = Mutex::new(Vec::new());

#[on(OrderPlaced, linker = Traced)]
async fn note_emission(_: Arc<OrderPlaced>, emission: Option<CurrentEmission>) {
    // Taken before the first await, and still the one it runs in after it.
    tokio::task::yield_now().await;
    EMISSIONS.lock().unwrap().push(emission.map(|e| e.id()));
}

#[tokio::test]
async fn a_handler_can_take_the_emission_it_runs_in() {
    let emitter = EventEmitter::builder()
        .processor(TokioProcessingService::default())
        .linker(Traced::linker())
        .build();
    emitter
        .emit_and_wait(OrderPlaced { id: 1, cents: 1 })
        .await
        .unwrap();
    let seen = std::mem::take(&mut *EMISSIONS.lock().unwrap());
    assert!(matches!(seen.as_slice(), [Some(id)] if *id > 0), "{seen:?}");
}
