//! Processing services: inline, tokio and the thread pool, each where the design
//! says it runs subscribers, and `emit_and_wait` on each.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Logs, Record, emitter, inline};
use pyventus::{
    BlockingThreads, Error, Event, EventEmission, EventEmitter, EventLinker,
    ExecutorProcessingService, InlineProcessingService, ProcessingService, TokioProcessingService,
};

#[derive(Debug, Clone, Event)]
struct Job {
    id: usize,
}

fn counting(linker: &EventLinker) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    linker
        .on::<Job>()
        .subscribe(move |_: &Job| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    count
}

#[test]
fn inline_runs_sync_and_async_subscribers_before_emit_returns() {
    let (linker, record) = sleepy_async_subscriber();
    let sync = record.clone();
    linker
        .on::<Job>()
        .subscribe(move |e: &Job| sync.push(format!("sync {}", e.id)))
        .unwrap();
    // Synchronous subscribers run first, then the asynchronous ones, all before
    // `emit` returns.
    inline(&linker).emit(Job { id: 1 }).unwrap();
    assert_eq!(record.take(), ["sync 1", "async 1"]);
}

/// A linker with one async subscriber that awaits a timer (so it needs a
/// runtime's driver), then records the job.
fn sleepy_async_subscriber() -> (EventLinker, Record) {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on::<Job>()
        .subscribe_async(move |e: Arc<Job>| {
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                r.push(format!("async {}", e.id));
            }
        })
        .unwrap();
    (linker, record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_inside_a_multi_thread_runtime_runs_async_subscribers_without_nesting_runtimes() {
    let (linker, record) = sleepy_async_subscriber();
    inline(&linker).emit(Job { id: 2 }).unwrap();
    assert_eq!(record.take(), ["async 2"]);
}

#[tokio::test(flavor = "current_thread")]
async fn inline_inside_a_current_thread_runtime_runs_async_subscribers_too() {
    let (linker, record) = sleepy_async_subscriber();
    inline(&linker).emit(Job { id: 3 }).unwrap();
    assert_eq!(record.take(), ["async 3"]);
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_inside_a_runtime_returns_at_once_and_runs_the_emission_as_a_task() {
    let linker = EventLinker::new();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(tx);
    linker
        .on::<Job>()
        .subscribe(move |_: &Job| tx.lock().unwrap().send(()).unwrap())
        .unwrap();
    let tokio = TokioProcessingService::default();
    emitter(&linker, tokio.clone()).emit(Job { id: 0 }).unwrap();
    // A current-thread runtime runs nothing else until this task yields.
    assert!(
        rx.try_recv().is_err(),
        "emit returned before the subscriber ran"
    );
    tokio.wait_for_tasks().await.unwrap();
    assert!(rx.try_recv().is_ok());
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_subscribers_of_one_emission_run_concurrently_on_tokio() {
    let linker = EventLinker::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let record = Record::default();
    for tag in ["a", "b"] {
        let (barrier, record) = (barrier.clone(), record.clone());
        linker
            .on::<Job>()
            .subscribe_async(move || {
                let (barrier, record) = (barrier.clone(), record.clone());
                async move {
                    // Each waits for the other: only concurrent subscribers get past.
                    barrier.wait().await;
                    record.push(tag);
                }
            })
            .unwrap();
    }
    let tokio = TokioProcessingService::default();
    emitter(&linker, tokio.clone()).emit(Job { id: 0 }).unwrap();
    tokio::time::timeout(Duration::from_secs(5), tokio.wait_for_tasks())
        .await
        .expect("the subscribers ran one after the other")
        .unwrap();
    assert_eq!(record.len(), 2);
}

#[test]
fn tokio_outside_a_runtime_runs_the_emission_to_completion() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on::<Job>()
        .subscribe_async(move |e: Job| {
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                r.push(format!("done {}", e.id));
            }
        })
        .unwrap();
    emitter(&linker, TokioProcessingService::default())
        .emit(Job { id: 9 })
        .unwrap();
    assert_eq!(record.take(), ["done 9"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_submission_order_runs_emissions_one_by_one_in_order() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on::<Job>()
        .subscribe_async(move |e: Arc<Job>| {
            let r = r.clone();
            async move {
                // Later jobs sleep less: without ordering they would overtake.
                tokio::time::sleep(Duration::from_millis(10 - e.id as u64)).await;
                r.push(e.id.to_string());
            }
        })
        .unwrap();
    let tokio = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let emitter = emitter(&linker, tokio.clone());
    for id in 0..10 {
        emitter.emit(Job { id }).unwrap();
    }
    tokio.wait_for_tasks().await.unwrap();
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(record.take(), expected);
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_runs_sync_subscribers_off_the_async_workers() {
    // On a current-thread runtime a sync subscriber that blocks on the runtime's
    // only thread would starve the async one it waits for.
    for service in [
        TokioProcessingService::builder().blocking(true).build(),
        TokioProcessingService::default(),
    ] {
        let linker = EventLinker::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Mutex::new(rx);
        let record = Record::default();
        let r = record.clone();
        let mut sub = linker.on::<Job>();
        if !format!("{service:?}").contains("blocking: true") {
            sub = sub.blocking(); // the per-subscriber form
        }
        sub.subscribe(move |_: &Job| {
            let got = rx.lock().unwrap().recv_timeout(Duration::from_secs(5));
            r.push(if got.is_ok() {
                "sync got it"
            } else {
                "sync starved"
            });
        })
        .unwrap();
        let tx = std::sync::Mutex::new(tx);
        linker
            .on::<Job>()
            .subscribe_async(move || {
                let sent = tx.lock().unwrap().send(());
                async move { sent.unwrap() }
            })
            .unwrap();
        emitter(&linker, service.clone())
            .emit(Job { id: 0 })
            .unwrap();
        service.wait_for_tasks().await.unwrap();
        assert_eq!(record.take(), ["sync got it"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_tasks_includes_emissions_submitted_while_waiting() {
    let linker = EventLinker::new();
    let tokio = TokioProcessingService::default();
    let emitter = emitter(&linker, tokio.clone());
    let record = Record::default();
    let (r, chain) = (record.clone(), emitter.clone());
    linker
        .on::<Job>()
        .subscribe_async(move |e: Arc<Job>| {
            let (r, chain) = (r.clone(), chain.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                r.push(e.id.to_string());
                if e.id < 5 {
                    chain.emit(Job { id: e.id + 1 }).unwrap();
                }
            }
        })
        .unwrap();
    emitter.emit(Job { id: 0 }).unwrap();
    tokio.wait_for_tasks().await.unwrap();
    assert_eq!(record.take(), ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(tokio.pending(), 0);
}

#[test]
fn the_executor_runs_emissions_on_its_threads_and_async_handlers_to_completion() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (a, b) = (record.clone(), record.clone());
    linker
        .on::<Job>()
        .subscribe(move |_: &Job| a.push(std::thread::current().name().unwrap_or("?").to_owned()))
        .unwrap();
    linker
        .on::<Job>()
        .subscribe_async(move || {
            let b = b.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                b.push("async done");
            }
        })
        .unwrap();
    let pool = ExecutorProcessingService::with_threads(2);
    assert_eq!(pool.threads(), 2);
    emitter(&linker, pool.clone()).emit(Job { id: 0 }).unwrap();
    pool.wait_for_tasks().unwrap();
    let ran = record.take();
    assert!(ran[0].starts_with("pyventus-executor-"), "{ran:?}");
    assert_eq!(ran[1], "async done");
}

#[test]
fn executor_shutdown_finishes_queued_work_then_refuses_more() {
    let linker = EventLinker::new();
    let count = counting(&linker);
    let pool = ExecutorProcessingService::with_threads(2);
    let emitter = emitter(&linker, pool.clone());
    for id in 0..100 {
        emitter.emit(Job { id }).unwrap();
    }
    pool.shutdown(true);
    assert!(pool.is_shutdown());
    assert_eq!(count.load(Ordering::SeqCst), 100);
    assert_eq!(
        emitter.emit(Job { id: 0 }).unwrap_err(),
        Error::ProcessorClosed
    );
}

#[test]
fn dropping_the_last_executor_handle_waits_for_queued_work() {
    let linker = EventLinker::new();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    linker
        .on::<Job>()
        .subscribe(move |_: &Job| {
            std::thread::sleep(Duration::from_millis(1));
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    {
        let emitter = emitter(&linker, ExecutorProcessingService::with_threads(1));
        for id in 0..20 {
            emitter.emit(Job { id }).unwrap();
        }
    } // the emitter held the only handle
    assert_eq!(count.load(Ordering::SeqCst), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_and_wait_returns_after_every_subscriber_and_callback_on_every_processor() {
    let processors: Vec<(&str, Arc<dyn ProcessingService>)> = vec![
        ("inline", Arc::new(InlineProcessingService::default())),
        ("tokio", Arc::new(TokioProcessingService::default())),
        (
            "ordered",
            Arc::new(
                TokioProcessingService::builder()
                    .enforce_submission_order(true)
                    .build(),
            ),
        ),
        (
            "executor",
            Arc::new(ExecutorProcessingService::with_threads(2)),
        ),
    ];
    for (name, processor) in processors {
        let linker = EventLinker::new();
        let record = Record::default();
        let (ok, slow) = (record.clone(), record.clone());
        linker
            .on::<Job>()
            .on_success(move |n: usize| ok.push(format!("success {n}")))
            .subscribe_async(|e: Arc<Job>| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                e.id
            })
            .unwrap();
        linker
            .on::<Job>()
            .subscribe(move |_: &Job| {
                std::thread::sleep(Duration::from_millis(5));
                slow.push("sync");
            })
            .unwrap();
        emitter(&linker, processor)
            .emit_and_wait(Job { id: 4 })
            .await
            .unwrap();
        let mut ran = record.take();
        ran.sort();
        assert_eq!(ran, ["success 4", "sync"], "{name}");
    }
}

#[tokio::test]
async fn emit_and_wait_with_no_subscribers_returns_at_once() {
    let emitter = emitter(&EventLinker::new(), TokioProcessingService::default());
    emitter.emit_and_wait(Job { id: 0 }).await.unwrap();
    emitter.emit_named_and_wait("Nobody", ()).await.unwrap();
}

/// A processor that loses everything: the emitter must say so, not hang.
struct BlackHole;

impl ProcessingService for BlackHole {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        drop(emission);
        Ok(())
    }
}

/// A processor that refuses everything.
struct Full;

impl ProcessingService for Full {
    fn submit(&self, _: EventEmission) -> Result<(), Error> {
        Err(Error::ProcessorRefused {
            reason: "queue full".into(),
        })
    }
}

#[tokio::test]
async fn a_dropped_or_refused_emission_comes_back_to_the_caller() {
    let linker = EventLinker::new();
    counting(&linker);
    assert_eq!(
        emitter(&linker, BlackHole)
            .emit_and_wait(Job { id: 0 })
            .await
            .unwrap_err(),
        Error::EmissionDropped
    );
    let err = emitter(&linker, Full).emit(Job { id: 0 }).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the processing service refused the emission: queue full"
    );
}

#[test]
fn a_custom_processor_sees_the_emission_metadata() {
    struct Inspect(Record);
    impl ProcessingService for Inspect {
        fn submit(&self, emission: EventEmission) -> Result<(), Error> {
            self.0.push(format!(
                "{} {} {} {:?}",
                emission.event_name(),
                emission.subscriber_count(),
                emission.id() > 0,
                emission.event()
            ));
            assert!(emission.emitted_at() <= std::time::SystemTime::now());
            emission.run_blocking();
            Ok(())
        }
    }
    let linker = EventLinker::new();
    let count = counting(&linker);
    let record = Record::default();
    emitter(&linker, Inspect(record.clone()))
        .emit(Job { id: 7 })
        .unwrap();
    assert_eq!(record.take(), ["Job 1 true Job { id: 7 }"]);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// An event whose drop panics: a panic that escapes every handler's workflow.
#[derive(Debug, Event)]
struct DropBomb;

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("DropBomb went off");
    }
}

#[test]
fn a_panic_escaping_an_emission_neither_shrinks_nor_closes_the_executor() {
    let linker = EventLinker::new();
    linker.on::<DropBomb>().subscribe(|| ()).unwrap();
    // Each job says it arrived, then holds its pool thread until told to go:
    // as many jobs arrive together as the pool has live threads.
    let (arrived_tx, arrived) = std::sync::mpsc::channel::<()>();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let (arrived_tx, go_rx) = (
        std::sync::Mutex::new(arrived_tx),
        Arc::new(std::sync::Mutex::new(go_rx)),
    );
    linker
        .on::<Job>()
        .subscribe(move |_: &Job| {
            arrived_tx.lock().unwrap().send(()).unwrap();
            let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(5));
        })
        .unwrap();
    for threads in [1, 2] {
        let pool = ExecutorProcessingService::with_threads(threads);
        let emitter = emitter(&linker, pool.clone());
        for _ in 0..threads {
            emitter.emit(DropBomb).unwrap();
        }
        for id in 0..threads {
            emitter
                .emit(Job { id })
                .expect("the pool is not shut down, so it takes emissions");
        }
        for _ in 0..threads {
            arrived
                .recv_timeout(Duration::from_secs(5))
                .expect("a pool thread died with the panic");
        }
        for _ in 0..threads {
            go.send(()).unwrap();
        }
        let waiting = pool.clone();
        common::within(Duration::from_secs(5), "wait_for_tasks", move || {
            waiting.wait_for_tasks().unwrap();
        });
        assert_eq!(pool.pending(), 0);
        assert!(!pool.is_shutdown());
    }
}

#[test]
fn tasks_spawned_by_async_handlers_on_the_executor_keep_running() {
    let linker = EventLinker::new();
    let (tx, rx) = std::sync::mpsc::channel::<&str>();
    let tx = std::sync::Mutex::new(tx);
    linker
        .on::<Job>()
        .subscribe_async(move || {
            let tx = tx.lock().unwrap().clone();
            async move {
                // The handler returns at once; the task it spawned carries on.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    tx.send("spawned task done").unwrap();
                });
            }
        })
        .unwrap();
    let pool = ExecutorProcessingService::with_threads(1);
    emitter(&linker, pool.clone()).emit(Job { id: 0 }).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok("spawned task done"),
        "the spawned task froze once its emission had run"
    );
}

#[test]
fn concurrent_executor_shutdowns_both_return_after_all_queued_work_ran() {
    let linker = EventLinker::new();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    linker
        .on::<Job>()
        .subscribe(move |_: &Job| {
            std::thread::sleep(Duration::from_micros(200));
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let pool = ExecutorProcessingService::with_threads(2);
    let emitter = emitter(&linker, pool.clone());
    for id in 0..500 {
        emitter.emit(Job { id }).unwrap();
    }
    let start = Arc::new(std::sync::Barrier::new(2));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, count, start) = (pool.clone(), count.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                pool.shutdown(true);
                count.load(Ordering::SeqCst)
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap(), 500, "shutdown(true) returned early");
    }
}

/// A broker's worker cancels a run at its handler timeout and leaves the message
/// to be delivered again: that is no loss, and must not be reported as one
/// (an emission dropped unfinished otherwise is).
#[test]
fn a_run_cancelled_by_a_backend_that_redelivers_reports_no_loss() {
    let (logs, _guard) = Logs::capture();
    let linker = EventLinker::new();
    linker
        .on::<Job>()
        .subscribe_async(|_: Arc<Job>| std::future::pending::<()>())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let cancel = |redelivered: bool| {
        let mut emission = EventEmission::resolve(&linker, Arc::new(Job { id: 1 })).unwrap();
        emission.set_redeliverable(redelivered);
        let waiter = emission.completion();
        runtime.block_on(async {
            let run = tokio::time::timeout(Duration::from_millis(10), emission.run()).await;
            assert!(run.is_err(), "the handler never ends: the run is cancelled");
            assert_eq!(waiter.await, Err(Error::EmissionDropped));
        });
    };

    cancel(true);
    assert!(!logs.text().contains("was lost"), "{}", logs.text());
    cancel(false);
    assert!(
        logs.text().contains("an emission was lost"),
        "{}",
        logs.text()
    );
}

/// A task spawned on an emission copies its future several times: the future
/// is the emission and a tag, not a second copy of it with the run's state
/// (it was twice the emission's size).
#[tokio::test(flavor = "current_thread")]
async fn the_future_of_a_run_is_little_more_than_its_emission() {
    let linker = EventLinker::new();
    let ran = counting(&linker);
    let emission = EventEmission::resolve(&linker, Arc::new(Job { id: 1 })).unwrap();
    let run = emission.run();
    let (future, emission) = (size_of_val(&run), size_of::<EventEmission>());
    assert!(
        future <= emission + 16,
        "the run future is {future} bytes, the emission {emission}"
    );
    let report = run.await;
    assert_eq!((report.ran(), ran.load(Ordering::SeqCst)), (1, 1));
}

/// One step of a chain: its id, how long it takes, and the steps its handler
/// emits after it (the first of them next, carrying the rest).
#[derive(Debug, Clone)]
struct Chain(Vec<(bool, usize, u64)>);

/// Emits the next step of a chain, carrying the steps after it.
fn next(slot: &std::sync::OnceLock<EventEmitter>, rest: &[(bool, usize, u64)]) {
    if let Some(&(is_async, _, _)) = rest.first() {
        let name = if is_async { "AsyncStep" } else { "SyncStep" };
        slot.get()
            .unwrap()
            .emit_named(name, Chain(rest.to_vec()))
            .unwrap();
    }
}

/// Pyventus's ordered-submission test: twelve emissions at once, six of them
/// chains whose handlers emit the next step (sync and async steps alternating,
/// later ones quicker, so that nothing but the order kept can keep it). With
/// `enforce_submission_order`, every step runs in the order it was created: a
/// step a handler emits runs right after that handler's emission, before the
/// emissions queued behind it.
fn ordered_chains(service: TokioProcessingService) -> (EventEmitter, Record, Vec<String>) {
    let linker = EventLinker::new();
    let record = Record::default();
    let slot = Arc::new(std::sync::OnceLock::<EventEmitter>::new());
    let (r, s) = (record.clone(), slot.clone());
    linker
        .on_named("SyncStep")
        .subscribe(move |chain: &Chain| {
            let (_, id, micros) = chain.0[0];
            std::thread::sleep(Duration::from_micros(micros));
            r.push(id.to_string());
            next(&s, &chain.0[1..]);
        })
        .unwrap();
    let (r, s) = (record.clone(), slot.clone());
    linker
        .on_named("AsyncStep")
        .subscribe_async(move |chain: Chain| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                let (_, id, micros) = chain.0[0];
                tokio::time::sleep(Duration::from_micros(micros)).await;
                r.push(id.to_string());
                next(&s, &chain.0[1..]);
            }
        })
        .unwrap();
    let emitter = slot.get_or_init(|| emitter(&linker, service)).clone();
    let mut created = 0;
    let mut step = |is_async: bool, micros: u64| {
        created += 1;
        (is_async, created - 1, micros)
    };
    let mut chains = Vec::new();
    for micros in [3500, 2500, 1500, 500, 100, 0] {
        let is_async = chains.len() % 4 < 2;
        // A chain of three steps (async, sync, async, or the reverse), then a
        // single step.
        let composed = (0..3)
            .map(|k| step(is_async == (k % 2 == 0), micros))
            .collect();
        chains.push(Chain(composed));
        chains.push(Chain(vec![step(is_async, micros)]));
    }
    let expected = (0..created).map(|id| id.to_string()).collect();
    for chain in chains {
        next(&slot, &chain.0);
    }
    (emitter, record, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_service_runs_what_a_handler_emits_right_after_it_inside_a_runtime() {
    for blocking in [false, true] {
        let service = TokioProcessingService::builder()
            .enforce_submission_order(true)
            .blocking(blocking)
            .build();
        let (_emitter, record, expected) = ordered_chains(service.clone());
        tokio::time::timeout(Duration::from_secs(10), service.wait_for_tasks())
            .await
            .expect("the chains finished")
            .unwrap();
        assert_eq!(record.take(), expected, "blocking {blocking}");
    }
}

#[test]
fn ordered_service_runs_what_a_handler_emits_right_after_it_outside_a_runtime() {
    for blocking in [false, true] {
        let service = TokioProcessingService::builder()
            .enforce_submission_order(true)
            .blocking(blocking)
            .build();
        let (record, expected) = common::within(Duration::from_secs(10), "the chains", move || {
            let (_emitter, record, expected) = ordered_chains(service);
            (record, expected)
        });
        assert_eq!(record.take(), expected, "blocking {blocking}");
    }
}

/// Pyventus's `force_async` moves synchronous callbacks to a thread only where
/// an event loop runs: outside a runtime, `blocking(true)` changes nothing,
/// and the caller's thread runs every subscriber (it waits for them anyway).
#[test]
fn blocking_outside_a_runtime_runs_sync_and_async_subscribers_on_the_callers_thread() {
    for ordered in [false, true] {
        let linker = EventLinker::new();
        let record = Record::default();
        let (sync, r#async) = (record.clone(), record.clone());
        let caller = std::thread::current().id();
        linker
            .on::<Job>()
            .subscribe(move |_: &Job| {
                sync.push(format!(
                    "sync on caller: {}",
                    std::thread::current().id() == caller
                ));
            })
            .unwrap();
        linker
            .on::<Job>()
            .subscribe_async(move || {
                let record = r#async.clone();
                async move {
                    let here = std::thread::current().id() == caller;
                    record.push(format!("async on caller: {here}"));
                }
            })
            .unwrap();
        let service = TokioProcessingService::builder()
            .blocking(true)
            .enforce_submission_order(ordered)
            .build();
        emitter(&linker, service).emit(Job { id: 1 }).unwrap();
        assert_eq!(
            record.take(),
            ["sync on caller: true", "async on caller: true"],
            "ordered {ordered}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_inside_a_runtime_runs_sync_subscribers_on_a_blocking_thread() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on::<Job>()
        .subscribe(move |_: &Job| {
            let name = std::thread::current().name().map(str::to_owned);
            r.push(format!("{name:?}"));
        })
        .unwrap();
    let service = TokioProcessingService::builder().blocking(true).build();
    emitter(&linker, service.clone())
        .emit_and_wait(Job { id: 1 })
        .await
        .unwrap();
    let ran = record.take();
    assert_eq!(ran.len(), 1);
    assert_ne!(
        ran[0],
        format!("{:?}", std::thread::current().name().map(str::to_owned)),
        "not the emitting thread"
    );
}

/// A stuck synchronous subscriber on detached blocking threads (what the
/// broker workers use) does not hold up the drop of the runtime the emission
/// ran on; on the runtime's own blocking threads (the default), it does.
#[test]
fn a_runtime_drops_without_waiting_for_a_stuck_handler_on_detached_blocking_threads() {
    fn cut_short(threads: BlockingThreads, hold: Duration) -> Duration {
        let linker = EventLinker::new();
        linker
            .on::<Job>()
            .subscribe(move || std::thread::sleep(hold))
            .unwrap();
        let mut emission = EventEmission::resolve(&linker, Arc::new(Job { id: 1 })).unwrap();
        emission.set_blocking(true);
        emission.set_blocking_threads(threads);
        emission.set_redeliverable(true);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let ran = runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), emission.run()).await
        });
        assert!(ran.is_err(), "the handler is still running");
        let dropping = std::time::Instant::now();
        drop(runtime);
        dropping.elapsed()
    }
    let detached = common::within(Duration::from_secs(10), "dropping the runtime", || {
        cut_short(BlockingThreads::Detached, Duration::from_mins(2))
    });
    assert!(detached < Duration::from_secs(1), "{detached:?}");
    let owned = cut_short(BlockingThreads::Runtime, Duration::from_millis(600));
    assert!(owned >= Duration::from_millis(300), "{owned:?}");
}

/// Set in the child process of the test below.
const BLOCKED_RUNTIME_CHILD: &str = "PYVENTUS_TEST_BLOCKED_RUNTIME_CHILD";

/// The child of the test below (does nothing when run on its own): with every
/// worker of pyventus's own runtime held, two synchronous subscribers on
/// detached blocking threads, the first waiting for the second, still finish.
#[test]
fn child_detached_handlers_while_pyventus_runtime_is_held() {
    if std::env::var_os(BLOCKED_RUNTIME_CHILD).is_none() {
        return;
    }
    // More tasks than the runtime has workers (4 at most), each holding its
    // thread for 6 s.
    let held = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let held = held.clone();
        drop(pyventus::runtime::spawn_on_io_runtime(async move {
            held.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(6));
        }));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    while held.load(Ordering::SeqCst) < threads {
        std::thread::sleep(Duration::from_millis(5));
    }
    let second_ran = Arc::new(AtomicUsize::new(0));
    let linker = EventLinker::new();
    let seen = second_ran.clone();
    linker
        .on::<Job>()
        .subscribe(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while seen.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    let ran = second_ran.clone();
    linker
        .on::<Job>()
        .subscribe(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let mut emission = EventEmission::resolve(&linker, Arc::new(Job { id: 1 })).unwrap();
    emission.set_blocking(true);
    emission.set_blocking_threads(BlockingThreads::Detached);
    emission.set_redeliverable(true);
    let started = std::time::Instant::now();
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(Duration::from_secs(3), emission.run()).await });
    assert!(
        report.is_ok_and(|report| report.is_success()),
        "the second subscriber waited for the first: {:?}",
        started.elapsed()
    );
}

/// The blocking threads of broker workers need nothing of pyventus's runtime
/// to give a handler queued behind a stuck one a thread: a program whose
/// async handlers block that runtime's workers does not stall them. Run in a
/// child process, whose pyventus runtime it may hold.
#[test]
fn detached_handlers_queued_behind_a_stuck_one_run_while_pyventus_runtime_is_held() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_detached_handlers_while_pyventus_runtime_is_held",
            "--nocapture",
            "--quiet",
        ])
        .env(BLOCKED_RUNTIME_CHILD, "1")
        .spawn()
        .unwrap();
    let status = common::within(Duration::from_secs(30), "the child process", move || {
        child.wait().unwrap()
    });
    assert!(status.success(), "the child failed: {status}");
}
