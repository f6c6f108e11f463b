//! The lifecycle of an emission: every accepted emission runs, or its loss is
//! reported; waits return once what they wait for has finished; runtimes that
//! shut down and drain tasks that never ran leave nothing wedged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Logs, Record, emitter};
use pyventus::{
    Error, Event, EventEmission, EventLinker, ExecutorProcessingService, ProcessingService,
    TokioProcessingService,
};

#[derive(Debug, Clone, Event)]
struct Ping;

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A linker whose `name` subscriber records `name`.
fn recording(linker: &EventLinker, record: &Record, name: &'static str) {
    let r = record.clone();
    linker
        .on_named(name)
        .subscribe(move || r.push(name))
        .unwrap();
}

/// How many lines of `text` are error events that mention `needle`.
fn errors_mentioning(text: &str, needle: &str) -> usize {
    text.lines()
        .filter(|l| l.contains("ERROR") && l.contains(needle))
        .count()
}

// The seam: what an emission reports about itself.

#[test]
fn an_emission_dropped_unrun_reports_its_loss_and_fails_every_waiter() {
    let linker = EventLinker::new();
    linker.on::<Ping>().subscribe(|| ()).unwrap();
    let mut emission = EventEmission::resolve(&linker, Arc::new(Ping)).unwrap();
    let (first, second) = (emission.completion(), emission.completion());
    let (logs, _capturing) = Logs::capture();
    drop(emission);
    assert_eq!(
        pyventus::runtime::block_on(first),
        Err(Error::EmissionDropped)
    );
    assert_eq!(
        pyventus::runtime::block_on(second),
        Err(Error::EmissionDropped)
    );
    assert_eq!(
        errors_mentioning(&logs.text(), "Ping"),
        1,
        "{}",
        logs.text()
    );
}

#[test]
fn every_waiter_of_an_emission_learns_that_it_ran() {
    let linker = EventLinker::new();
    linker.on::<Ping>().subscribe(|| ()).unwrap();
    let mut emission = EventEmission::resolve(&linker, Arc::new(Ping)).unwrap();
    let waiters: Vec<_> = (0..3).map(|_| emission.completion()).collect();
    assert!(emission.is_awaited());
    assert!(emission.run_blocking().is_success());
    for waiter in waiters {
        assert_eq!(pyventus::runtime::block_on(waiter), Ok(()));
    }
}

#[test]
fn handed_off_and_discarded_emissions_report_no_loss() {
    let linker = EventLinker::new();
    linker.on::<Ping>().subscribe(|| ()).unwrap();
    let (logs, _capturing) = Logs::capture();
    let mut shipped = EventEmission::resolve(&linker, Arc::new(Ping)).unwrap();
    let shipped_done = shipped.completion();
    shipped.handed_off();
    let mut dropped = EventEmission::resolve(&linker, Arc::new(Ping)).unwrap();
    let dropped_done = dropped.completion();
    dropped.discard();
    assert_eq!(
        pyventus::runtime::block_on(shipped_done),
        Err(Error::NotAwaitable)
    );
    assert_eq!(
        pyventus::runtime::block_on(dropped_done),
        Err(Error::EmissionDropped)
    );
    assert_eq!(logs.text(), "");
}

/// Drops what it is given, then says it accepted it (or refused it).
struct Dropping {
    accept: bool,
}

impl ProcessingService for Dropping {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        drop(emission);
        if self.accept {
            Ok(())
        } else {
            Err(Error::ProcessorRefused {
                reason: "full".into(),
            })
        }
    }
}

#[test]
fn a_refusal_is_the_callers_error_while_an_accepted_then_dropped_emission_is_a_reported_loss() {
    let linker = EventLinker::new();
    linker.on::<Ping>().subscribe(|| ()).unwrap();
    let (logs, _capturing) = Logs::capture();
    let refused = emitter(&linker, Dropping { accept: false }).emit(Ping);
    assert!(matches!(refused, Err(Error::ProcessorRefused { .. })));
    assert!(
        !logs.text().contains("ERROR"),
        "a refusal is no loss: {}",
        logs.text()
    );

    emitter(&linker, Dropping { accept: true })
        .emit(Ping)
        .unwrap();
    let text = logs.text();
    assert_eq!(errors_mentioning(&text, "Ping"), 1, "{text}");
    assert!(text.contains("accepted it, then dropped it"), "{text}");
}

// Defect 1: the ordered tokio service must not wedge.

