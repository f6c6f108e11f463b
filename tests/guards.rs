//! Subscription guards: a subscription that ends when its guard drops; once the
//! drop returns no new run starts, on any thread; `unsubscribe().await` waits
//! for the runs in progress and refuses to wait for itself.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{emitter, inline_fast};
use pyventus::{
    Error, Event, EventEmission, EventLinker, ExecutorProcessingService, ProcessingService,
    SubscriptionGuard, TokioProcessingService,
};

#[derive(Debug, Clone, Event)]
struct Tick;

#[test]
fn dropping_a_guard_unsubscribes_its_subscriber() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let guard = linker
        .on::<Tick>()
        .guard()
        .subscribe(move |_: &Tick| r.fetch_add(1, SeqCst))
        .unwrap();
    let sub = guard.subscriber().clone();
    emitter.emit(Tick).unwrap();
    drop(guard);
    emitter.emit(Tick).unwrap();
    assert_eq!(runs.load(SeqCst), 1);
    assert!(!sub.is_subscribed());
    assert!(linker.is_empty());
}

#[test]
fn a_detached_guard_keeps_its_subscription() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let sub = linker
        .on::<Tick>()
        .guard()
        .subscribe(move || r.fetch_add(1, SeqCst))
        .unwrap()
        .detach();
    emitter.emit(Tick).unwrap();
    emitter.emit(Tick).unwrap();
    assert_eq!(runs.load(SeqCst), 2);
    assert!(sub.unsubscribe());
    emitter.emit(Tick).unwrap();
    assert_eq!(runs.load(SeqCst), 2);
}

#[test]
fn an_emission_queued_before_the_drop_does_not_start_the_handler_after_it() {
    let linker = EventLinker::new();
    let pool = ExecutorProcessingService::with_threads(1);
    let emitter = emitter(&linker, pool.clone());
    // The pool's only thread is held until the guard has dropped.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    linker
        .on_named("Hold")
        .subscribe(move || {
            let _ = held.lock().unwrap().recv();
        })
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let guard = linker
        .on::<Tick>()
        .guard()
        .subscribe(move || r.fetch_add(1, SeqCst))
        .unwrap();
    emitter.emit_named("Hold", ()).unwrap();
    // Resolved now, with the guarded subscriber in it; it runs after the hold.
    emitter.emit(Tick).unwrap();
    drop(guard);
    release.send(()).unwrap();
    pool.shutdown(true);
    assert_eq!(
        runs.load(SeqCst),
        0,
        "the queued emission ran a dropped guard's handler"
    );
}

