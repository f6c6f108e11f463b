//! Declared handlers (`#[on]`, `#[once]`, `#[on_success]`, `#[on_failure]`),
//! registered at link time and run through every processor. Each test uses a
//! namespace of its own, so tests never see each other's handlers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::emitter;
use pyventus::{
    AnyEvent, Error, Event, EventEmitter, EventKey, EventLinker, ExecutorProcessingService,
    HandlerPanic, InlineProcessingService, Linker, ProcessingService, TokioProcessingService, on,
    on_failure, on_success, once,
};

#[derive(Debug, Clone, Event)]
struct Order {
    id: u64,
}

#[derive(Debug, Clone, Event)]
struct Refund {
    id: u64,
}

/// What handlers of one test did, in order.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Serializes the tests that use `LOG`.
static SERIAL: Mutex<()> = Mutex::new(());

fn log(entry: impl Into<String>) {
    LOG.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(entry.into());
}

fn take_log() -> Vec<String> {
    let mut log = std::mem::take(
        &mut *LOG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    log.sort();
    log
}

fn processors(
    runtime: &tokio::runtime::Runtime,
) -> Vec<(&'static str, Arc<dyn ProcessingService>)> {
    let _guard = runtime.enter();
    vec![
        ("inline", Arc::new(InlineProcessingService::default())),
        ("tokio", Arc::new(TokioProcessingService::default())),
        (
            "executor",
            Arc::new(ExecutorProcessingService::with_threads(2)),
        ),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Emits through `emitter` and waits until its subscribers have finished.
fn emit_and_wait(runtime: &tokio::runtime::Runtime, emitter: &EventEmitter, event: impl Event) {
    runtime.block_on(emitter.emit_and_wait(event)).unwrap();
}

// --- The workflow: success and failure callbacks, sync and async, on every processor.

#[derive(Linker)]
struct Workflow;

#[derive(Debug)]
struct Receipt(u64);

#[on(Order, linker = Workflow)]
fn charge(e: &Order) -> anyhow::Result<Receipt> {
    if e.id == 0 {
        anyhow::bail!("order 0 cannot be charged");
    }
    Ok(Receipt(e.id * 10))
}

#[on_success(charge)]
fn charged(receipt: Receipt) {
    log(format!("charged {}", receipt.0));
}

#[on_failure(charge)]
fn charge_failed(err: &anyhow::Error) {
    log(format!("charge failed: {err}"));
}

#[on(Order, linker = Workflow)]
async fn notify(e: &Order) -> Result<u64, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    if e.id == 0 {
        return Err(std::io::Error::other("nobody to notify"));
    }
    Ok(e.id)
}

#[on_success(notify)]
fn notified(id: u64) {
    log(format!("notified {id}"));
}

#[on_failure(notify)]
fn notify_failed(err: &anyhow::Error) {
    log(format!("notify failed: {err}"));
}

#[on(Order, linker = Workflow)]
fn explode(e: &Order) {
    assert!(e.id != 0, "exploded on order 0");
}

#[on_failure(explode)]
fn exploded(err: &anyhow::Error) {
    let panic = err
        .downcast_ref::<HandlerPanic>()
        .expect("panics arrive as HandlerPanic");
    log(format!("explode panicked: {}", panic.message()));
}

#[test]
fn declared_workflows_run_their_callbacks_on_every_processor() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = runtime();
    for (name, processor) in processors(&runtime) {
        let emitter = emitter(&Workflow::linker(), processor);
        emit_and_wait(&runtime, &emitter, Order { id: 4 });
        assert_eq!(take_log(), ["charged 40", "notified 4"], "{name}");
        emit_and_wait(&runtime, &emitter, Order { id: 0 });
        assert_eq!(
            take_log(),
            [
                "charge failed: order 0 cannot be charged",
                "explode panicked: exploded on order 0",
                "notify failed: nobody to notify"
            ],
            "{name}"
        );
    }
}

// --- Return types are read by what they are, not by how they are spelled: an
// alias of a `Result` is fallible, any other type is a value.

#[derive(Linker)]
struct Outputs;

/// An alias that does not end in `Result`.
type Fallible = anyhow::Result<()>;

#[derive(Debug)]
struct Declined(u64);

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order {} declined", self.0)
    }
}

impl std::error::Error for Declined {}

