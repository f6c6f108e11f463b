//! Correctness under concurrency: one-time subscribers fire exactly once, nothing is
//! lost while the registry changes, limits hold, handlers may re-enter the linker
//! and the emitter, and panics stop nothing.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::emitter;
use pyventus::{
    AnyEvent, Event, EventEmitter, EventKey, EventLinker, ExecutorProcessingService,
    InlineProcessingService, ProcessingService, TokioProcessingService,
};

#[derive(Debug, Clone, Event)]
struct Tick;

#[derive(Debug, Clone, Event)]
struct Tock;

const THREADS: usize = 4;

/// Runs `f` on `THREADS` threads released at the same instant.
fn race(f: impl Fn(usize) + Send + Sync) {
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for i in 0..THREADS {
            let (barrier, f) = (&barrier, &f);
            s.spawn(move || {
                barrier.wait();
                f(i);
            });
        }
    });
}

fn counter() -> (Arc<AtomicUsize>, impl Fn() + Send + Sync + Clone + 'static) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    (count, move || {
        c.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn one_time_subscriber_fires_once_under_concurrent_emits() {
    for _ in 0..500 {
        let linker = EventLinker::new();
        let (count, bump) = counter();
        let sub = linker.once::<Tick>().subscribe(bump).unwrap();
        let emitter = common::inline(&linker);
        race(|_| emitter.emit(Tick).unwrap());
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(!sub.is_subscribed());
        assert!(linker.is_empty());
    }
}

#[test]
fn a_one_time_subscriber_of_several_events_fires_once_for_the_first_of_them() {
    for _ in 0..300 {
        let linker = EventLinker::new();
        let (count, bump) = counter();
        linker
            .once_keys([
                EventKey::of::<Tick>(),
                EventKey::of::<Tock>(),
                EventKey::any(),
            ])
            .subscribe(move |_: &AnyEvent| bump())
            .unwrap();
        let emitter = common::inline(&linker);
        race(|i| {
            if i % 2 == 0 {
                emitter.emit(Tick).unwrap();
            } else {
                emitter.emit(Tock).unwrap();
            }
        });
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(linker.is_empty(), "removed from all its events at once");
    }
}

#[test]
fn one_time_subscribers_fire_once_on_async_processors_too() {
    for _ in 0..50 {
        let linker = EventLinker::new();
        let (count, bump) = counter();
        linker.once::<Tick>().subscribe(bump).unwrap();
        let pool = ExecutorProcessingService::with_threads(2);
        let emitter = emitter(&linker, pool.clone());
        race(|_| emitter.emit(Tick).unwrap());
        pool.wait_for_tasks().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn no_delivery_is_lost_while_other_threads_subscribe_and_unsubscribe() {
    const EMITS: usize = 2_000;
    let linker = EventLinker::new();
    let (count, bump) = counter();
    linker.on::<Tick>().subscribe(bump).unwrap();
    let emitter = common::inline(&linker);
    race(|i| {
        if i < 2 {
            for _ in 0..EMITS {
                emitter.emit(Tick).unwrap();
            }
        } else {
            for _ in 0..EMITS / 4 {
                let churn = linker.on::<Tick>().subscribe(|| {}).unwrap();
                let other = linker.on_any().subscribe(|| {}).unwrap();
                assert!(churn.unsubscribe());
                assert!(linker.remove_subscriber(&other));
            }
        }
    });
    assert_eq!(count.load(Ordering::SeqCst), 2 * EMITS);
    assert_eq!(linker.subscriber_count(), 1);
}

#[test]
fn max_subscribers_holds_under_concurrent_subscription() {
    for _ in 0..50 {
        let linker = EventLinker::builder().max_subscribers(10).build();
        let accepted = AtomicUsize::new(0);
        race(|_| {
            for _ in 0..10 {
                if linker.on::<Tick>().subscribe(|| {}).is_ok() {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 10);
        assert_eq!(linker.subscriber_count_of(EventKey::of::<Tick>()), 10);
    }
}

/// A handler that emits, subscribes and unsubscribes from inside itself.
fn reentrant_setup(linker: &EventLinker, emitter: &EventEmitter) -> Arc<AtomicUsize> {
    let (tocks, bump) = counter();
    linker.on::<Tock>().subscribe(bump).unwrap();
    let (inner_linker, inner_emitter) = (linker.clone(), emitter.clone());
    let me = Arc::new(std::sync::OnceLock::new());
    let me_inside = me.clone();
    let sub = linker
        .on::<Tick>()
        .subscribe(move |_: &Tick| {
            inner_emitter.emit(Tock).unwrap();
            let extra = inner_linker.on::<Tock>().subscribe(|| {}).unwrap();
            assert!(extra.unsubscribe());
            if let Some(me) = me_inside.get() {
                let me: &pyventus::EventSubscriber = me;
                me.unsubscribe();
            }
        })
        .unwrap();
    me.set(sub).unwrap();
    tocks
}

fn assert_reentrant(processor: impl ProcessingService, settle: impl FnOnce()) {
    let linker = EventLinker::new();
    let emitter = emitter(&linker, processor);
    let tocks = reentrant_setup(&linker, &emitter);
    emitter.emit(Tick).unwrap();
    settle();
    assert_eq!(tocks.load(Ordering::SeqCst), 1);
    assert!(
        !linker.contains_event(EventKey::of::<Tick>()),
        "it unsubscribed itself"
    );
}

#[test]
fn a_handler_can_reenter_the_linker_and_emitter_inline() {
    assert_reentrant(InlineProcessingService::default(), || {});
}

#[test]
fn a_handler_can_reenter_the_linker_and_emitter_on_the_executor() {
    let pool = ExecutorProcessingService::with_threads(1);
    let waiter = pool.clone();
    assert_reentrant(pool, move || waiter.wait_for_tasks().unwrap());
}

#[test]
fn a_handler_can_reenter_the_linker_and_emitter_on_tokio() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tokio = TokioProcessingService::default();
        let waiter = tokio.clone();
        let linker = EventLinker::new();
        let emitter = emitter(&linker, tokio);
        let tocks = reentrant_setup(&linker, &emitter);
        emitter.emit(Tick).unwrap();
        tokio::time::timeout(Duration::from_secs(10), waiter.wait_for_tasks())
            .await
            .expect("deadlocked")
            .unwrap();
        assert_eq!(tocks.load(Ordering::SeqCst), 1);
    });
}

/// Panics; typed `()` so an async block calling it is a `()` handler, not `!`.
fn explode() {
    panic!("always, asynchronously");
}

#[test]
fn a_panicking_handler_never_stops_the_others_or_the_processor() {
    const EMITS: usize = 200;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tokio = TokioProcessingService::default();
    let pool = ExecutorProcessingService::with_threads(2);
    let processors: Vec<Arc<dyn ProcessingService>> = vec![
        Arc::new(InlineProcessingService::default()),
        Arc::new(tokio.clone()),
        Arc::new(pool.clone()),
    ];
    for processor in processors {
        let linker = EventLinker::new();
        linker
            .on::<Tick>()
            .subscribe(|| -> () { panic!("always") })
            .unwrap();
        linker
            .on::<Tick>()
            .subscribe_async(|| async { explode() })
            .unwrap();
        let (count, bump) = counter();
        linker.on::<Tick>().subscribe(bump).unwrap();
        let emitter = emitter(&linker, processor);
        runtime.block_on(async {
            for _ in 0..EMITS {
                emitter.emit(Tick).unwrap();
            }
            tokio.wait_for_tasks().await.unwrap();
        });
        pool.wait_for_tasks().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), EMITS);
    }
}

/// An event with subscribers past the 32 a small list holds, whose list is
/// then append-only and a removal leaves a tombstone in it.
#[derive(Debug, Event)]
struct Crowded;

/// How a handler takes the last subscriber away while an emission runs.
#[derive(Debug, Clone, Copy)]
enum Removal {
    Unsubscribe,
    Unlink,
    RemoveEvent,
    RemoveAll,
}

/// An emission of an event with `crowd` subscribers whose first handler
/// links `new` and takes `old` (the last) away: what ran, in order.
fn swap_while_emitting(crowd: usize, removal: Removal) -> Vec<&'static str> {
    let linker = EventLinker::new();
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let old = Arc::new(std::sync::OnceLock::<pyventus::EventSubscriber>::new());
    let (inner, record, old_inside) = (linker.clone(), ran.clone(), old.clone());
    linker
        .on::<Crowded>()
        .subscribe(move |_: &Crowded| {
            let Some(old) = old_inside.get() else { return };
            if record.lock().unwrap().contains(&"swapped") {
                return;
            }
            record.lock().unwrap().push("swapped");
            let record = record.clone();
            inner
                .on::<Crowded>()
                .subscribe(move |_: &Crowded| record.lock().unwrap().push("new"))
                .unwrap();
            let removed = match removal {
                Removal::Unsubscribe => old.unsubscribe(),
                Removal::Unlink => inner.remove(EventKey::of::<Crowded>(), old),
                Removal::RemoveEvent => inner.remove_event(EventKey::of::<Crowded>()),
                Removal::RemoveAll => inner.remove_all(),
            };
            assert!(removed);
        })
        .unwrap();
    for _ in 2..crowd {
        linker.on::<Crowded>().subscribe(|_: &Crowded| {}).unwrap();
    }
    let record = ran.clone();
    let last = linker
        .on::<Crowded>()
        .subscribe(move |_: &Crowded| record.lock().unwrap().push("old"))
        .unwrap();
    old.set(last).unwrap();
    emitter(&linker, InlineProcessingService::default())
        .emit(Crowded)
        .unwrap();
    // The handler holds the linker: let it go.
    linker.remove_all();
    ran.lock().unwrap().clone()
}

/// A handler that swaps another for a new one (links the new, removes the
/// old) while an emission runs: the emission runs the subscribers it
/// started with, the old one included and not the new, whether the event has
/// a few subscribers or more than a small list holds (found by the model
/// check of `src/interleavings`: past 32 subscribers, the removed one was
/// skipped, and the emission ran neither).
#[test]
fn an_emission_runs_the_subscribers_it_started_with_however_many_while_a_handler_swaps_one() {
    for removal in [
        Removal::Unsubscribe,
        Removal::Unlink,
        Removal::RemoveEvent,
        Removal::RemoveAll,
    ] {
        for crowd in [3, 40, 100] {
            assert_eq!(
                swap_while_emitting(crowd, removal),
                ["swapped", "old"],
                "{crowd} subscribers, {removal:?}"
            );
        }
    }
}
