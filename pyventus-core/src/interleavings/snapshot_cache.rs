//! The per-thread caches of what the registry holds (the last snapshot, the
//! event types' lanes, a named key's slot, the named lanes), against writers
//! on another thread.
//!
//! The property, for every emit path an inline emitter takes: **an emit sees
//! the registry as it was at one moment between the emit's start and its
//! end**. A writer thread links `B` beside `A` then takes `A` away (by
//! `unsubscribe`, `remove(key, sub)`, `remove_event` or `remove_all`), so the
//! registry goes through three states, `{A}`, `{A, B}`, then the last (`{B}`,
//! or nothing when the whole event went). Each emit records which of `A`
//! and `B` ran, and the test asserts that
//!
//! - what ran is one of the three states, never a mix (`{}` before the last
//!   state, say): the snapshot is whole;
//! - an emit that started after the writer finished (it read the writer's
//!   `done` flag first) sees the last state: no cache that the generation
//!   moved past is used, so a subscriber removed before an emit started
//!   never runs in it, and one linked before it started always does;
//! - one thread's emits never go back to an earlier state.
//!
//! The emitting thread's caches are warm before the writer starts (one emit
//! of the first state), which is what makes a stale cache possible at all.

use shuttle::thread;

use super::{every_schedule, sampled};
use crate::event::slot::LaneSlot;
use crate::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use crate::sync::{Arc, thread_local};
use crate::{
    AnyEvent, Event, EventEmitter, EventKey, EventLinker, EventSubscriber, InlineProcessingService,
    NamedKey,
};

/// What an emit carries: its number.
#[derive(Debug, Clone, Copy)]
struct Mark {
    emit: usize,
}

/// A typed event: its lane is cached at the first place of its pair in the
/// thread's table of event types' lanes.
impl Event for Mark {
    const NAME: &'static str = "Mark";
}

/// A typed event whose name's pair of places is `Mark`'s (as
/// `registry::thread_cache`'s own tests check): after an emit of `Mark`, its
/// lane takes the second place.
#[derive(Debug, Clone, Copy)]
struct Roommate(Mark);

impl Event for Roommate {
    const NAME: &'static str = "Roommate";
}

/// A third typed event of `Mark`'s pair: after emits of `Mark` and
/// `Roommate`, it finds both places taken and reads the registry's cached
/// snapshot (`Registry::with_snapshot`).
#[derive(Debug, Clone, Copy)]
struct Squatter(Mark);

impl Event for Squatter {
    const NAME: &'static str = "Squatter9";
}

thread_local! {
    static KEYED_SLOT: LaneSlot<Mark> = const { LaneSlot::new() };
}

/// A named event's key without a slot: its lanes are found by its hash.
static HASHED: EventKey = EventKey::named_static("Hashed");

/// A named event's key with a slot of its own, as `named_key!` makes one.
static KEYED: NamedKey<Mark> = NamedKey::__new("Keyed", &KEYED_SLOT);

/// The name both emits of `Path::Mixed` take: one `&'static str`, so they
/// share the thread's slot of its address (two equal literals need not).
static MIXED: &str = "Mixed";

/// The way an inline emit finds its subscribers.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// `emit_named` with a literal: the thread's lanes of `&'static str` names.
    Named,
    /// The same, each emit following one of another payload type on the same
    /// name (which its subscribers do not take: the general path), so the
    /// thread's slot is left for another type between emits.
    Mixed,
    /// `emit_to` an `EventKey`: the thread's named lanes, by the name's hash.
    Hashed,
    /// `emit_to` a `NamedKey`: the key's slot.
    Keyed,
    /// A typed event: the first place of its pair.
    Typed,
    /// A typed event whose pair's first place another type took: the second.
    Paired,
    /// A typed event whose pair two other types took: the cached snapshot.
    Crowded,
    /// Subscribers that take `Arc<E>`: an `EventEmission`, built and run.
    Shared,
    /// Subscribers of the global event: the general path, on a borrowed event.
    Global,
}

const A: u8 = 1;
const B: u8 = 2;
const EMITS: usize = 8;

/// Which subscribers each emit ran, as bits.
struct Seen([AtomicU8; EMITS]);

impl Seen {
    fn new() -> Arc<Self> {
        Arc::new(Seen(std::array::from_fn(|_| AtomicU8::new(0))))
    }

    fn record(&self, mark: Mark, who: u8) {
        if who == 0 {
            return; // a filler
        }
        // A subscriber runs once per emit: a second bit of the same kind is a bug.
        let before = self.0[mark.emit].fetch_or(who, SeqCst);
        assert_eq!(before & who, 0, "emit {} ran a subscriber twice", mark.emit);
    }

    fn ran(&self, emit: usize) -> u8 {
        self.0[emit].load(SeqCst)
    }
}

impl Path {
    fn key(self) -> EventKey {
        match self {
            Path::Named => EventKey::named("Named"),
            Path::Mixed => EventKey::named("Mixed"),
            Path::Hashed => HASHED.clone(),
            Path::Keyed => KEYED.key().clone(),
            Path::Typed | Path::Shared => EventKey::of::<Mark>(),
            Path::Paired => EventKey::of::<Roommate>(),
            Path::Crowded => EventKey::of::<Squatter>(),
            Path::Global => EventKey::any(),
        }
    }

