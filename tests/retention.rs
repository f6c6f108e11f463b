//! What the per-thread caches of the inline fast path keep alive, and for how
//! long: a removed subscriber's closure is dropped at the latest when the
//! thread that cached it emits that event type (or, for a named event, a name
//! in the same one of its 32 named slots) again, uses another linker's
//! snapshot, or exits. Never longer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::inline_fast;
use pyventus::{Event, EventKey, EventLinker, NamedKey};

#[derive(Debug, Clone, Event)]
struct Retained;

#[derive(Debug, Clone, Event)]
struct Other;

/// Counts its drops: what a closure captures.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_removed_subscriber_is_dropped_by_the_next_emit_of_its_type_on_the_thread() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let linker = EventLinker::new();
    let tracked = Tracked(dropped.clone());
    let sub = linker
        .on::<Retained>()
        .subscribe(move |_: &Retained| {
            let _keep = &tracked;
        })
        .unwrap();
    let emitter = inline_fast(&linker);
    emitter.emit(Retained).unwrap(); // caches the lane on this thread

    assert!(sub.unsubscribe());
    drop(sub); // the handle keeps its subscriber (and closure) alive too
    emitter.emit(Retained).unwrap(); // sees the new generation, drops the old lane
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_removed_named_subscriber_is_dropped_by_the_next_emit_of_its_name_on_the_thread() {
    static KEY: EventKey = EventKey::named_static("RetainedByName");
    let dropped = Arc::new(AtomicUsize::new(0));
    let linker = EventLinker::new();
    let tracked = Tracked(dropped.clone());
    let sub = linker
        .on_named("RetainedByName")
        .subscribe(move |_: &u8| {
            let _keep = &tracked;
        })
        .unwrap();
    let emitter = inline_fast(&linker);
    emitter.emit_to(&KEY, 1_u8).unwrap(); // caches the lane in the name's slot

    assert!(sub.unsubscribe());
    drop(sub);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "still cached by this thread"
    );
    emitter.emit_to(&KEY, 1_u8).unwrap(); // a new generation: the slot is refilled
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_removed_subscriber_is_dropped_by_the_next_emit_through_its_named_key() {
    pyventus::named_key!(static KEY: NamedKey<u8> = "RetainedByKey");
    let dropped = Arc::new(AtomicUsize::new(0));
    let linker = EventLinker::new();
    let tracked = Tracked(dropped.clone());
    let sub = linker
        .on_named("RetainedByKey")
        .subscribe(move |_: &u8| {
            let _keep = &tracked;
        })
        .unwrap();
    let emitter = inline_fast(&linker);
    emitter.emit_to(&KEY, 1).unwrap(); // caches the lane in the key's slot
    assert!(sub.unsubscribe());
    drop(sub);
    assert_eq!(dropped.load(Ordering::SeqCst), 0, "still in the key's slot");
    emitter.emit_to(&KEY, 1).unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_named_lane_cached_by_a_thread_is_released_when_it_exits() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let linker = EventLinker::new();
    let tracked = Tracked(dropped.clone());
    let sub = linker
        .on_named("CachedElsewhere")
        .subscribe(move |_: &u8| {
            let _keep = &tracked;
        })
        .unwrap();
    let emitter = inline_fast(&linker);
    std::thread::spawn(move || emitter.emit_named("CachedElsewhere", 1_u8).unwrap())
        .join()
        .unwrap();
    assert!(sub.unsubscribe());
    drop(sub);
    drop(linker);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the thread's exit released it"
    );
}

#[test]
fn a_dropped_linker_is_released_when_the_thread_uses_another_or_exits() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let worker = {
        let dropped = dropped.clone();
        std::thread::spawn(move || {
            let linker = EventLinker::new();
            let tracked = Tracked(dropped.clone());
            linker
                .on::<Other>()
                .subscribe(move |_: &Other| {
                    let _keep = &tracked;
                })
                .unwrap();
            inline_fast(&linker).emit(Other).unwrap();
            drop(linker);
            // Still cached by this thread (bounded: one snapshot, one lane per
            // type); a use of another linker releases the snapshot...
            let another = EventLinker::new();
            inline_fast(&another).emit(Other).unwrap();
        })
    };
    worker.join().unwrap();
    // ...and the thread's exit releases everything it cached.
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn emitting_from_many_threads_while_subscribers_come_and_go_runs_only_live_ones() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let calls = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let emitters: Vec<_> = (0..2)
        .map(|_| {
            let (emitter, done) = (emitter.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    emitter.emit(Retained).unwrap();
                }
            })
        })
        .collect();
    for _ in 0..200 {
        let counter = calls.clone();
        let sub = linker
            .on::<Retained>()
            .subscribe(move |_: &Retained| {
                counter.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        sub.unsubscribe();
    }
    done.store(true, Ordering::Relaxed);
    for thread in emitters {
        thread.join().unwrap();
    }
    // Every subscriber is gone: one more emission on this thread runs nobody.
    let before = calls.load(Ordering::Relaxed);
    emitter.emit(Retained).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), before);
}