#[test]
fn an_ordered_service_recovers_when_its_drain_task_is_dropped_before_it_first_runs() {
    let linker = EventLinker::new();
    let record = Record::default();
    recording(&linker, &record, "Job");
    let service = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let emitter = emitter(&linker, service.clone());
    let (logs, _capturing) = Logs::capture();

    // A runtime that accepts an emission, then shuts down before its drain task
    // is ever polled (the block_on future finishes on its first poll).
    let first = current_thread_runtime();
    first.block_on(async { emitter.emit_named("Job", ()).unwrap() });
    drop(first);
    assert_eq!(service.pending(), 0, "the lost emission still counts");
    assert_eq!(errors_mentioning(&logs.text(), "Job"), 1, "{}", logs.text());

    // The next runtime's emissions run, and waiting for them returns.
    current_thread_runtime().block_on(async {
        emitter.emit_named("Job", ()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), service.wait_for_tasks())
            .await
            .expect("the ordered service is wedged")
            .unwrap();
    });
    assert_eq!(record.take(), ["Job"]);
}

#[test]
fn an_emit_outside_a_runtime_takes_over_an_ordered_queue_left_on_an_idle_runtime() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on_named("Job")
        .subscribe(move |n: &u32| r.push(n.to_string()))
        .unwrap();
    let service = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let emitter = emitter(&linker, service.clone());
    // A current-thread runtime runs its tasks only inside `block_on`: this one
    // keeps a drain task it will not run until it is driven again.
    let idle = current_thread_runtime();
    idle.block_on(async { emitter.emit_named("Job", 1_u32).unwrap() });
    let outside = emitter.clone();
    common::within(
        Duration::from_secs(5),
        "emit outside a runtime",
        move || {
            outside.emit_named("Job", 2_u32).unwrap();
        },
    );
    assert_eq!(record.take(), ["1", "2"], "in submission order");
    // The old drain, driven at last, finds nothing left to do.
    idle.block_on(async {
        emitter.emit_named("Job", 3_u32).unwrap();
        service.wait_for_tasks().await.unwrap();
    });
    assert_eq!(record.take(), ["3"]);
}

// Defect 4: emissions lost when their runtime shuts down.

#[test]
fn emissions_lost_at_runtime_shutdown_are_reported_once_with_their_count_and_events() {
    let linker = EventLinker::new();
    linker
        .on_named("LostAtShutdown")
        .subscribe_async(|| async { tokio::time::sleep(Duration::from_mins(1)).await })
        .unwrap();
    linker
        .on_named("AlsoLost")
        .subscribe_async(|| async { tokio::time::sleep(Duration::from_mins(1)).await })
        .unwrap();
    let service = TokioProcessingService::default();
    let emitter = emitter(&linker, service.clone());
    let (logs, _capturing) = Logs::capture();
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        for _ in 0..100 {
            emitter.emit_named("LostAtShutdown", ()).unwrap();
        }
        emitter.emit_named("AlsoLost", ()).unwrap();
        // Start a few (they sleep), leave the rest queued.
        tokio::task::yield_now().await;
    });
    drop(runtime);
    assert_eq!(service.pending(), 0);
    let text = logs.text();
    let reports: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(reports.len(), 1, "one report for one shutdown:\n{text}");
    let report = reports[0];
    assert!(report.contains("101 emissions"), "{report}");
    assert!(report.contains("LostAtShutdown ×100"), "{report}");
    assert!(report.contains("AlsoLost ×1"), "{report}");
}

// Defect 11: outside a runtime, `emit` on tokio runs what it caused too.

/// A linker where `outer` emits `inner` through `emitter` (set later), and each
/// records when it ends; `inner` first sleeps, so a pending one is seen.
fn causal_chain(
    record: &Record,
) -> (
    EventLinker,
    Arc<std::sync::OnceLock<pyventus::EventEmitter>>,
) {
    let linker = EventLinker::new();
    let slot = Arc::new(std::sync::OnceLock::<pyventus::EventEmitter>::new());
    let (r, s) = (record.clone(), slot.clone());
    linker
        .on_named("outer")
        .subscribe_async(move || {
            let (r, s) = (r.clone(), s.clone());
            async move {
                r.push("outer start");
                let emitter = s.get().expect("set before emitting");
                emitter.emit_named("inner", 1_u32).unwrap();
                emitter.emit_named("inner", 2_u32).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                r.push("outer end");
            }
        })
        .unwrap();
    let (r, s) = (record.clone(), slot.clone());
    linker
        .on_named("inner")
        .subscribe_async(move |n: u32| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if n == 2 {
                    // One level deeper.
                    s.get().unwrap().emit_named("inner", 3_u32).unwrap();
                }
                r.push(format!("inner {n}"));
            }
        })
        .unwrap();
    (linker, slot)
}

