//! Named emits through an `EventKey` find their subscribers in a per-thread
//! cache (32 slots, by the name's hash), as typed emits do in their type's
//! slot; `emit_named` with a `&'static str` in another (16 slots, by the
//! name's address). What the cache must never do: run a removed subscriber, miss a new
//! one, mix two names that share a slot, mix two linkers, or let a payload of
//! another type through on the second emit when the first refused it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::inline_fast;
use pyventus::{Error, Event, EventEmitter, EventKey, EventLinker, EventSubscriber, NamedKey};

/// A subscriber to `name` that counts its calls (and sums its payloads).
fn counter(linker: &EventLinker, name: &'static str) -> (Arc<AtomicUsize>, EventSubscriber) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let sub = linker
        .on_named(name)
        .subscribe(move |n: &u64| {
            c.fetch_add(usize::try_from(*n).unwrap(), Ordering::SeqCst);
        })
        .unwrap();
    (count, sub)
}

static TICK: EventKey = EventKey::named_static("Tick");

#[test]
fn subscribers_added_after_an_emit_run_and_removed_ones_stop_at_once() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    emitter.emit_to(&TICK, 1_u64).unwrap(); // caches "nobody"
    let (first, first_sub) = counter(&linker, "Tick");
    emitter.emit_to(&TICK, 1_u64).unwrap();
    assert_eq!(
        first.load(Ordering::SeqCst),
        1,
        "a subscriber added after an emit"
    );

    let (second, _second_sub) = counter(&linker, "Tick");
    emitter.emit_to(&TICK, 1_u64).unwrap();
    assert_eq!(
        (first.load(Ordering::SeqCst), second.load(Ordering::SeqCst)),
        (2, 1)
    );

    assert!(first_sub.unsubscribe());
    emitter.emit_to(&TICK, 1_u64).unwrap();
    assert_eq!(
        (first.load(Ordering::SeqCst), second.load(Ordering::SeqCst)),
        (2, 2)
    );
}

#[test]
fn names_that_share_a_cache_slot_each_reach_their_own_subscribers() {
    // A hundred names over 32 slots: many share one; emitting them in turn
    // replaces a slot's name again and again.
    let names: Vec<&'static str> = (0..100)
        .map(|i| &*Box::leak(format!("Shared{i}").into_boxed_str()))
        .collect();
    let linker = EventLinker::new();
    let counts: Vec<_> = names.iter().map(|name| counter(&linker, name)).collect();
    let keys: Vec<EventKey> = names.iter().map(|name| EventKey::named(*name)).collect();
    let emitter = inline_fast(&linker);
    for round in 1..=3_u64 {
        for key in &keys {
            emitter.emit_to(key, round).unwrap();
        }
        for name in names.iter().rev() {
            // By name too: the cache of `&'static str` names (16 slots).
            emitter.emit_named(*name, round).unwrap();
        }
    }
    for (name, (count, _sub)) in names.iter().zip(&counts) {
        assert_eq!(
            count.load(Ordering::SeqCst),
            12,
            "{name}: (1 + 2 + 3) twice"
        );
    }
}

#[test]
fn two_linkers_with_one_name_keep_their_subscribers_apart() {
    let (a, b) = (EventLinker::new(), EventLinker::new());
    let (in_a, _sa) = counter(&a, "Tick");
    let (in_b, _sb) = counter(&b, "Tick");
    let (on_a, on_b) = (inline_fast(&a), inline_fast(&b));
    for _ in 0..3 {
        on_a.emit_to(&TICK, 1_u64).unwrap();
        on_b.emit_to(&TICK, 10_u64).unwrap();
    }
    assert_eq!(
        (in_a.load(Ordering::SeqCst), in_b.load(Ordering::SeqCst)),
        (3, 30)
    );
}

#[derive(Debug, Clone, Event)]
struct Ping;

