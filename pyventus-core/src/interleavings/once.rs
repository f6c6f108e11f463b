//! One-time subscribers under racing emitters: exactly one emission wins
//! each, however the emitters interleave, and it is unlinked from all its
//! events at once.
//!
//! The properties:
//!
//! - emitters racing on one event, or on two events of one subscriber, run
//!   it exactly once between them;
//! - once they are done, the subscriber is linked nowhere, and a later emit
//!   does not run it;
//! - raced by an `unsubscribe`, it runs at most once, and not in an emit
//!   that started after the `unsubscribe` returned `true`.

use shuttle::thread;

use super::every_schedule;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::{EventEmitter, EventKey, EventLinker, InlineProcessingService};

fn inline(linker: &EventLinker) -> EventEmitter {
    EventEmitter::builder()
        .linker(linker.clone())
        .processor(InlineProcessingService::default())
        .debug(false)
        .build()
}

/// `emitters` threads emit `Once` (each its own key among `keys`, in turn)
/// while a one-time subscriber of all of `keys` waits for the first.
fn racing_emitters(keys: &'static [&'static str], emitters: usize) {
    let linker = EventLinker::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let sub = linker
        .once_keys(keys.iter().copied())
        .subscribe(move || {
            counted.fetch_add(1, SeqCst);
        })
        .expect("subscribes");
    let threads: Vec<_> = (0..emitters)
        .map(|i| {
            let emitter = inline(&linker);
            thread::spawn(move || {
                emitter.emit_named(keys[i % keys.len()], ()).expect("emits");
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("the emitter finishes");
    }
    assert_eq!(
        runs.load(SeqCst),
        1,
        "one-time subscriber ran {} times",
        runs.load(SeqCst)
    );
    assert!(!sub.is_subscribed());
    assert_eq!(linker.subscriber_count(), 0);
    for key in keys {
        assert_eq!(linker.subscriber_count_of(EventKey::named(*key)), 0);
        inline(&linker).emit_named(*key, ()).expect("emits");
    }
    assert_eq!(runs.load(SeqCst), 1, "ran again after it was claimed");
}

#[test]
fn two_racing_emitters_run_a_one_time_subscriber_exactly_once() {
    every_schedule("once/2 emitters", 3, 5_000, || {
        racing_emitters(&["Once"], 2);
    });
}

#[test]
fn three_racing_emitters_run_a_one_time_subscriber_exactly_once() {
    every_schedule("once/3 emitters", 2, 20_000, || {
        racing_emitters(&["Once"], 3);
    });
}

#[test]
fn emitters_of_two_events_run_their_one_time_subscriber_exactly_once() {
    every_schedule("once/2 events", 3, 5_000, || {
        racing_emitters(&["First", "Second"], 2);
    });
}

#[test]
fn an_unsubscribe_racing_an_emitter_leaves_at_most_one_run_and_none_after_it() {
    every_schedule("once/unsubscribe", 3, 1_000, || {
        let linker = EventLinker::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let sub = linker
            .once_named("Once")
            .subscribe(move || {
                counted.fetch_add(1, SeqCst);
            })
            .expect("subscribes");
        let unsubscribed = Arc::new(AtomicBool::new(false));
        let remover = {
            let unsubscribed = unsubscribed.clone();
            thread::spawn(move || {
                // `true` only if it was still linked: no emission had won it.
                if sub.unsubscribe() {
                    unsubscribed.store(true, SeqCst);
                }
            })
        };
        let emitter = inline(&linker);
        let before = runs.load(SeqCst);
        let after_unsubscribe = unsubscribed.load(SeqCst);
        emitter.emit_named("Once", ()).expect("emits");
        if after_unsubscribe {
            assert_eq!(
                runs.load(SeqCst),
                before,
                "ran after its unsubscribe returned"
            );
        }
        remover.join().expect("the remover finishes");
        emitter.emit_named("Once", ()).expect("emits");
        assert!(runs.load(SeqCst) <= 1);
        assert_eq!(linker.subscriber_count(), 0);
    });
}