/// An alias of a `Result` with an error type of the user's.
type Charged = Result<u32, Declined>;

#[on(Order, linker = Outputs)]
fn aliased_anyhow(e: &Order) -> Fallible {
    if e.id == 0 {
        anyhow::bail!("aliased anyhow failed");
    }
    Ok(())
}

#[on_success(aliased_anyhow)]
fn aliased_anyhow_done() {
    log("aliased_anyhow succeeded");
}

#[on_failure(aliased_anyhow)]
fn aliased_anyhow_failed(err: &anyhow::Error) {
    log(format!("aliased_anyhow failed: {err}"));
}

#[on(Order, linker = Outputs)]
async fn io_result(e: &Order) -> std::io::Result<u64> {
    tokio::task::yield_now().await;
    if e.id == 0 {
        return Err(std::io::Error::other("io failed"));
    }
    Ok(e.id + 1)
}

#[on_success(io_result)]
fn io_result_done(n: u64) {
    log(format!("io_result succeeded: {n}"));
}

#[on_failure(io_result)]
fn io_result_failed(err: &anyhow::Error) {
    log(format!("io_result failed: {err}"));
}

#[on(Order, linker = Outputs)]
fn aliased_result(e: &Order) -> Charged {
    match u32::try_from(e.id) {
        Ok(0) | Err(_) => Err(Declined(e.id)),
        Ok(id) => Ok(id * 2),
    }
}

#[on_success(aliased_result)]
fn aliased_result_done(n: u32) {
    log(format!("aliased_result succeeded: {n}"));
}

#[on_failure(aliased_result)]
fn aliased_result_failed(err: &anyhow::Error) {
    let declined = err
        .downcast_ref::<Declined>()
        .expect("the handler's own error type arrives");
    log(format!("aliased_result failed: {declined}"));
}

#[on(Order, linker = Outputs)]
async fn plain_value(e: &Order) -> Receipt {
    tokio::task::yield_now().await;
    Receipt(e.id)
}

#[on_success(plain_value)]
fn plain_value_done(receipt: Receipt) {
    log(format!("plain_value succeeded: {}", receipt.0));
}

#[test]
fn every_spelling_of_a_result_fails_and_any_other_type_succeeds() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = runtime();
    for (name, processor) in processors(&runtime) {
        let emitter = emitter(&Outputs::linker(), processor);
        emit_and_wait(&runtime, &emitter, Order { id: 4 });
        assert_eq!(
            take_log(),
            [
                "aliased_anyhow succeeded",
                "aliased_result succeeded: 8",
                "io_result succeeded: 5",
                "plain_value succeeded: 4"
            ],
            "{name}"
        );
        emit_and_wait(&runtime, &emitter, Order { id: 0 });
        assert_eq!(
            take_log(),
            [
                "aliased_anyhow failed: aliased anyhow failed",
                "aliased_result failed: order 0 declined",
                "io_result failed: io failed",
                "plain_value succeeded: 0"
            ],
            "{name}"
        );
    }
}

#[test]
fn the_failure_of_an_aliased_result_is_logged_once() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (logs, _capturing) = common::Logs::capture();
    let emitter = emitter(&Outputs::linker(), InlineProcessingService::default());
    let runtime = runtime();
    emit_and_wait(&runtime, &emitter, Order { id: 0 });
    take_log();
    let text = logs.text();
    let failures = |handler: &str| {
        text.lines()
            .filter(|line| line.contains("event callback failed") && line.contains(handler))
            .count()
    };
    assert_eq!(failures("handlers::aliased_anyhow"), 1, "{text}");
    assert_eq!(failures("handlers::aliased_result"), 1, "{text}");
    assert_eq!(failures("handlers::plain_value"), 0, "{text}");
}

// --- One-time, multi-event, named and global handlers.

#[derive(Linker)]
struct Shapes;

static ONCE_FIRED: AtomicUsize = AtomicUsize::new(0);

#[once(Order, Refund, linker = Shapes)]
fn first_money_event(e: &AnyEvent) {
    ONCE_FIRED.fetch_add(1, Ordering::SeqCst);
    log(format!("once {}", e.name()));
}