/// A subscriber to the typed event `Ping` that counts its calls.
fn ping_counter(linker: &EventLinker) -> Arc<AtomicUsize> {
    let pings = Arc::new(AtomicUsize::new(0));
    let p = pings.clone();
    linker
        .on::<Ping>()
        .subscribe(move |_: &Ping| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    pings
}

#[test]
fn a_payload_of_the_wrong_type_is_refused_on_every_emit_not_only_the_first() {
    let linker = EventLinker::new();
    let pings = ping_counter(&linker);
    let emitter = inline_fast(&linker);
    let key = EventKey::named("Ping");
    for _ in 0..3 {
        assert!(matches!(
            emitter.emit_to(&key, 7_u32),
            Err(Error::PayloadType { .. })
        ));
    }
    // Its own type goes through the same key, and the typed emit still works.
    emitter.emit_to(&key, Ping).unwrap();
    emitter.emit(Ping).unwrap();
    assert_eq!(pings.load(Ordering::SeqCst), 2);
}

/// Two threads `emit` "Tick" while subscribers to it come and go; then one
/// live subscriber must be the only one an emit runs.
fn churn(emit: fn(&EventEmitter)) {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let done = Arc::new(AtomicBool::new(false));
    let emitters: Vec<_> = (0..2)
        .map(|_| {
            let (emitter, done) = (emitter.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    emit(&emitter);
                }
            })
        })
        .collect();
    for _ in 0..200 {
        let (_count, sub) = counter(&linker, "Tick");
        sub.unsubscribe();
    }
    done.store(true, Ordering::Relaxed);
    for thread in emitters {
        thread.join().unwrap();
    }
    let (after, _sub) = counter(&linker, "Tick");
    emit(&emitter);
    assert_eq!(
        after.load(Ordering::SeqCst),
        1,
        "only the live subscriber ran"
    );
}

#[test]
fn emitting_from_many_threads_while_named_subscribers_come_and_go_runs_only_live_ones() {
    churn(|emitter| emitter.emit_to(&TICK, 1_u64).unwrap());
}

// --- The same promises through `emit_named` with a `&'static str` (a
// literal), whose lanes are found by the name's address.

#[test]
fn a_literal_name_reaches_subscribers_added_after_an_emit_and_stops_removed_ones() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    emitter.emit_named("Tick", 1_u64).unwrap(); // caches "nobody"
    let (first, first_sub) = counter(&linker, "Tick");
    emitter.emit_named("Tick", 1_u64).unwrap();
    let (second, _second_sub) = counter(&linker, "Tick");
    emitter.emit_named("Tick", 1_u64).unwrap();
    assert!(first_sub.unsubscribe());
    emitter.emit_named("Tick", 1_u64).unwrap();
    assert_eq!(
        (first.load(Ordering::SeqCst), second.load(Ordering::SeqCst)),
        (2, 2)
    );
    // The same name as a `String` (hashed) and through its key: one event.
    emitter.emit_named(String::from("Tick"), 1_u64).unwrap();
    emitter.emit_to(&TICK, 1_u64).unwrap();
    assert_eq!(second.load(Ordering::SeqCst), 4);
}

