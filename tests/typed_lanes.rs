//! A typed event's lane: its subscribers, when all are synchronous callbacks
//! of its type, run with `&E` directly. A small lane (32 or fewer) holds their
//! typed calls; a larger one downcasts each call as it runs. Both must run
//! everyone in order, hand a panic or an error to the subscriber's own
//! failure callback, tell a success to who asked, and follow subscriptions
//! and removals at once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use common::inline_fast;
use pyventus::{Event, EventLinker, EventSubscriber};

#[derive(Debug, Clone, Event)]
struct Tick {
    n: usize,
}

/// What the subscribers saw, in order: `(subscriber, tick)`, and what their
/// callbacks were told.
#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(usize, usize)>>,
    failures: AtomicUsize,
    successes: AtomicUsize,
}

impl Seen {
    fn calls(&self) -> Vec<(usize, usize)> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn call(&self, sub: usize, tick: &Tick) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((sub, tick.n));
    }
}

/// Subscriber `i`: a quiet unit handler, except every 10th (which panics on
/// odd ticks, told to its failure callback), every 10th plus 3 (a unit
/// handler whose success goes to a callback) and every 10th plus 7 (which
/// returns an error on odd ticks).
fn subscribe(linker: &EventLinker, seen: &Arc<Seen>, i: usize) -> EventSubscriber {
    let s = seen.clone();
    let failures = seen.clone();
    let on = linker.on::<Tick>().on_failure(move |_| {
        failures.failures.fetch_add(1, Ordering::SeqCst);
    });
    match i % 10 {
        0 => on.subscribe(move |t: &Tick| {
            s.call(i, t);
            assert!(t.n.is_multiple_of(2), "subscriber {i} refuses odd ticks");
        }),
        3 => {
            let successes = seen.clone();
            on.on_success(move || {
                successes.successes.fetch_add(1, Ordering::SeqCst);
            })
            .subscribe(move |t: &Tick| s.call(i, t))
        }
        7 => on.subscribe(move |t: &Tick| -> anyhow::Result<()> {
            s.call(i, t);
            anyhow::ensure!(t.n.is_multiple_of(2), "odd tick");
            Ok(())
        }),
        _ => on.subscribe(move |t: &Tick| s.call(i, t)),
    }
    .unwrap()
}

fn expected(subs: &[usize], tick: usize) -> Vec<(usize, usize)> {
    subs.iter().map(|&i| (i, tick)).collect()
}

fn lane_of(size: usize) {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let seen = Arc::new(Seen::default());
    let mut subs: Vec<_> = (0..size)
        .map(|i| (i, subscribe(&linker, &seen, i)))
        .collect();
    let ids = |subs: &[(usize, EventSubscriber)]| subs.iter().map(|(i, _)| *i).collect::<Vec<_>>();
    let special = |subs: &[(usize, EventSubscriber)], rest: usize| {
        subs.iter().filter(|(i, _)| i % 10 == rest).count()
    };

    for tick in 0..4 {
        emitter.emit(Tick { n: tick }).unwrap();
        assert_eq!(
            seen.calls(),
            expected(&ids(&subs), tick),
            "{size}: tick {tick}"
        );
    }
    // Two odd ticks: each panicking and each failing subscriber failed twice;
    // the notifying ones were told of four successes.
    assert_eq!(
        seen.failures.swap(0, Ordering::SeqCst),
        2 * (special(&subs, 0) + special(&subs, 7)),
        "{size}: failures"
    );
    assert_eq!(
        seen.successes.swap(0, Ordering::SeqCst),
        4 * special(&subs, 3),
        "{size}: successes"
    );

    // One more (a lane grows by one), then the first removed.
    subs.push((size, subscribe(&linker, &seen, size)));
    emitter.emit(Tick { n: 10 }).unwrap();
    assert_eq!(seen.calls(), expected(&ids(&subs), 10), "{size}: one more");
    let (_, first) = subs.remove(0);
    assert!(first.unsubscribe());
    emitter.emit(Tick { n: 12 }).unwrap();
    assert_eq!(seen.calls(), expected(&ids(&subs), 12), "{size}: one less");
}

#[test]
fn a_small_lane_runs_everyone_in_order_with_their_callbacks() {
    lane_of(12);
}

#[test]
fn a_large_lane_runs_everyone_in_order_with_their_callbacks() {
    lane_of(45);
}

#[test]
fn a_lane_that_grows_past_small_keeps_running_everyone() {
    // 31 -> 32 (still small) -> 33 (large), emitting at each size.
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let seen = Arc::new(Seen::default());
    let mut subs = Vec::new();
    for i in 0..34 {
        subs.push(subscribe(&linker, &seen, i * 10 + 1));
        emitter.emit(Tick { n: 2 }).unwrap();
        let want: Vec<_> = (0..=i).map(|j| (j * 10 + 1, 2)).collect();
        assert_eq!(seen.calls(), want, "{} subscribers", i + 1);
    }
}