#[test]
fn a_guarded_async_handler_does_not_start_after_the_drop() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let linker = EventLinker::new();
        let service = TokioProcessingService::default();
        let emitter = emitter(&linker, service.clone());
        let runs = Arc::new(AtomicUsize::new(0));
        let settled = Arc::new(AtomicUsize::new(0));
        let (r, ok, failed) = (runs.clone(), settled.clone(), settled.clone());
        let guard = linker
            .on::<Tick>()
            .on_success(move || {
                ok.fetch_add(1, SeqCst);
            })
            .on_failure(move |_: &anyhow::Error| {
                failed.fetch_add(1, SeqCst);
            })
            .guard()
            .subscribe_async(move || {
                let r = r.clone();
                async move {
                    r.fetch_add(1, SeqCst);
                }
            })
            .unwrap();
        // A task, not yet polled on this single thread.
        emitter.emit(Tick).unwrap();
        drop(guard);
        service.wait_for_tasks().await.unwrap();
        assert_eq!(runs.load(SeqCst), 0);
        // A run that never started is not a success, nor a failure.
        assert_eq!(settled.load(SeqCst), 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_unsubscribe_waits_for_the_runs_in_progress() {
    let linker = EventLinker::new();
    let emitter = emitter(&linker, TokioProcessingService::default());
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Mutex::new(Some(started_tx));
    let f = finished.clone();
    let guard = linker
        .on::<Tick>()
        .guard()
        .subscribe_async(move || {
            let f = f.clone();
            let started = started_tx.lock().unwrap().take();
            async move {
                if let Some(started) = started {
                    let _ = started.send(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                f.store(true, SeqCst);
            }
        })
        .unwrap();
    emitter.emit(Tick).unwrap();
    started_rx.await.unwrap();
    assert_eq!(guard.running(), 1);
    guard.unsubscribe().await.unwrap();
    assert!(
        finished.load(SeqCst),
        "unsubscribe returned before the run in progress finished"
    );
    assert!(linker.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_unsubscribe_from_inside_its_own_async_handler_is_refused() {
    let linker = EventLinker::new();
    let emitter = emitter(&linker, TokioProcessingService::default());
    let slot: Arc<Mutex<Option<SubscriptionGuard>>> = Arc::default();
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), Error>>();
    let tx = Mutex::new(Some(tx));
    let s = slot.clone();
    let guard = linker
        .on::<Tick>()
        .guard()
        .subscribe_async(move || {
            let guard = s.lock().unwrap().take();
            let tx = tx.lock().unwrap().take();
            async move {
                if let (Some(guard), Some(tx)) = (guard, tx) {
                    tokio::task::yield_now().await;
                    let _ = tx.send(guard.unsubscribe().await);
                }
            }
        })
        .unwrap();
    *slot.lock().unwrap() = Some(guard);
    emitter.emit(Tick).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the handler hung in its own unsubscribe")
        .unwrap();
    let Err(Error::WouldDeadlock(message)) = result else {
        panic!("expected WouldDeadlock, got {result:?}");
    };
    assert!(
        message.contains("from inside a run of the handler"),
        "{message}"
    );
    // Refused, but unsubscribed all the same.
    assert!(linker.is_empty());
}

#[test]
fn awaiting_unsubscribe_from_inside_its_own_sync_handler_is_refused() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let slot: Arc<Mutex<Option<SubscriptionGuard>>> = Arc::default();
    let outcome: Arc<Mutex<Option<Result<(), Error>>>> = Arc::default();
    let (s, o) = (slot.clone(), outcome.clone());
    let guard = linker
        .on::<Tick>()
        .guard()
        .subscribe(move || {
            if let Some(guard) = s.lock().unwrap().take() {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                *o.lock().unwrap() = Some(runtime.block_on(guard.unsubscribe()));
            }
        })
        .unwrap();
    *slot.lock().unwrap() = Some(guard);
    emitter.emit(Tick).unwrap();
    let result = outcome.lock().unwrap().take().expect("the handler ran");
    assert!(matches!(result, Err(Error::WouldDeadlock(_))), "{result:?}");
    assert!(linker.is_empty());
}

#[test]
fn a_guard_dropped_inside_its_own_handler_ends_the_subscription() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let slot: Arc<Mutex<Option<SubscriptionGuard>>> = Arc::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let (s, r) = (slot.clone(), runs.clone());
    let guard = linker
        .on::<Tick>()
        .guard()
        .subscribe(move || {
            r.fetch_add(1, SeqCst);
            drop(s.lock().unwrap().take());
        })
        .unwrap();
    *slot.lock().unwrap() = Some(guard);
    emitter.emit(Tick).unwrap();
    emitter.emit(Tick).unwrap();
    assert_eq!(runs.load(SeqCst), 1);
    assert!(linker.is_empty());
}

// Churn: 8 threads emit while other threads create and drop guards. A run
// that starts after its guard's drop returned is caught exactly, with one
// clock: the dropping thread stamps the clock once the drop has returned; each
// emitting thread's processing service stamps it before it starts running an
// emission. Emissions run a few emits after they were resolved (the service
// queues them), so a subscriber resolved before its guard's drop is often run
// after it: a handler that sees its guard's drop stamped before its emission
// started running has started after the drop had returned.

static CLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static RUN_STARTED: Cell<u64> = const { Cell::new(0) };
}

/// Runs each thread's emissions a few emits late, on that thread.
#[derive(Clone, Default)]
struct Deferred(Arc<Mutex<Vec<EventEmission>>>);

impl Deferred {
    fn run_queued(&self) {
        let queued = std::mem::take(&mut *self.0.lock().unwrap());
        for emission in queued {
            let now = CLOCK.fetch_add(1, SeqCst);
            RUN_STARTED.try_with(|c| c.set(now)).unwrap();
            drop(emission.run_blocking());
        }
    }
}

impl ProcessingService for Deferred {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        self.0.lock().unwrap().push(emission);
        Ok(())
    }
}