#[test]
fn a_literal_name_keeps_two_linkers_apart_and_reaches_global_subscribers() {
    let (a, b) = (EventLinker::new(), EventLinker::new());
    let (in_a, _sa) = counter(&a, "Tick");
    let (in_b, _sb) = counter(&b, "Tick");
    let (on_a, on_b) = (inline_fast(&a), inline_fast(&b));
    for _ in 0..3 {
        on_a.emit_named("Tick", 1_u64).unwrap();
        on_b.emit_named("Tick", 10_u64).unwrap();
    }
    assert_eq!(
        (in_a.load(Ordering::SeqCst), in_b.load(Ordering::SeqCst)),
        (3, 30)
    );
    // A global subscriber added later: the lane no longer runs it all.
    let global = Arc::new(AtomicUsize::new(0));
    let g = global.clone();
    let _global_sub = a
        .on_any()
        .subscribe(move || {
            g.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    on_a.emit_named("Tick", 1_u64).unwrap();
    assert_eq!(
        (in_a.load(Ordering::SeqCst), global.load(Ordering::SeqCst)),
        (4, 1)
    );
}

#[test]
fn a_literal_name_with_a_payload_of_the_wrong_type_is_refused_on_every_emit() {
    let linker = EventLinker::new();
    let (ticks, _sub) = counter(&linker, "Tick");
    let pings = ping_counter(&linker);
    let emitter = inline_fast(&linker);
    for _ in 0..3 {
        assert!(matches!(
            emitter.emit_named("Ping", 7_u32),
            Err(Error::PayloadType { .. })
        ));
        // A named event's subscribers of another payload type do not run.
        emitter.emit_named("Tick", 7_u32).unwrap();
    }
    emitter.emit_named("Ping", Ping).unwrap();
    emitter.emit_named("Tick", 2_u64).unwrap();
    assert_eq!(
        (pings.load(Ordering::SeqCst), ticks.load(Ordering::SeqCst)),
        (1, 2)
    );
    assert!(matches!(
        emitter.emit_named("", 1_u64),
        Err(Error::EmptyEventName)
    ));
}

#[test]
fn emits_alternating_two_payload_types_on_one_name_run_the_subscribers_on_theirs_each_time() {
    // A thread's slot keeps the lane for the payload type of the emit that
    // filled it: an emit of the other type first, then of the subscribers'.
    let linker = EventLinker::new();
    let (ticks, _sub) = counter(&linker, "Tick");
    let emitter = inline_fast(&linker);
    for _ in 0..3 {
        emitter.emit_named("Tick", 7_u32).unwrap();
        emitter.emit_named("Tick", 1_u64).unwrap();
        emitter.emit_to(&TICK, 7_u32).unwrap();
        emitter.emit_to(&TICK, 10_u64).unwrap();
    }
    assert_eq!(ticks.load(Ordering::SeqCst), 33);
}

#[test]
fn emitting_a_literal_from_many_threads_while_subscribers_come_and_go_runs_only_live_ones() {
    churn(|emitter| emitter.emit_named("Tick", 1_u64).unwrap());
}

// --- The same promises through a `NamedKey`, whose slot is its own.

pyventus::named_key!(static TYPED_TICK: NamedKey<u64> = "Tick");
pyventus::named_key!(static PING_AS_U32: NamedKey<u32> = "Ping");

#[test]
fn a_named_key_reaches_subscribers_added_after_an_emit_and_stops_removed_ones() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    emitter.emit_to(&TYPED_TICK, 1).unwrap(); // caches "nobody" in the key's slot
    let (first, first_sub) = counter(&linker, "Tick");
    emitter.emit_to(&TYPED_TICK, 1).unwrap();
    let (second, _second_sub) = counter(&linker, "Tick");
    emitter.emit_to(&TYPED_TICK, 1).unwrap();
    assert!(first_sub.unsubscribe());
    emitter.emit_to(&TYPED_TICK, 1).unwrap();
    assert_eq!(
        (first.load(Ordering::SeqCst), second.load(Ordering::SeqCst)),
        (2, 2)
    );
}

#[test]
fn a_named_key_keeps_two_linkers_apart_and_reaches_global_subscribers() {
    let (a, b) = (EventLinker::new(), EventLinker::new());
    let (in_a, _sa) = counter(&a, "Tick");
    let (in_b, _sb) = counter(&b, "Tick");
    let everything = Arc::new(AtomicUsize::new(0));
    let e = everything.clone();
    b.on_any()
        .subscribe(move || {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let (on_a, on_b) = (inline_fast(&a), inline_fast(&b));
    for _ in 0..3 {
        on_a.emit_to(&TYPED_TICK, 1).unwrap();
        on_b.emit_to(&TYPED_TICK, 10).unwrap();
    }
    assert_eq!(
        (in_a.load(Ordering::SeqCst), in_b.load(Ordering::SeqCst)),
        (3, 30)
    );
    assert_eq!(
        everything.load(Ordering::SeqCst),
        3,
        "b's global subscriber"
    );
}

#[test]
fn a_named_key_whose_name_a_typed_event_owns_is_refused_on_every_emit() {
    let linker = EventLinker::new();
    linker.on::<Ping>().subscribe(|_: &Ping| ()).unwrap();
    let emitter = inline_fast(&linker);
    for _ in 0..3 {
        assert!(matches!(
            emitter.emit_to(&PING_AS_U32, 7),
            Err(Error::PayloadType { .. })
        ));
    }
}

#[test]
fn a_named_key_and_its_event_key_reach_the_same_subscribers() {
    let linker = EventLinker::new();
    let (count, _sub) = counter(&linker, "Tick");
    let emitter = inline_fast(&linker);
    emitter.emit_to(&TYPED_TICK, 1).unwrap();
    emitter.emit_to(TYPED_TICK.key(), 10_u64).unwrap();
    emitter.emit_to(&TICK, 100_u64).unwrap();
    emitter.emit_named("Tick", 1000_u64).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1111);
    assert_eq!(*TYPED_TICK.key(), TICK);
    assert_eq!(format!("{TYPED_TICK:?}"), "NamedKey<u64>(\"Tick\")");
}
