//! A typed event's lane: its subscribers, when all are synchronous callbacks
//! of its type, run with `&E` directly. A small lane (32 or fewer) holds their
//! calls from the start; a larger one makes them at its first run. Both must run
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

/// Declares the event types `Many0` to `Many{N-1}` (each a `u32` and its own
/// name), and `subscribe_many`, which subscribes to each a handler that
/// records its type's number and the value, and `emit_many(emitter, i, v)`.
macro_rules! many_event_types {
    ($($ty:ident = $i:literal),* $(,)?) => {
        $(
            #[derive(Debug, Clone, Event)]
            struct $ty(u32);
        )*

        const MANY: usize = [$($i),*].len();

        fn subscribe_many(linker: &EventLinker, seen: &Arc<Mutex<Vec<(usize, u32)>>>) {
            $(
                let log = seen.clone();
                linker
                    .on::<$ty>()
                    .subscribe(move |e: &$ty| log.lock().unwrap().push(($i, e.0)))
                    .unwrap();
            )*
        }

        fn emit_many(emitter: &pyventus::EventEmitter, i: usize, value: u32) {
            match i {
                $($i => emitter.emit($ty(value)).unwrap(),)*
                _ => unreachable!("{i} is not one of the types"),
            }
        }
    };
}

many_event_types!(
    M0 = 0,
    M1 = 1,
    M2 = 2,
    M3 = 3,
    M4 = 4,
    M5 = 5,
    M6 = 6,
    M7 = 7,
    M8 = 8,
    M9 = 9,
    M10 = 10,
    M11 = 11,
    M12 = 12,
    M13 = 13,
    M14 = 14,
    M15 = 15,
    M16 = 16,
    M17 = 17,
    M18 = 18,
    M19 = 19,
    M20 = 20,
    M21 = 21,
    M22 = 22,
    M23 = 23,
    M24 = 24,
    M25 = 25,
    M26 = 26,
    M27 = 27,
    M28 = 28,
    M29 = 29,
    M30 = 30,
    M31 = 31,
    M32 = 32,
    M33 = 33,
    M34 = 34,
    M35 = 35,
    M36 = 36,
    M37 = 37,
    M38 = 38,
    M39 = 39,
    M40 = 40,
    M41 = 41,
    M42 = 42,
    M43 = 43,
    M44 = 44,
    M45 = 45,
    M46 = 46,
    M47 = 47,
    M48 = 48,
    M49 = 49,
    M50 = 50,
    M51 = 51,
    M52 = 52,
    M53 = 53,
    M54 = 54,
    M55 = 55,
    M56 = 56,
    M57 = 57,
    M58 = 58,
    M59 = 59,
    M60 = 60,
    M61 = 61,
    M62 = 62,
    M63 = 63,
    M64 = 64,
    M65 = 65,
    M66 = 66,
    M67 = 67,
    M68 = 68,
    M69 = 69,
    M70 = 70,
    M71 = 71,
    M72 = 72,
    M73 = 73,
    M74 = 74,
    M75 = 75,
    M76 = 76,
    M77 = 77,
    M78 = 78,
    M79 = 79,
    M80 = 80,
    M81 = 81,
    M82 = 82,
    M83 = 83,
    M84 = 84,
    M85 = 85,
    M86 = 86,
    M87 = 87,
    M88 = 88,
    M89 = 89,
    M90 = 90,
    M91 = 91,
    M92 = 92,
    M93 = 93,
    M94 = 94,
    M95 = 95,
    M96 = 96,
    M97 = 97,
    M98 = 98,
    M99 = 99,
    M100 = 100,
    M101 = 101,
    M102 = 102,
    M103 = 103,
    M104 = 104,
    M105 = 105,
    M106 = 106,
    M107 = 107,
    M108 = 108,
    M109 = 109,
    M110 = 110,
    M111 = 111,
    M112 = 112,
    M113 = 113,
    M114 = 114,
    M115 = 115,
    M116 = 116,
    M117 = 117,
    M118 = 118,
    M119 = 119,
    M120 = 120,
    M121 = 121,
    M122 = 122,
    M123 = 123,
    M124 = 124,
    M125 = 125,
    M126 = 126,
    M127 = 127,
    M128 = 128,
    M129 = 129,
    M130 = 130,
    M131 = 131,
    M132 = 132,
    M133 = 133,
    M134 = 134,
    M135 = 135,
    M136 = 136,
    M137 = 137,
    M138 = 138,
    M139 = 139,
    M140 = 140,
    M141 = 141,
    M142 = 142,
    M143 = 143,
    M144 = 144,
    M145 = 145,
    M146 = 146,
    M147 = 147,
    M148 = 148,
    M149 = 149,
    M150 = 150,
    M151 = 151,
    M152 = 152,
    M153 = 153,
    M154 = 154,
    M155 = 155,
    M156 = 156,
    M157 = 157,
    M158 = 158,
    M159 = 159,
);