/// Emissions in all, across the 8 emitting threads. The figure is a
/// million (`PYVENTUS_CHURN_EMISSIONS=1000000`); the default keeps a debug
/// build's run to a second or two.
fn churn_emissions() -> u64 {
    std::env::var("PYVENTUS_CHURN_EMISSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

#[test]
fn no_run_starts_after_its_guards_drop_returned_under_churn() {
    const EMITTERS: u64 = 8;
    const DROPPERS: usize = 2;
    let linker = EventLinker::new();
    let late = Arc::new(AtomicU64::new(0));
    let runs = Arc::new(AtomicU64::new(0));
    let guards = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let per_thread = churn_emissions() / EMITTERS;
    let started = Instant::now();

    std::thread::scope(|scope| {
        for _ in 0..DROPPERS {
            let (linker, late, runs, guards, done) = (&linker, &late, &runs, &guards, &done);
            scope.spawn(move || {
                while !done.load(SeqCst) {
                    // A few guards at once, dropped in turn.
                    let mut live = Vec::new();
                    for _ in 0..4 {
                        let dropped_at = Arc::new(AtomicU64::new(0));
                        let d = dropped_at.clone();
                        let (late, runs) = (late.clone(), runs.clone());
                        let guard = linker
                            .on::<Tick>()
                            .guard()
                            .subscribe(move |_: &Tick| {
                                runs.fetch_add(1, SeqCst);
                                let dropped = d.load(SeqCst);
                                let run_started = RUN_STARTED.try_with(Cell::get).unwrap_or(0);
                                if dropped != 0 && dropped < run_started {
                                    late.fetch_add(1, SeqCst);
                                }
                            })
                            .unwrap();
                        live.push((guard, dropped_at));
                        guards.fetch_add(1, SeqCst);
                    }
                    std::thread::yield_now();
                    for (guard, dropped_at) in live {
                        drop(guard);
                        dropped_at.store(CLOCK.fetch_add(1, SeqCst), SeqCst);
                    }
                }
            });
        }
        let emitting: Vec<_> = (0..EMITTERS)
            .map(|_| {
                let linker = &linker;
                scope.spawn(move || {
                    let deferred = Deferred::default();
                    let emitter = emitter(linker, deferred.clone());
                    for n in 0..per_thread {
                        emitter.emit(Tick).unwrap();
                        if n % 8 == 7 {
                            deferred.run_queued();
                        }
                    }
                    deferred.run_queued();
                })
            })
            .collect();
        for thread in emitting {
            thread.join().unwrap();
        }
        done.store(true, SeqCst);
    });

    let (runs, guards) = (runs.load(SeqCst), guards.load(SeqCst));
    eprintln!(
        "churn: {} emissions, {guards} guards, {runs} runs in {:?}",
        per_thread * EMITTERS,
        started.elapsed()
    );
    assert!(guards > 10, "too few guards to churn: {guards}");
    assert!(runs > 0, "no guarded handler ever ran");
    assert_eq!(
        late.load(SeqCst),
        0,
        "runs started after their guard's drop had returned"
    );
    assert!(linker.is_empty());
}

#[test]
fn a_guarded_handler_on_the_inline_fast_path_tells_its_callbacks_of_its_runs_only() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    // A plain subscriber of the same event beside it.
    let plain = Arc::new(AtomicUsize::new(0));
    let p = plain.clone();
    linker
        .on::<Tick>()
        .subscribe(move |_: &Tick| {
            p.fetch_add(1, SeqCst);
        })
        .unwrap();
    let (runs, successes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, s) = (runs.clone(), successes.clone());
    let guard = linker
        .on::<Tick>()
        .on_success(move || {
            s.fetch_add(1, SeqCst);
        })
        .guard()
        .subscribe(move |_: &Tick| {
            r.fetch_add(1, SeqCst);
        })
        .unwrap();
    emitter.emit(Tick).unwrap();
    emitter.emit(Tick).unwrap();
    drop(guard);
    emitter.emit(Tick).unwrap();
    assert_eq!(runs.load(SeqCst), 2);
    assert_eq!(successes.load(SeqCst), 2);
    assert_eq!(plain.load(SeqCst), 3);
}