#[test]
fn outside_a_runtime_emit_returns_after_everything_its_handlers_emitted() {
    let record = Record::default();
    let (linker, slot) = causal_chain(&record);
    let service = TokioProcessingService::default();
    let emitter = slot
        .get_or_init(|| emitter(&linker, service.clone()))
        .clone();
    common::within(Duration::from_secs(10), "emit", move || {
        emitter.emit_named("outer", ()).unwrap();
    });
    let mut ran = record.take();
    ran.sort();
    assert_eq!(
        ran,
        ["inner 1", "inner 2", "inner 3", "outer end", "outer start"]
    );
    assert_eq!(service.pending(), 0);
}

#[test]
fn ordered_outside_a_runtime_runs_nested_emissions_after_their_cause_in_emission_order() {
    let record = Record::default();
    let (linker, slot) = causal_chain(&record);
    let service = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let emitter = slot
        .get_or_init(|| emitter(&linker, service.clone()))
        .clone();
    common::within(Duration::from_secs(10), "emit", move || {
        emitter.emit_named("outer", ()).unwrap();
    });
    assert_eq!(
        record.take(),
        ["outer start", "outer end", "inner 1", "inner 2", "inner 3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_inside_a_runtime_runs_nested_emissions_after_their_cause_in_emission_order() {
    let record = Record::default();
    let (linker, slot) = causal_chain(&record);
    let service = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let emitter = slot.get_or_init(|| emitter(&linker, service.clone()));
    emitter.emit_named("outer", ()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), service.wait_for_tasks())
        .await
        .expect("the emissions finished")
        .unwrap();
    assert_eq!(
        record.take(),
        ["outer start", "outer end", "inner 1", "inner 2", "inner 3"]
    );
}

// Defect 4: Pyventus's guard, one wait for every emission of the process.

/// `wait_for_all` waits for each service in turn, and again while anything
/// began meanwhile: an emission that went from the first service to the second
/// and back to the first (after the first was seen idle) is waited for too.
#[test]
fn wait_for_all_waits_for_emissions_that_go_back_to_a_service_already_seen_idle() {
    let linker = EventLinker::new();
    let record = Record::default();
    // Two tokio services (an emission from one to the other inside the
    // runtime is a task, not a run to completion); the first created is
    // waited for first.
    let first = TokioProcessingService::default();
    let second = TokioProcessingService::default();
    let (on_first, on_second) = (emitter(&linker, first), emitter(&linker, second));
    linker
        .on_named("there")
        .subscribe(move || on_second.emit_named("via", ()).unwrap())
        .unwrap();
    let back = on_first.clone();
    linker
        .on_named("via")
        .subscribe_async(move || {
            let back = back.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                back.emit_named("back", ()).unwrap();
            }
        })
        .unwrap();
    let r = record.clone();
    linker
        .on_named("back")
        .subscribe_async(move || {
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                r.push("back");
            }
        })
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        on_first.emit_named("there", ()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), pyventus::wait_for_all())
            .await
            .expect("wait_for_all hung")
            .unwrap();
        assert_eq!(record.len(), 1, "the emission that came back had finished");
    });
}

#[test]
fn wait_for_all_waits_for_every_service_before_the_runtime_shuts_down() {
    let linker = EventLinker::new();
    let record = Record::default();
    for name in ["on tokio", "on the pool"] {
        let r = record.clone();
        linker
            .on_named(name)
            .subscribe_async(move || {
                let r = r.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    r.push(name);
                }
            })
            .unwrap();
    }
    let tokio = emitter(&linker, TokioProcessingService::default());
    let pool = emitter(&linker, ExecutorProcessingService::with_threads(2));
    // What `#[tokio::main]` does: build a runtime, run main, drop the runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..10 {
            tokio.emit_named("on tokio", ()).unwrap();
            pool.emit_named("on the pool", ()).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), pyventus::wait_for_all())
            .await
            .expect("wait_for_all hung")
            .unwrap();
    });
    drop(runtime);
    assert_eq!(
        record.len(),
        20,
        "everything ran before the runtime shut down"
    );
}

#[test]
fn wait_for_all_waits_for_work_a_backend_holds() {
    let held = pyventus::Unfinished::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send(pyventus::wait_for_all_blocking()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "it waits while the work is held"
    );
    drop(held);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(Ok(())));
}