#[test]
fn more_event_types_than_each_threads_cache_has_places_each_run_their_own_subscribers() {
    // A thread caches the lanes of 128 event types at most, two places for
    // each hash of a name's top bits: with 160 types, some find both of their
    // places taken, and many share a pair. Each must still run its own
    // subscriber only, whatever was emitted before it on the thread.
    let linker = EventLinker::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    subscribe_many(&linker, &seen);
    let emitter = inline_fast(&linker);
    let mut expected = Vec::new();
    for round in 0..3_u32 {
        // Forwards, then backwards, then every 7th: each type follows others.
        let order: Vec<usize> = match round {
            0 => (0..MANY).collect(),
            1 => (0..MANY).rev().collect(),
            _ => (0..MANY).map(|i| i * 7 % MANY).collect(),
        };
        for i in order {
            let value = round * 1000 + u32::try_from(i).unwrap();
            emit_many(&emitter, i, value);
            expected.push((i, value));
        }
    }
    assert_eq!(*seen.lock().unwrap(), expected);
}

/// A lane of unit handlers and failure callbacks only (its quiet form, up to
/// 32; a large lane past that): each panic reaches the failure callback of
/// the subscriber that panicked, found by the address of its call.
#[test]
fn each_panic_in_a_quiet_lane_reaches_its_own_subscribers_failure_callback() {
    for size in [1, 5, 32, 33] {
        let linker = EventLinker::new();
        let emitter = inline_fast(&linker);
        let failed = Arc::new(Mutex::new(Vec::new()));
        let ran = Arc::new(AtomicUsize::new(0));
        let _subs: Vec<_> = (0..size)
            .map(|i| {
                let (failed, ran) = (failed.clone(), ran.clone());
                linker
                    .on::<Tick>()
                    .on_failure(move |error| {
                        failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((i, error.to_string()));
                    })
                    .subscribe(move |t: &Tick| {
                        ran.fetch_add(1, Ordering::SeqCst);
                        assert!(i % 3 != 1, "subscriber {i} panics at tick {}", t.n);
                    })
                    .unwrap()
            })
            .collect();
        emitter.emit(Tick { n: 7 }).unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), size, "{size}: everyone ran");
        let failed = std::mem::take(&mut *failed.lock().unwrap());
        let panicking: Vec<_> = (0..size).filter(|i| i % 3 == 1).collect();
        assert_eq!(
            failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            panicking,
            "{size}: each failure callback told once, in order"
        );
        for (i, error) in &failed {
            assert!(
                error.contains(&format!("subscriber {i} panics at tick 7")),
                "{size}: subscriber {i}'s callback got {error:?}"
            );
        }
    }
}

/// Every subscriber of a lane removes every other from inside its run: the
/// running lane (and what its calls capture) lives until the emission ends,
/// which runs everyone it started with; the next runs no one.
#[test]
fn a_lane_whose_subscribers_remove_everyone_from_inside_it_finishes_its_run() {
    static SUBSCRIBERS: Mutex<Vec<EventSubscriber>> = Mutex::new(Vec::new());
    fn remove_everyone() {
        let all = std::mem::take(&mut *SUBSCRIBERS.lock().unwrap_or_else(PoisonError::into_inner));
        for sub in all {
            sub.unsubscribe();
        }
    }
    for size in [1, 3, 32, 33, 50] {
        let linker = EventLinker::new();
        let emitter = inline_fast(&linker);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subs: Vec<_> = (0..size)
            .map(|i| {
                let seen = seen.clone();
                // Heap data the call reads: gone if the call were dropped early.
                let name = format!("subscriber {i}");
                let on = linker.on::<Tick>();
                if i % 4 == 2 {
                    on.subscribe(move |_: &Tick| -> anyhow::Result<()> {
                        seen.lock().unwrap().push(name.clone());
                        remove_everyone();
                        Ok(())
                    })
                } else {
                    on.subscribe(move |_: &Tick| {
                        seen.lock().unwrap().push(name.clone());
                        remove_everyone();
                    })
                }
                .unwrap()
            })
            .collect();
        *SUBSCRIBERS.lock().unwrap() = subs;
        emitter.emit(Tick { n: 0 }).unwrap();
        let want: Vec<_> = (0..size).map(|i| format!("subscriber {i}")).collect();
        assert_eq!(*seen.lock().unwrap(), want, "{size}: the first emission");
        emitter.emit(Tick { n: 1 }).unwrap();
        assert_eq!(
            seen.lock().unwrap().len(),
            size,
            "{size}: removed subscribers ran"
        );
    }
}