#[on(Order, Refund, linker = Shapes)]
fn any_money_event(e: &AnyEvent) {
    let id = e
        .downcast_ref::<Order>()
        .map(|o| o.id)
        .or_else(|| e.downcast_ref::<Refund>().map(|r| r.id));
    log(format!("money {} {id:?}", e.name()));
}

#[on("Greet", linker = Shapes)]
fn greet(name: &String) {
    log(format!("hello {name}"));
}

#[on("Greet", linker = Shapes)]
async fn greet_later(name: String) {
    tokio::task::yield_now().await;
    log(format!("later {name}"));
}

#[on(..., linker = Shapes)]
fn everything(e: &AnyEvent) {
    log(format!("global {}", e.name()));
}

#[on(Refund, linker = Shapes)]
fn refund_by_value(e: Refund) -> u64 {
    e.id
}

#[on(Refund, linker = Shapes)]
async fn refund_shared(e: Arc<Refund>) {
    tokio::task::yield_now().await;
    log(format!("shared refund {}", e.id));
}

#[test]
fn one_time_multi_event_named_and_global_handlers() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = runtime();
    let emitter = emitter(&Shapes::linker(), InlineProcessingService::default());
    emit_and_wait(&runtime, &emitter, Order { id: 1 });
    assert_eq!(
        take_log(),
        ["global Order", "money Order Some(1)", "once Order"]
    );
    emit_and_wait(&runtime, &emitter, Refund { id: 2 });
    assert_eq!(
        take_log(),
        ["global Refund", "money Refund Some(2)", "shared refund 2"]
    );
    runtime
        .block_on(emitter.emit_named_and_wait("Greet", "Ada".to_string()))
        .unwrap();
    assert_eq!(take_log(), ["global Greet", "hello Ada", "later Ada"]);
    assert_eq!(ONCE_FIRED.load(Ordering::SeqCst), 1);
    assert!(
        Shapes::linker()
            .handler("handlers::first_money_event")
            .is_empty(),
        "unlinked after firing"
    );
}

// --- One-time handlers fire exactly once when threads race.

#[derive(Linker)]
struct Race;

static RACE_FIRED: AtomicUsize = AtomicUsize::new(0);

#[once(Order, linker = Race)]
fn race_once() {
    RACE_FIRED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_declared_one_time_handler_fires_once_under_concurrent_emits() {
    let emitter = emitter(&Race::linker(), InlineProcessingService::default());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for id in 0..100 {
                    emitter.emit(Order { id }).unwrap();
                }
            });
        }
    });
    assert_eq!(RACE_FIRED.load(Ordering::SeqCst), 1);
}

// --- Namespaces: their settings and their default callbacks.

#[derive(Linker)]
#[linker(max_subscribers = 5, debug = true, name = "users")]
struct Users;

#[on(Order, linker = Users)]
fn users_order() -> anyhow::Result<u64> {
    anyhow::bail!("users cannot order")
}

#[on(Refund, linker = Users)]
fn users_refund(e: &Refund) -> u64 {
    e.id
}

#[on_failure(linker = Users)]
fn users_default_failure(err: &anyhow::Error) {
    log(format!("users default failure: {err}"));
}

#[on_success(linker = Users)]
fn users_default_success(value: &dyn std::any::Any) {
    log(format!(
        "users default success: {:?}",
        value.downcast_ref::<u64>()
    ));
}

#[test]
fn a_namespace_has_its_settings_and_its_default_callbacks() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let linker = Users::linker();
    assert_eq!(linker.name(), "users");
    assert_eq!(linker.max_subscribers(), Some(5));
    assert!(linker.is_debug());
    assert!(
        linker.ptr_eq(&<Users as Linker>::linker()),
        "one linker per namespace"
    );
    assert!(
        EventLinker::global()
            .handler("handlers::users_order")
            .is_empty(),
        "not in the global linker"
    );

    let emitter = emitter(&linker, InlineProcessingService::default());
    emitter.emit(Order { id: 1 }).unwrap();
    emitter.emit(Refund { id: 9 }).unwrap();
    assert_eq!(
        take_log(),
        [
            "users default failure: users cannot order",
            "users default success: Some(9)"
        ]
    );
}

// --- Handler ids: a link-time handler can be found and removed at runtime.

#[derive(Linker)]
struct Removable;

static REMOVABLE_RAN: AtomicUsize = AtomicUsize::new(0);

