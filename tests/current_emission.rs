//! `current_emission()`: the emission a handler runs in, `None` outside
//! handlers and on the inline fast path (synchronous subscribers run on the
//! caller's borrowed event, with no emission built), whatever runs further up
//! the thread's stack.

mod common;

use std::sync::{Arc, Mutex};

use common::inline_fast;
use pyventus::{Event, EventEmitter, EventLinker, TokioProcessingService, current_emission};

#[derive(Debug, Clone, Event)]
struct Outer;

#[derive(Debug, Clone, Event)]
struct Inner;

#[derive(Debug, Clone, Event)]
struct Spawned;

type Seen = Arc<Mutex<Vec<String>>>;

/// What a handler sees: the event of its current emission, or "none".
fn seen_by(who: &str) -> String {
    let event = current_emission().map_or("none".to_owned(), |e| e.event_name().to_owned());
    format!("{who}: {event}")
}

#[tokio::test(flavor = "current_thread")]
async fn a_fast_path_handler_inside_another_emission_sees_no_emission_not_the_outer_one() {
    let linker = EventLinker::new();
    let seen: Seen = Arc::default();
    let tokio = TokioProcessingService::default();
    let on_tokio = EventEmitter::builder()
        .processor(tokio.clone())
        .linker(linker.clone())
        .debug(false)
        .build();

    let log = seen.clone();
    linker
        .on::<Inner>()
        .subscribe(move |_: &Inner| log.lock().unwrap().push(seen_by("inner")))
        .unwrap();
    // A sync handler of Inner emits Spawned on the tokio service: that
    // emission's handler sees its own emission, not "none".
    let log = seen.clone();
    linker
        .on::<Spawned>()
        .subscribe(move |_: &Spawned| log.lock().unwrap().push(seen_by("spawned")))
        .unwrap();
    let (log, inner_emitter, spawner) = (seen.clone(), inline_fast(&linker), on_tokio.clone());
    linker
        .on::<Outer>()
        .subscribe(move |_: &Outer| {
            log.lock().unwrap().push(seen_by("outer before"));
            inner_emitter.emit(Inner).unwrap(); // the inline fast path
            log.lock().unwrap().push(seen_by("outer after"));
            spawner.emit(Spawned).unwrap();
        })
        .unwrap();

    on_tokio.emit(Outer).unwrap();
    tokio.wait_for_tasks().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "outer before: Outer",
            "inner: none",
            "outer after: Outer",
            "spawned: Spawned"
        ]
    );
    assert!(current_emission().is_none(), "outside handlers");
}

#[test]
fn a_fast_path_handler_at_the_top_sees_no_emission() {
    let linker = EventLinker::new();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    linker
        .on::<Inner>()
        .subscribe(move |_: &Inner| log.lock().unwrap().push(seen_by("inner")))
        .unwrap();
    inline_fast(&linker).emit(Inner).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["inner: none"]);
}
