//! Waits that could never finish (a handler waiting on what waits for it) are
//! refused with `Error::WouldDeadlock` instead of hanging.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{Record, emitter};
use pyventus::{
    Error, EventEmitter, EventLinker, ExecutorProcessingService, ProcessingService,
    TokioProcessingService,
};

/// A linker where the handler of `"Depth"` `n` awaits `emit_and_wait` of
/// `n + 1` (up to `deepest`) through the emitter in the slot, and records what
/// that wait returned.
fn nested_waits(deepest: u32, record: &Record) -> (EventLinker, Arc<OnceLock<EventEmitter>>) {
    let linker = EventLinker::new();
    let slot = Arc::new(OnceLock::<EventEmitter>::new());
    let (r, s) = (record.clone(), slot.clone());
    linker
        .on_named("Depth")
        .subscribe_async(move |n: u32| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                if n < deepest {
                    let emitter = s.get().expect("set before emitting");
                    let waited = emitter.emit_named_and_wait("Depth", n + 1).await;
                    r.push(format!("{n}: {}", outcome(&waited)));
                }
            }
        })
        .unwrap();
    (linker, slot)
}

fn outcome(result: &Result<(), Error>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(Error::WouldDeadlock(_)) => "would deadlock",
        Err(_) => "other error",
    }
}

/// Emits `"Depth"` 1 through `processor` from a plain thread and waits for the
/// chain to settle, within a bound.
fn run_chain(processor: impl ProcessingService, deepest: u32) -> Vec<String> {
    let record = Record::default();
    let (linker, slot) = nested_waits(deepest, &record);
    let emitter = slot.get_or_init(|| emitter(&linker, processor)).clone();
    common::within(Duration::from_secs(10), "the chain of waits", move || {
        pyventus::runtime::block_on(emitter.emit_named_and_wait("Depth", 1_u32))
    })
    .unwrap();
    record.take()
}

#[test]
fn awaiting_an_emission_on_the_ordered_service_that_runs_you_is_refused() {
    let service = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    assert_eq!(run_chain(service, 2), ["1: would deadlock"]);
}

#[test]
fn awaiting_an_emission_on_a_one_thread_executor_from_its_thread_is_refused() {
    let pool = ExecutorProcessingService::with_threads(1);
    assert_eq!(run_chain(pool, 2), ["1: would deadlock"]);
}

#[test]
fn a_four_thread_executor_refuses_the_wait_that_would_block_its_last_thread() {
    let pool = ExecutorProcessingService::with_threads(4);
    // Depths 1 to 3 each block one thread waiting for the next; depth 4 would
    // block the fourth, leaving none to run depth 5.
    assert_eq!(
        run_chain(pool, 5),
        ["4: would deadlock", "3: ok", "2: ok", "1: ok"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_on_an_unordered_tokio_service_from_its_own_handler_is_fine() {
    let record = Record::default();
    let (linker, slot) = nested_waits(4, &record);
    let emitter = slot.get_or_init(|| emitter(&linker, TokioProcessingService::default()));
    tokio::time::timeout(
        Duration::from_secs(10),
        emitter.emit_named_and_wait("Depth", 1_u32),
    )
    .await
    .expect("nested waits on tokio tasks finish")
    .unwrap();
    assert_eq!(record.take(), ["3: ok", "2: ok", "1: ok"]);
}

/// Emits `"Wait"` through `processor` from a plain thread, whose handler runs
/// `wait` and records its outcome; returns what it recorded.
fn wait_inside_a_handler(
    processor: impl ProcessingService,
    wait: impl Fn() -> Result<(), Error> + Send + Sync + 'static,
) -> Vec<String> {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on_named("Wait")
        .subscribe(move || r.push(outcome(&wait())))
        .unwrap();
    let emitter = emitter(&linker, processor);
    common::within(Duration::from_secs(10), "the handler's wait", move || {
        pyventus::runtime::block_on(emitter.emit_named_and_wait("Wait", ()))
    })
    .unwrap();
    record.take()
}

#[test]
fn a_handler_waiting_for_its_own_tokio_service_is_refused() {
    for ordered in [false, true] {
        let service = TokioProcessingService::builder()
            .enforce_submission_order(ordered)
            .build();
        let waiter = service.clone();
        let ran = wait_inside_a_handler(service, move || {
            pyventus::runtime::block_on(waiter.wait_for_tasks())
        });
        assert_eq!(ran, ["would deadlock"], "ordered: {ordered}");
    }
}

#[test]
fn a_handler_waiting_for_its_own_executor_is_refused() {
    let pool = ExecutorProcessingService::with_threads(2);
    let waiter = pool.clone();
    let ran = wait_inside_a_handler(pool.clone(), move || waiter.wait_for_tasks());
    assert_eq!(ran, ["would deadlock"]);
    pool.wait_for_tasks().unwrap(); // from outside: fine
}

#[test]
fn a_handler_waiting_for_every_emission_of_the_process_is_refused() {
    let ran = wait_inside_a_handler(TokioProcessingService::default(), || {
        pyventus::runtime::block_on(pyventus::wait_for_all())
    });
    assert_eq!(ran, ["would deadlock"]);
    let ran = wait_inside_a_handler(ExecutorProcessingService::with_threads(1), || {
        pyventus::wait_for_all_blocking()
    });
    assert_eq!(ran, ["would deadlock"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_refused_through_a_chain_of_services_that_waits_for_it() {
    // The ordered service's handler waits for an emission on another service,
    // whose handler waits for an emission of the ordered service: it would
    // queue behind the first, which waits for it.
    let ordered = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let record = Record::default();
    let linker = EventLinker::new();
    let on_ordered = emitter(&linker, ordered.clone());
    let on_pool = emitter(&linker, ExecutorProcessingService::with_threads(2));
    let (r, pool) = (record.clone(), on_pool.clone());
    linker
        .on_named("first")
        .subscribe_async(move || {
            let (r, pool) = (r.clone(), pool.clone());
            async move {
                let waited = pool.emit_named_and_wait("second", ()).await;
                r.push(format!("first: {}", outcome(&waited)));
            }
        })
        .unwrap();
    let (r, back) = (record.clone(), on_ordered.clone());
    linker
        .on_named("second")
        .subscribe_async(move || {
            let (r, back) = (r.clone(), back.clone());
            async move {
                let waited = back.emit_named_and_wait("third", ()).await;
                r.push(format!("second: {}", outcome(&waited)));
            }
        })
        .unwrap();
    linker.on_named("third").subscribe(|| ()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        on_ordered.emit_named_and_wait("first", ()),
    )
    .await
    .expect("the chain hung")
    .unwrap();
    assert_eq!(record.take(), ["second: would deadlock", "first: ok"]);
}