#[on(Order, linker = Removable)]
fn removable() {
    REMOVABLE_RAN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_link_time_handler_is_found_by_its_id_and_can_be_removed() {
    let linker = Removable::linker();
    let found = linker.handler("handlers::removable");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].handler_id(), Some("handlers::removable"));
    assert_eq!(linker.events_of(&found), vec![EventKey::of::<Order>()]);

    let emitter = emitter(&linker, InlineProcessingService::default());
    emitter.emit(Order { id: 1 }).unwrap();
    assert!(found[0].unsubscribe());
    emitter.emit(Order { id: 2 }).unwrap();
    assert_eq!(REMOVABLE_RAN.load(Ordering::SeqCst), 1);
}

// --- `blocking`: a sync body runs off the async workers.

#[derive(Linker)]
struct Blocking;

#[on(Order, blocking, linker = Blocking)]
fn blocking_io(e: &Order) {
    std::thread::sleep(Duration::from_millis(1));
    log(format!(
        "blocking {} on {}",
        e.id,
        std::thread::current().name().unwrap_or("?")
    ));
}

#[test]
fn a_blocking_handler_runs_on_the_blocking_pool() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sub = &Blocking::linker().handler("handlers::blocking_io")[0];
    assert!(sub.is_blocking());
    // A current-thread runtime runs its tasks on the thread that calls
    // `block_on` (this test's); only its blocking pool has this name.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name("blocking-pool")
        .enable_all()
        .build()
        .unwrap();
    let tokio = TokioProcessingService::default();
    let emitter = emitter(&Blocking::linker(), tokio.clone());
    runtime.block_on(async {
        emitter.emit(Order { id: 3 }).unwrap();
        tokio.wait_for_tasks().await.unwrap();
    });
    assert_eq!(take_log(), ["blocking 3 on blocking-pool"]);
}

// --- Linking errors: reported at the namespace's first use, never merged.

#[derive(Linker)]
struct Conflicted;

mod elsewhere {
    #[derive(Debug, pyventus::Event)]
    pub(crate) struct Order;
}

#[on(Order, linker = Conflicted)]
fn conflicted_a() {}

#[on(elsewhere::Order, linker = Conflicted)]
fn conflicted_b() {}

#[test]
fn two_types_claiming_one_name_fail_the_namespace_at_first_use() {
    let err = Conflicted::try_linker().unwrap_err();
    assert!(
        matches!(&err, Error::NameConflict { name, .. } if name == "Order"),
        "{err}"
    );
    let panic = std::panic::catch_unwind(Conflicted::linker).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("cannot build the linker of"), "{message}");
    assert!(message.contains("claimed by two types"), "{message}");
}

#[derive(Linker)]
#[linker(max_subscribers = 1)]
struct Crowded;

#[on(Order, linker = Crowded)]
fn crowded_a() {}

#[on(Order, linker = Crowded)]
fn crowded_b() {}

#[test]
fn more_handlers_than_the_namespace_allows_fail_at_first_use() {
    assert!(matches!(
        Crowded::try_linker(),
        Err(Error::MaxSubscribers { limit: 1, .. })
    ));
}

#[derive(Linker)]
struct TwoSuccesses;

#[on(Order, linker = TwoSuccesses)]
fn twice_watched() {}

#[on_success(twice_watched)]
fn watcher_one() {}

#[on_success(twice_watched)]
fn watcher_two() {}

#[test]
fn two_success_callbacks_for_one_handler_fail_at_first_use() {
    let err = TwoSuccesses::try_linker().unwrap_err();
    assert_eq!(
        err,
        Error::DuplicateCallback {
            handler: "handlers::twice_watched".into(),
            callback: "success"
        }
    );
}

// --- The global linker holds the handlers declared without `linker = ...`.

static GLOBAL_RAN: AtomicUsize = AtomicUsize::new(0);

#[on("handlers.test.global")]
fn in_the_global_linker() {
    GLOBAL_RAN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn handlers_without_a_linker_are_in_the_global_one() {
    let global = EventLinker::global();
    assert_eq!(global.handler("handlers::in_the_global_linker").len(), 1);
    EventEmitter::new(InlineProcessingService::default())
        .emit_named("handlers.test.global", ())
        .unwrap();
    assert_eq!(GLOBAL_RAN.load(Ordering::SeqCst), 1);
}