    fn subscribe(self, linker: &EventLinker, seen: &Arc<Seen>, who: u8) -> EventSubscriber {
        let seen = seen.clone();
        let subscribed = match self {
            Path::Named => linker
                .on_named("Named")
                .subscribe(move |m: &Mark| seen.record(*m, who)),
            Path::Mixed => linker
                .on_named("Mixed")
                .subscribe(move |m: &Mark| seen.record(*m, who)),
            Path::Hashed => linker
                .on_named("Hashed")
                .subscribe(move |m: &Mark| seen.record(*m, who)),
            Path::Keyed => linker
                .on_named("Keyed")
                .subscribe(move |m: &Mark| seen.record(*m, who)),
            Path::Global => linker.on_any().subscribe(move |e: &AnyEvent| {
                seen.record(*e.downcast_ref::<Mark>().expect("a mark"), who);
            }),
            Path::Typed => linker
                .on::<Mark>()
                .subscribe(move |m: &Mark| seen.record(*m, who)),
            Path::Paired => linker
                .on::<Roommate>()
                .subscribe(move |s: &Roommate| seen.record(s.0, who)),
            Path::Crowded => linker
                .on::<Squatter>()
                .subscribe(move |s: &Squatter| seen.record(s.0, who)),
            Path::Shared => linker
                .on::<Mark>()
                .subscribe(move |m: Arc<Mark>| seen.record(*m, who)),
        };
        subscribed.expect("subscribes")
    }

    fn emit(self, emitter: &EventEmitter, mark: Mark) {
        let result = match self {
            Path::Named => emitter.emit_named("Named", mark),
            Path::Mixed => emitter
                .emit_named(MIXED, 0_u8)
                .and_then(|()| emitter.emit_named(MIXED, mark)),
            Path::Hashed => emitter.emit_to(&HASHED, mark),
            Path::Keyed => emitter.emit_to(&KEYED, mark),
            Path::Global => emitter.emit_named("Global", mark),
            Path::Typed | Path::Shared => emitter.emit(mark),
            // The others of the pair have no subscriber here: they run nothing.
            Path::Paired => emitter
                .emit(Mark { emit: 0 })
                .and_then(|()| emitter.emit(Roommate(mark))),
            Path::Crowded => emitter
                .emit(Mark { emit: 0 })
                .and_then(|()| emitter.emit(Roommate(Mark { emit: 0 })))
                .and_then(|()| emitter.emit(Squatter(mark))),
        };
        result.expect("emits");
    }
}

/// How the writer takes `A` away.
#[derive(Debug, Clone, Copy)]
enum Removal {
    Unsubscribe,
    Unlink,
    RemoveEvent,
    RemoveAll,
}

impl Removal {
    fn apply(self, linker: &EventLinker, key: EventKey, a: &EventSubscriber) {
        let removed = match self {
            Removal::Unsubscribe => a.unsubscribe(),
            Removal::Unlink => linker.remove(key, a),
            Removal::RemoveEvent => linker.remove_event(key),
            Removal::RemoveAll => linker.remove_all(),
        };
        assert!(removed, "{self:?} removed nothing");
    }

    /// The registry's states, in order, as the bits of who runs.
    fn states(self) -> [u8; 3] {
        match self {
            Removal::Unsubscribe | Removal::Unlink => [A, A | B, B],
            Removal::RemoveEvent | Removal::RemoveAll => [A, A | B, 0],
        }
    }
}

/// One race: the writer against `emitters` emitting threads (this one and
/// up to one more), each emitting `racing` times while the writer runs, on an
/// event with `fillers` more subscribers (past 32, a list is append-only and
/// a removal leaves a tombstone).
#[derive(Debug, Clone, Copy)]
struct Race {
    path: Path,
    removal: Removal,
    racing: usize,
    emitters: usize,
    fillers: usize,
}

impl Race {
    fn new(path: Path, removal: Removal) -> Self {
        Race {
            path,
            removal,
            racing: 2,
            emitters: 1,
            fillers: 0,
        }
    }

    /// One schedule.
    fn run(self) {
        let Race { path, .. } = self;
        let linker = EventLinker::new();
        let seen = Seen::new();
        let a = path.subscribe(&linker, &seen, A);
        for _ in 0..self.fillers {
            path.subscribe(&linker, &seen, 0);
        }
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (linker, seen, done) = (linker.clone(), seen.clone(), done.clone());
            thread::spawn(move || {
                let _b = path.subscribe(&linker, &seen, B);
                self.removal.apply(&linker, path.key(), &a);
                done.store(true, SeqCst);
            })
        };
        // Each emitter's emits are numbered from `first`: a warm-up, the racing
        // ones, and (on this thread) one after the writer is joined.
        let per_emitter = self.racing + 2;
        let other = (self.emitters > 1).then(|| {
            let (linker, done) = (linker.clone(), done.clone());
            thread::spawn(move || self.emit_racing(&linker, &done, per_emitter))
        });
        let mut after_writer = self.emit_racing(&linker, &done, 0);
        writer.join().expect("the writer finishes");
        // The writer's changes happened before this emit started.
        let last = self.racing + 1;
        after_writer[last] = true;
        self.path.emit(&inline(&linker), Mark { emit: last });
        self.check(&seen, 0, &after_writer);
        if let Some(other) = other {
            let after_writer = other.join().expect("the other emitter finishes");
            self.check(&seen, per_emitter, &after_writer[..=self.racing]);
        }
    }

    /// Emits `racing` times from this thread, its caches first warmed (by
    /// an emit numbered `first`, which may see the writer's changes when
    /// not on this test's first thread). Whether each emit started after
    /// the writer finished.
    fn emit_racing(self, linker: &EventLinker, done: &AtomicBool, first: usize) -> [bool; EMITS] {
        let emitter = inline(linker);
        let mut after_writer = [false; EMITS];
        after_writer[0] = done.load(SeqCst);
        self.path.emit(&emitter, Mark { emit: first });
        for (emit, after) in after_writer
            .iter_mut()
            .enumerate()
            .take(self.racing + 1)
            .skip(1)
        {
            *after = done.load(SeqCst);
            self.path.emit(&emitter, Mark { emit: first + emit });
        }
        after_writer
    }

    /// Checks one thread's emits, numbered from `first`.
    fn check(self, seen: &Seen, first: usize, after_writer: &[bool]) {
        let states = self.removal.states();
        let mut at = 0;
        for (i, &after) in after_writer.iter().enumerate().take(self.racing + 2) {
            let emit = first + i;
            let ran = seen.ran(emit);
            let state = states.iter().position(|&s| s == ran).unwrap_or_else(|| {
                panic!(
                    "{self:?}: emit {emit} ran {ran:#b}, which the registry never held ({states:?})"
                )
            });
            assert!(
                state >= at,
                "{self:?}: emit {emit} saw state {state} after an earlier emit saw {at}"
            );
            at = state;
            if after {
                assert_eq!(
                    state, 2,
                    "{self:?}: emit {emit} started after the writer finished and ran {ran:#b}"
                );
            }
        }
    }
}

fn inline(linker: &EventLinker) -> EventEmitter {
    EventEmitter::builder()
        .linker(linker.clone())
        .processor(InlineProcessingService::default())
        .debug(false)
        .build()
}

const REMOVALS: [Removal; 4] = [
    Removal::Unsubscribe,
    Removal::Unlink,
    Removal::RemoveEvent,
    Removal::RemoveAll,
];

const PATHS: [Path; 8] = [
    Path::Named,
    Path::Hashed,
    Path::Keyed,
    Path::Typed,
    Path::Paired,
    Path::Crowded,
    Path::Shared,
    Path::Global,
];

/// Every schedule with at most three preemptions of two racing emits against
/// the writer, for one path and every kind of removal.
fn every_removal(path: Path) {
    // Three emits per mark make more steps, and more schedules.
    let limit = if matches!(path, Path::Crowded) {
        10_000
    } else {
        5_000
    };
    for removal in REMOVALS {
        every_schedule(&format!("{path:?}/{removal:?}"), 3, limit, move || {
            Race::new(path, removal).run();
        });
    }
}

#[test]
fn a_named_emit_sees_one_whole_state_of_the_registry_never_a_stale_one() {
    every_removal(Path::Named);
}

#[test]
fn a_named_emit_between_emits_of_another_type_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Mixed);
}

#[test]
fn an_emit_through_an_event_key_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Hashed);
}

#[test]
fn an_emit_through_a_named_key_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Keyed);
}

#[test]
fn an_emit_to_global_subscribers_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Global);
}

#[test]
fn a_typed_emit_through_its_lane_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Typed);
}

#[test]
fn a_typed_emit_through_the_second_place_of_its_pair_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Paired);
}

#[test]
fn a_typed_emit_whose_pair_is_taken_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Crowded);
}

#[test]
fn an_emission_built_off_the_fast_path_sees_one_whole_state_never_a_stale_one() {
    every_removal(Path::Shared);
}

#[test]
fn emits_on_two_threads_each_see_whole_states_in_order() {
    for path in PATHS {
        for removal in [Removal::Unsubscribe, Removal::RemoveEvent] {
            let race = Race {
                racing: 1,
                emitters: 2,
                ..Race::new(path, removal)
            };
            every_schedule(
                &format!("{path:?}/{removal:?} on 2 threads"),
                2,
                20_000,
                move || {
                    race.run();
                },
            );
        }
    }
}

#[test]
fn an_emit_over_a_list_with_tombstones_sees_one_whole_state_never_a_stale_one() {
    for path in PATHS {
        for removal in REMOVALS {
            let race = Race {
                emitters: 2,
                fillers: 40,
                ..Race::new(path, removal)
            };
            sampled(&format!("{path:?}/{removal:?} large"), 300, 3, move || {
                race.run();
            });
        }
    }
}
