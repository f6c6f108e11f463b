//! Each thread's caches of what the registry's current snapshot holds, and
//! the one lookup the emitter asks: did the event run here, or does the
//! general path take it?
//!
//! Four caches share one key, the snapshot's generation (unique across
//! linkers), and one answer, [`Found`]: nothing to run, a lane to run, or
//! the general path (the named events' caches lay it out as a
//! [`NamedFound`], typed for the payload of the emit that filled the slot).
//! Each is read with one thread-local access and no read-modify-write, and
//! filled on a miss from the snapshot:
//!
//! - the snapshot this thread used last (any linker's), for every emit;
//! - 128 event types' lanes, two places for each pair their name's hash
//!   picks, each checked against the event's type;
//! - a [`NamedKey`](crate::NamedKey)'s lane, in the [`LaneSlot`] `named_key!`
//!   gives it;
//! - 32 named events' lanes, by their name's hash, for an `EventKey`;
//! - 16 named events' lanes, by their name's address, for `emit_named` with a
//!   `&'static str` (a literal): no hashing at all.
//!
//! A cache keeps what it read until its thread reads another snapshot or
//! exits: a removed subscriber's captures may drop that much later, inside
//! the thread's destructors, where no pyventus code may panic (every access
//! is a `try_with`, and a cache borrowed further up the stack is skipped).

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::Event;
use crate::event::any_event::{EventName, EventObject, Named};
use crate::event::key::{KeyHash, hash_name};
use crate::event::slot::{LaneCache, LaneSlot};
use crate::registry::lane::{ErasedLane, Lane};
use crate::registry::{Registry, Snapshot};
use crate::sync::{AccessError, Arc, LocalKey, thread_local};
use crate::workflow::Dispatch;

thread_local! {
    /// The snapshot this thread used last (see `Registry::with_snapshot`).
    static CACHED: RefCell<Option<Arc<Snapshot>>> = const { RefCell::new(None) };
}

/// What a snapshot holds for one event, as a thread's caches keep it.
pub(crate) enum Found<L> {
    /// No subscriber: emitting it does nothing.
    Empty,
    /// Anything a lane does not run (global subscribers, one-time ones, mixed
    /// callbacks): the general path.
    General,
    /// Its subscribers, all synchronous callbacks of its payload's type.
    Lane(L),
}

/// What one thread knows of one event type's lane, as of one snapshot
/// generation (0: nothing yet; generations start at 1). Not public API: what a
/// [`LaneSlot`] holds, for every payload type.
#[doc(hidden)]
pub struct Known {
    generation: u64,
    found: Found<SlotLane>,
}

impl<E: 'static> LaneCache for E {
    type Cache = Known;
    const UNKNOWN: Known = Known {
        generation: 0,
        found: Found::Empty,
    };
}

/// The lane of a payload type `P` that a cache keeps (an event type's slot
/// of [`TYPED`], a `NamedKey`'s [`LaneSlot<P>`]): a `Lane<P>`, erased.
///
/// Typed (`Arc<Lane<P>>`, in a thread-local of each event type's), it made
/// every `#[derive(Event)]` compile that lane's drop glue, down to its typed
/// calls (57 M of rustc's instructions per event type in dev, against 0.6 M
/// for a hand-written `impl Event`). Erased, the glue is compiled once,
/// here; but a safe downcast on every emit (a call through the vtable, and a
/// compare) costs the inline emit more than comparing the type the cache
/// keeps beside it. So the lane's address is kept too, and read back as a
/// `Lane<P>`, unchecked: see [`SlotLane::lane`].
pub(crate) struct SlotLane {
    /// Keeps the lane alive: an `Arc<Lane<P>>`, erased. Only ever dropped.
    #[allow(dead_code)] // read through `lane`, its address
    owner: ErasedLane,
    /// The `Lane<P>` inside `owner`.
    lane: NonNull<()>,
}

impl SlotLane {
    /// `lane`, if it is a `Lane<P>`: what a cache of `P`'s lane may keep;
    /// otherwise `lane` back.
    fn of<P: 'static>(lane: ErasedLane) -> Result<Self, ErasedLane> {
        let Some(at) = lane.downcast_ref::<Lane<P>>().map(NonNull::from) else {
            return Err(lane);
        };
        Ok(SlotLane {
            lane: at.cast(),
            owner: lane,
        })
    }

    /// The lane, as the `Lane<P>` it is.
    ///
    /// `P` must be the type [`of`](Self::of) made it for: where it is kept
    /// says so. Every `SlotLane` is made by `of::<P>`, and kept only
    ///
    /// - by [`fill_typed`], in a [`TypedSlot`] whose `type_id` is `P`'s,
    ///   which [`run_typed_slot`] compares before it reads the lane as a
    ///   `Lane<P>`;
    /// - by [`fill_slot`], in that call's `LaneSlot<P>` (through
    ///   [`remember`], typed by the same `P`), whose type no other type's
    ///   code can name as its own; [`run_cached`] reads a `LaneSlot<P>`'s
    ///   lane as a `Lane<P>`;
    /// - by [`NamedFound::of`], with its `payload` set to `P`'s `TypeId`,
    ///   which [`NamedFound::run`] compares before it reads the lane as a
    ///   `Lane<P>`.
    #[inline]
    fn lane<P: 'static>(&self) -> &Lane<P> {
        // SAFETY: `self.lane` is the address of the `Lane<P>` that `of::<P>`
        // found in `owner` (see above for why this `P` is that one); `owner`
        // keeps it alive and in place for as long as `self` lives, and the
        // returned borrow cannot outlive `self`. A lane is never mutated
        // through its `Arc`, so a shared borrow of it is sound.
        #[allow(unsafe_code)]
        unsafe {
            self.lane.cast::<Lane<P>>().as_ref()
        }
    }
}

/// What the caches decided.
pub(crate) enum Lookup {
    /// Ran (or there was nothing to run).
    Ran,
    /// Not a lane's job: take the general path.
    General,
    /// The cache does not know this snapshot.
    Miss,
}

impl Lookup {
    /// What a cache answered: `Some(ran)` when it knew the snapshot (ran, or
    /// left the emission to the general path), `None` or no cache when not.
    #[inline]
    fn of(hit: Result<Option<bool>, AccessError>) -> Self {
        match hit {
            Ok(Some(true)) => Lookup::Ran,
            Ok(Some(false)) => Lookup::General,
            _ => Lookup::Miss,
        }
    }

    /// Whether the emission ran on a lane, `fill` deciding on a miss (it
    /// reads the snapshot into the cache and runs the emission if it can).
    #[inline]
    fn ran_or_fill(self, fill: impl FnOnce() -> bool) -> bool {
        match self {
            Lookup::Ran => true,
            Lookup::General => false,
            Lookup::Miss => fill(),
        }
    }
}

// --- The lookups the emitter asks: whether the emission ran here.

/// Runs `event` from `slot` (its `NamedKey`'s), whose lane
/// takes `payload`; on a miss, reads the snapshot into the slot first.
#[inline]
pub(crate) fn run_from_slot<O: EventObject, P: Any + Send + Sync>(
    registry: &Registry,
    slot: &'static LocalKey<LaneSlot<P>>,
    event: &O,
    payload: &P,
    hash: u64,
) -> bool {
    let delivery = || Dispatch::borrowed(event, &registry.settings);
    run_cached(slot, registry.generation(), payload, delivery)
        .ran_or_fill(|| fill_slot(registry, slot, event, payload, hash))
}

/// Runs the named event from this thread's named lanes; on a miss, reads the
/// snapshot into them first.
#[inline]
pub(crate) fn run_named<T: Send + Sync + 'static, N: EventName>(
    registry: &Registry,
    named: &Named<T, N>,
    hash: u64,
) -> bool {
    let delivery = || Dispatch::borrowed(named, &registry.settings);
    run_named_cached(
        hash,
        named.name.as_ref(),
        registry.generation(),
        &named.payload,
        delivery,
    )
    .ran_or_fill(|| fill_named_lane(registry, named, hash))
}

/// Runs the named event whose name is a `&'static str` from this thread's
/// lanes of such names, found by the name's address; on a miss, reads the
/// snapshot into them first (hashing the name once).
///
/// `name` is `named.name`, passed on its own: read back from `named`, which
/// the handlers' context borrows, it left the slot's address to be computed
/// again at every emit of a loop (108 instructions an emit became 122).
#[inline]
pub(crate) fn run_literal<T: Send + Sync + 'static>(
    registry: &Registry,
    name: &'static str,
    named: &Named<T, &'static str>,
) -> bool {
    let delivery = || Dispatch::borrowed(named, &registry.settings);
    run_literal_cached(name, registry.generation(), &named.payload, delivery)
        .ran_or_fill(|| fill_literal_lane(registry, named))
}

/// Runs the typed event `event` from this thread's lanes of event types; on
/// a miss, reads the snapshot into them first.
#[inline]
pub(crate) fn run_typed<E: Event>(registry: &Registry, event: &E) -> bool {
    let delivery = || Dispatch::borrowed(event, &registry.settings);
    run_typed_cached(registry.generation(), event, delivery)
        .ran_or_fill(|| fill_typed(registry, event))
}

// --- The snapshot cache.

impl Registry {
    /// Runs `f` on the current snapshot, from this thread's cache when it is
    /// current: one atomic load and no read-modify-write, where `ArcSwap`'s
    /// load takes two. The cache keeps one snapshot per thread (the last one
    /// this thread used, of any linker) until the thread uses another or exits,
    /// so what a removed subscriber captured may be dropped that much later.
    #[inline]
    pub(crate) fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        let mut f = Some(f);
        if let Ok(Some(result)) = CACHED.try_with(|cell| match cell.try_borrow() {
            Ok(cached) => match (&*cached, f.take()) {
                (Some(snapshot), Some(f)) if snapshot.generation == generation => Some(f(snapshot)),
                (_, back) => {
                    f = back;
                    None
                }
            },
            Err(_) => None,
        }) {
            return result;
        }
        match f {
            Some(f) => self.with_fresh_snapshot(f),
            None => unreachable!("`f` runs at most once, and returns when it does"),
        }
    }

    /// Loads the snapshot, caches it for this thread when the cache is free
    /// (not borrowed by an emission running further up this thread's stack),
    /// and runs `f` on it.
    #[cold]
    #[inline(never)]
    fn with_fresh_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        let snapshot = self.snapshot.load_full();
        let previous = CACHED
            .try_with(|cell| {
                cell.try_borrow_mut()
                    .ok()
                    .map(|mut slot| slot.replace(snapshot.clone()))
            })
            .ok()
            .flatten();
        // The previous snapshot may hold the last reference to a removed
        // subscriber, whose closure's captures drop now: outside the borrow.
        drop(previous);
        f(&snapshot)
    }
}

// --- A NamedKey's slot.

/// Runs `event` on its cached lane if this thread's cache knows `generation`.
#[inline]
fn run_cached<'d, E: Any + Send + Sync>(
    slot: &'static LocalKey<LaneSlot<E>>,
    generation: u64,
    event: &E,
    delivery: impl Fn() -> Dispatch<'d>,
) -> Lookup {
    let hit = slot.try_with(|slot| {
        let known = slot.0.try_borrow().ok()?;
        if known.generation != generation {
            return None;
        }
        match &known.found {
            Found::Empty => Some(true),
            Found::Lane(lane) => {
                lane.lane::<E>().deliver(event, delivery);
                Some(true)
            }
            Found::General => Some(false),
        }
    });
    Lookup::of(hit)
}

/// Remembers what the snapshot of `generation` holds for `E` on this thread,
/// unless an emission further up this thread's stack is using the cache.
fn remember<E: 'static>(
    slot: &'static LocalKey<LaneSlot<E>>,
    generation: u64,
    found: Found<SlotLane>,
) {
    let next = Known { generation, found };
    let previous = slot
        .try_with(|slot| {
            slot.0
                .try_borrow_mut()
                .ok()
                .map(|mut known| std::mem::replace(&mut *known, next))
        })
        .ok()
        .flatten();
    // What the previous lane held may drop now (a removed subscriber's
    // captures): outside the borrow.
    drop(previous);
}

// --- The event types' lanes.

/// How many pairs of places each thread has for the lanes of event types:
/// an event type may take either place of the pair its name's hash picks.
/// A type that finds both taken, by other types' lanes of the current
/// snapshot, takes the snapshot's lookup instead (a few dozen instructions
/// more an emit), and evicts no one.
const TYPED_PAIRS: usize = 64;

thread_local! {
    /// Each thread's lanes of event types, each in its own cell, so that an
    /// emission running from one leaves the others free for what its
    /// handlers emit.
    ///
    /// A table rather than a thread-local of each event type's (which
    /// `#[derive(Event)]` used to declare): each `thread_local!` cost a
    /// derive 9 M of rustc's instructions in dev, where a hand-written
    /// `impl Event` costs 0.6 M.
    static TYPED: [RefCell<TypedSlot>; 2 * TYPED_PAIRS] =
        const { [const { RefCell::new(TypedSlot::UNUSED) }; 2 * TYPED_PAIRS] };
}

/// What a thread remembers of one event type's lane, as of one snapshot
/// generation.
struct TypedSlot {
    /// 0 for a slot never filled (generations start at 1).
    generation: u64,
    /// The event type: it says which type `lane` is a lane of.
    type_id: TypeId,
    /// The lane, when its subscribers are all lane calls of the type.
    lane: Option<SlotLane>,
    /// With no lane, whether the general path runs the event (a
    /// [`Found::General`]), not nothing (a [`Found::Empty`]). (A `Found`
    /// would test its tag twice before its lane.)
    general: bool,
}

impl TypedSlot {
    const UNUSED: TypedSlot = TypedSlot {
        generation: 0,
        type_id: TypeId::of::<()>(),
        lane: None,
        general: true,
    };
}

/// The first of the two places of `E`'s lane in [`TYPED`].
struct TypedPair<E>(PhantomData<E>);

impl<E: Event> TypedPair<E> {
    /// The top bits of the name's hash, which the registry's table does not
    /// use for its own slots (it uses the low bits).
    #[allow(clippy::cast_possible_truncation)] // the top bits of a u64
    const FIRST: usize = 2 * (KeyHash::<E>::HASH >> (64 - TYPED_PAIRS.trailing_zeros())) as usize;
}

/// [`run_cached`] for an event type: its lane at either place of its pair.
#[inline]
fn run_typed_cached<'d, E: Event>(
    generation: u64,
    event: &E,
    delivery: impl Fn() -> Dispatch<'d>,
) -> Lookup {
    let hit = TYPED.try_with(|slots| {
        let first = TypedPair::<E>::FIRST;
        match run_typed_slot(&slots[first], generation, event, &delivery) {
            None => run_typed_slot(&slots[first + 1], generation, event, &delivery),
            hit => hit,
        }
    });
    Lookup::of(hit)
}

/// Runs `event` from `slot` if it holds `E`'s lane of `generation`.
#[inline(always)]
#[allow(clippy::inline_always)] // twice in `run_typed_cached`, which is inlined into every emit
fn run_typed_slot<'d, E: Event>(
    slot: &RefCell<TypedSlot>,
    generation: u64,
    event: &E,
    delivery: &impl Fn() -> Dispatch<'d>,
) -> Option<bool> {
    let known = slot.try_borrow().ok()?;
    if known.generation != generation || known.type_id != TypeId::of::<E>() {
        return None;
    }
    match &known.lane {
        Some(lane) => {
            lane.lane::<E>().deliver(event, delivery);
            Some(true)
        }
        None => Some(!known.general),
    }
}

/// Reads what the current snapshot holds for `E` into a place of its pair
/// (its own, or one no lane of this snapshot holds), then runs the emission
/// as [`run_payload_lane`] would: whether it ran.
///
/// The place is found first, and the lane read only for one: a type that
/// finds both places taken (by other types' lanes of this snapshot, or by
/// emissions further up this thread's stack) comes here at every emit, and
/// cloning the lane's `Arc` each time, a count every thread emitting the
/// type shares, cost it 430 instructions an emit where its lookup alone
/// costs a fraction of that.
#[cold]
#[inline(never)]
fn fill_typed<E: Event>(registry: &Registry, event: &E) -> bool {
    let hash = KeyHash::<E>::HASH;
    registry.with_snapshot(|snapshot| {
        let first = TypedPair::<E>::FIRST;
        let previous = TYPED
            .try_with(|slots| {
                let pair = &slots[first..first + 2];
                // Its own place first, then a free one; a place borrowed by
                // an emission further up this thread's stack is neither.
                let place = |fits: &dyn Fn(&TypedSlot) -> bool| {
                    pair.iter()
                        .find_map(|slot| slot.try_borrow_mut().ok().filter(|known| fits(known)))
                };
                let mut known = place(&|known| known.type_id == TypeId::of::<E>())
                    .or_else(|| place(&|known| known.generation != snapshot.generation))?;
                let (lane, general) = match lane_in(snapshot, E::NAME, hash) {
                    Found::Empty => (None, false),
                    Found::Lane(lane) => match SlotLane::of::<E>(lane) {
                        Ok(lane) => (Some(lane), false),
                        Err(_) => (None, true),
                    },
                    Found::General => (None, true),
                };
                let next = TypedSlot {
                    generation: snapshot.generation,
                    type_id: TypeId::of::<E>(),
                    lane,
                    general,
                };
                Some(std::mem::replace(&mut *known, next))
            })
            .ok()
            .flatten();
        // What the previous lane held may drop now (a removed subscriber's
        // captures): outside the borrow.
        drop(previous);
        run_payload_lane(registry, snapshot, event, event, hash)
    })
}

// --- The named events' lanes.

/// How many named events each thread caches the lanes of (by their name's
/// hash: a named emit whose slot another name took looks its event up again).
const NAMED_SLOTS: usize = 32;

/// What a thread remembers of one named event, as of one snapshot generation.
struct NamedSlot {
    /// 0 for a slot never filled (generations start at 1).
    generation: u64,
    hash: u64,
    /// The event's name: two names may share a hash.
    name: Cow<'static, str>,
    /// Its lane, for the payload type of the emit that filled the slot.
    found: NamedFound,
}

impl NamedSlot {
    const UNUSED: NamedSlot = NamedSlot {
        generation: 0,
        hash: 0,
        name: Cow::Borrowed(""),
        found: NamedFound::UNUSED,
    };
}

thread_local! {
    /// Each thread's lanes of named events: an emit through an `EventKey` finds
    /// its subscribers here, as a typed emit does in its type's slot.
    static NAMED: RefCell<[NamedSlot; NAMED_SLOTS]> =
        const { RefCell::new([const { NamedSlot::UNUSED }; NAMED_SLOTS]) };
}

#[inline]
#[allow(clippy::cast_possible_truncation)] // the low bits of a well-mixed hash
fn named_slot(hash: u64) -> usize {
    hash as usize % NAMED_SLOTS
}

/// [`run_cached`] for a named event: runs the lane of `name`'s subscribers on
/// `payload` when this thread has it for `generation`.
#[inline]
fn run_named_cached<'d, P: Any + Send + Sync>(
    hash: u64,
    name: &str,
    generation: u64,
    payload: &P,
    delivery: impl Fn() -> Dispatch<'d>,
) -> Lookup {
    let hit = NAMED.try_with(|slots| {
        let slots = slots.try_borrow().ok()?;
        let slot = &slots[named_slot(hash)];
        let own = &*slot.name;
        let same_name = std::ptr::eq(own, name) || own == name;
        if slot.generation != generation || slot.hash != hash || !same_name {
            return None;
        }
        slot.found.run(payload, delivery)
    });
    Lookup::of(hit)
}

/// What a slot of named events found: a [`Found`] laid out for the path that
/// runs a lane, whose only test is then its payload type's.
struct NamedFound {
    /// The lane, if its subscribers take the payload type `P` of the emit
    /// that filled the slot: a `Lane<P>`, read back unchecked once `payload`
    /// says the emit's payload is a `P` (a downcast would call `type_id`
    /// through the vtable at every emit).
    lane: Option<SlotLane>,
    /// `P`'s `TypeId`, with a lane.
    payload: TypeId,
    /// The lane, erased, if its subscribers take another type than the
    /// filling emit's payload: an emit of their type fills the slot again.
    other: Option<ErasedLane>,
    /// With no lane, whether the general path runs the event (a
    /// [`Found::General`]), not nothing (a [`Found::Empty`]).
    general: bool,
}

impl NamedFound {
    /// An unused slot's (never read: no generation is 0).
    const UNUSED: NamedFound = NamedFound {
        lane: None,
        payload: TypeId::of::<()>(),
        other: None,
        general: true,
    };

    /// `found` as a slot keeps it for emits of `P`.
    fn of<P: Any + Send + Sync>(found: Found<ErasedLane>) -> Self {
        let mut named = NamedFound {
            lane: None,
            payload: TypeId::of::<P>(),
            other: None,
            general: false,
        };
        match found {
            Found::Empty => {}
            Found::General => named.general = true,
            Found::Lane(lane) => match SlotLane::of::<P>(lane) {
                Ok(lane) => named.lane = Some(lane),
                Err(other) => named.other = Some(other),
            },
        }
        named
    }

    /// Runs a named event's payload on what a slot found: `Some(ran)`, or
    /// `None` when the slot should be filled again for `P` (see
    /// [`other_type`](Self::other_type)).
    #[inline]
    fn run<'d, P: Any + Send + Sync>(
        &self,
        payload: &P,
        delivery: impl Fn() -> Dispatch<'d>,
    ) -> Option<bool> {
        if let Some(lane) = &self.lane {
            if self.payload != TypeId::of::<P>() {
                // Its subscribers take another type: the general path says
                // what that means.
                return Some(false);
            }
            lane.lane::<P>().deliver(payload, delivery);
            return Some(true);
        }
        if let Some(other) = &self.other {
            return Self::other_type::<P>(other);
        }
        Some(!self.general)
    }

    /// What an emit of `P` does with a slot whose lane was left erased by an
    /// emit of another type than its subscribers': the general path takes
    /// `P` (and says what another type than the subscribers' means: an error
    /// if a typed event owns the name), unless the subscribers take `P`: then
    /// the slot is filled again, typed for `P`. So an emit of the wrong type
    /// does not push the right one off the slot, and allocates nothing.
    #[cold]
    #[inline(never)]
    fn other_type<P: Any + Send + Sync>(lane: &ErasedLane) -> Option<bool> {
        if lane.is::<Lane<P>>() {
            None
        } else {
            Some(false)
        }
    }
}

/// Puts `next` in slot `index` of this thread's `table`, unless an emission
/// further up this thread's stack is using the table; what the slot held is
/// dropped after the borrow ends (a removed subscriber's captures may run
/// code that emits).
fn replace_slot<S: 'static, const N: usize>(
    table: &'static LocalKey<RefCell<[S; N]>>,
    index: usize,
    next: S,
) {
    let previous = table
        .try_with(|slots| {
            slots
                .try_borrow_mut()
                .ok()
                .map(|mut slots| std::mem::replace(&mut slots[index], next))
        })
        .ok()
        .flatten();
    drop(previous);
}

/// Caches what the snapshot of `generation` holds for the named event.
fn remember_named(hash: u64, name: Cow<'static, str>, generation: u64, found: NamedFound) {
    let next = NamedSlot {
        generation,
        hash,
        name,
        found,
    };
    replace_slot(&NAMED, named_slot(hash), next);
}

// --- The lanes of named events named by a `&'static str`.

/// How many `&'static str` names each thread caches the lanes of.
const LITERAL_SLOTS: usize = 16;

/// What a thread remembers of one named event whose name is a `&'static str`:
/// such a str never moves nor changes, so its address and length name it, and
/// finding its slot needs no hash of its bytes.
struct LiteralSlot {
    /// 0 for a slot never filled (generations start at 1).
    generation: u64,
    name: &'static str,
    found: NamedFound,
}

thread_local! {
    /// Each thread's lanes of named events emitted by a `&'static str`.
    static LITERAL: RefCell<[LiteralSlot; LITERAL_SLOTS]> = const {
        RefCell::new(
            [const {
                LiteralSlot {
                    generation: 0,
                    name: "",
                    found: NamedFound::UNUSED,
                }
            }; LITERAL_SLOTS],
        )
    };
}

/// The slot of a `&'static str` name: its address, Fibonacci-hashed (the
/// top bits of the product depend on every bit of the address).
#[inline]
fn literal_slot(name: &'static str) -> usize {
    const LOG2: u32 = LITERAL_SLOTS.trailing_zeros();
    let address = name.as_ptr() as usize as u64;
    #[allow(clippy::cast_possible_truncation)] // LOG2 bits
    let slot = (address.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - LOG2)) as usize;
    slot
}

/// [`run_named_cached`] for a `&'static str` name: the same str (address and
/// length) finds its slot, with no comparison of its bytes.
#[inline]
fn run_literal_cached<'d, P: Any + Send + Sync>(
    name: &'static str,
    generation: u64,
    payload: &P,
    delivery: impl Fn() -> Dispatch<'d>,
) -> Lookup {
    let hit = LITERAL.try_with(|slots| {
        let slots = slots.try_borrow().ok()?;
        let slot = &slots[literal_slot(name)];
        if slot.generation != generation || !std::ptr::eq(slot.name, name) {
            return None;
        }
        slot.found.run(payload, delivery)
    });
    Lookup::of(hit)
}

/// Caches what the snapshot of `generation` holds for the named event.
fn remember_literal(name: &'static str, generation: u64, found: NamedFound) {
    let next = LiteralSlot {
        generation,
        name,
        found,
    };
    replace_slot(&LITERAL, literal_slot(name), next);
}

// --- Filling the caches from the snapshot, and the lanes it holds.

/// Reads what the current snapshot holds for the event into a slot of this
/// thread (a [`NamedKey`](crate::NamedKey)'s, whose subscribers take `P`),
/// then runs the emission as [`run_payload_lane`] would:
/// whether it ran.
#[cold]
#[inline(never)]
fn fill_slot<O: EventObject, P: Any + Send + Sync>(
    registry: &Registry,
    slot: &'static LocalKey<LaneSlot<P>>,
    event: &O,
    payload: &P,
    hash: u64,
) -> bool {
    registry.with_snapshot(|snapshot| {
        let found = match lane_in(snapshot, event.name(), hash) {
            Found::Empty => Found::Empty,
            Found::Lane(lane) => SlotLane::of::<P>(lane).map_or(Found::General, Found::Lane),
            Found::General => Found::General,
        };
        remember(slot, snapshot.generation, found);
        run_payload_lane(registry, snapshot, event, payload, hash)
    })
}

/// Reads what the current snapshot holds for the named event into this
/// thread's cache of named lanes, then runs the emission as
/// [`run_payload_lane`] would: whether it ran.
#[cold]
#[inline(never)]
fn fill_named_lane<T: Send + Sync + 'static, N: EventName>(
    registry: &Registry,
    named: &Named<T, N>,
    hash: u64,
) -> bool {
    registry.with_snapshot(|snapshot| {
        let found = NamedFound::of::<T>(lane_in(snapshot, named.name.as_ref(), hash));
        remember_named(hash, named.name.clone().into(), snapshot.generation, found);
        run_payload_lane(registry, snapshot, named, &named.payload, hash)
    })
}

/// [`fill_named_lane`] for a `&'static str` name, into the lanes found by
/// its address.
#[cold]
#[inline(never)]
fn fill_literal_lane<T: Send + Sync + 'static>(
    registry: &Registry,
    named: &Named<T, &'static str>,
) -> bool {
    let name = named.name;
    let hash = hash_name(name);
    registry.with_snapshot(|snapshot| {
        let found = NamedFound::of::<T>(lane_in(snapshot, name, hash));
        remember_literal(name, snapshot.generation, found);
        run_payload_lane(registry, snapshot, named, &named.payload, hash)
    })
}

/// What a snapshot holds for an event, as the lane caches keep it: no
/// subscriber, the lane of a direct entry, or what only the general path runs
/// (a global subscriber, or an entry that is not direct or has no lane).
fn lane_in(snapshot: &Snapshot, name: &str, hash: u64) -> Found<ErasedLane> {
    if snapshot.has_global() {
        return Found::General;
    }
    match snapshot.find(name, hash) {
        None => Found::Empty,
        Some(entry) if entry.direct => entry.lane.clone().map_or(Found::General, Found::Lane),
        Some(_) => Found::General,
    }
}

/// The fastest path, for an inline emitter, when no cache has the event's
/// lane: an event with no subscribers, or whose subscribers are all
/// synchronous callbacks of its payload's type (and nothing subscribes to
/// the global event), runs here with one downcast per emission. Returns
/// whether it ran; `false` leaves everything to the general path.
#[inline]
fn run_payload_lane<O: EventObject, P: Any + Send + Sync>(
    registry: &Registry,
    snapshot: &Snapshot,
    event: &O,
    payload: &P,
    hash: u64,
) -> bool {
    if snapshot.has_global() {
        return false;
    }
    let Some(entry) = snapshot.find(event.name(), hash) else {
        return true;
    };
    if !entry.direct {
        return false;
    }
    match entry
        .lane
        .as_ref()
        .and_then(|lane| lane.downcast_ref::<Lane<P>>())
    {
        Some(lane) => {
            lane.deliver(payload, || Dispatch::borrowed(event, &registry.settings));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventEmitter, EventLinker, InlineProcessingService};

    fn lookup(hash: u64, name: &str, generation: u64) -> &'static str {
        let never = || -> Dispatch<'static> { unreachable!("an empty event runs nothing") };
        match run_named_cached(hash, name, generation, &(), never) {
            Lookup::Ran => "ran",
            Lookup::General => "general",
            Lookup::Miss => "miss",
        }
    }

    #[test]
    fn a_named_slot_answers_only_for_its_own_name_hash_and_generation() {
        // Two names with one hash (as a crafted collision would give): the slot
        // remembers one of them only.
        remember_named(
            7,
            Cow::Borrowed("Alpha"),
            3,
            NamedFound::of::<()>(Found::Empty),
        );
        assert_eq!(lookup(7, "Alpha", 3), "ran");
        assert_eq!(
            lookup(7, &String::from("Alpha"), 3),
            "ran",
            "equal, not the same str"
        );
        assert_eq!(
            lookup(7, "Bravo", 3),
            "miss",
            "another name with the same hash"
        );
        assert_eq!(lookup(7, "Alpha", 4), "miss", "another snapshot");
        assert_eq!(
            lookup(7 + NAMED_SLOTS as u64, "Alpha", 3),
            "miss",
            "another hash, same slot"
        );
        remember_named(
            7,
            Cow::Borrowed("Bravo"),
            3,
            NamedFound::of::<()>(Found::General),
        );
        assert_eq!(lookup(7, "Bravo", 3), "general");
        assert_eq!(lookup(7, "Alpha", 3), "miss", "replaced");
    }

    #[test]
    fn an_emit_of_another_type_than_the_slot_lane_takes_the_general_path_without_refilling() {
        use crate::registry::lane::{CallTypes, RawLane};
        let lane = |of: CallTypes| {
            let raw = RawLane::build(of, &mut std::iter::empty()).expect("no subscriber to check");
            Lane::<u64>::erased(raw).expect("a lane of u64")
        };
        let never = || -> Dispatch<'static> { unreachable!("no lane runs here") };
        // Filled by an emit of u64, its subscribers' type: another type takes
        // the general path, and the slot stays u64's.
        let typed = NamedFound::of::<u64>(Found::Lane(lane(CallTypes::of::<u64>())));
        assert_eq!(typed.run(&1_u32, never), Some(false));
        assert!(typed.lane.is_some() && typed.payload == TypeId::of::<u64>());
        assert!(typed.other.is_none());
        // Filled by an emit of u32, which they do not take: u64 fills it
        // again (typed), anything else takes the general path.
        let erased = NamedFound::of::<u32>(Found::Lane(lane(CallTypes::of::<u64>())));
        assert!(erased.lane.is_none() && erased.other.is_some());
        assert_eq!(erased.run(&1_u64, never), None);
        assert_eq!(erased.run(&1_i8, never), Some(false));
    }

    fn lookup_literal(name: &'static str, generation: u64) -> &'static str {
        let never = || -> Dispatch<'static> { unreachable!("an empty event runs nothing") };
        match run_literal_cached(name, generation, &(), never) {
            Lookup::Ran => "ran",
            Lookup::General => "general",
            Lookup::Miss => "miss",
        }
    }

    #[test]
    fn a_literal_slot_answers_only_for_its_own_str_and_generation() {
        let alphabet: &'static str = Box::leak(String::from("Alphabet").into_boxed_str());
        let alpha = &alphabet[..5];
        remember_literal(alpha, 3, NamedFound::of::<()>(Found::Empty));
        assert_eq!(lookup_literal(alpha, 3), "ran");
        assert_eq!(lookup_literal(alpha, 4), "miss", "another snapshot");
        assert_eq!(
            lookup_literal(alphabet, 3),
            "miss",
            "the same address, another length"
        );
        let elsewhere: &'static str = Box::leak(String::from("Alpha").into_boxed_str());
        assert_eq!(
            lookup_literal(elsewhere, 3),
            "miss",
            "equal bytes at another address: hashed on the general path instead"
        );
        remember_literal(alpha, 3, NamedFound::of::<()>(Found::General));
        assert_eq!(lookup_literal(alpha, 3), "general", "replaced");
    }

    /// Three event types whose names pick one pair of places (the model
    /// checks of `interleavings::snapshot_cache` name theirs the same).
    #[derive(Debug)]
    struct Mark(u64);
    impl Event for Mark {
        const NAME: &'static str = "Mark";
    }
    #[derive(Debug)]
    struct Roommate(u64);
    impl Event for Roommate {
        const NAME: &'static str = "Roommate";
    }
    #[derive(Debug)]
    struct Squatter(u64);
    impl Event for Squatter {
        const NAME: &'static str = "Squatter9";
    }

    /// An emitter that runs its emissions in the caller, on the fast path.
    fn inline(linker: &EventLinker) -> EventEmitter {
        EventEmitter::builder()
            .processor(InlineProcessingService::new())
            .linker(linker.clone())
            .build()
    }

    /// Which event type each place of `E`'s pair holds the lane of, on this
    /// thread, as of `generation`.
    fn pair_of<E: Event>(generation: u64) -> [Option<TypeId>; 2] {
        let first = TypedPair::<E>::FIRST;
        TYPED
            .try_with(|slots| {
                [first, first + 1].map(|at| {
                    let known = slots[at].borrow();
                    (known.generation == generation).then_some(known.type_id)
                })
            })
            .expect("the thread is running")
    }

    #[test]
    fn mark_roommate_and_squatter_share_one_pair_of_places() {
        assert_eq!(TypedPair::<Mark>::FIRST, TypedPair::<Roommate>::FIRST);
        assert_eq!(TypedPair::<Mark>::FIRST, TypedPair::<Squatter>::FIRST);
        assert_eq!(TypedPair::<Mark>::FIRST % 2, 0);
    }

    #[test]
    fn event_types_of_one_pair_each_run_their_own_lane_and_a_third_the_snapshots() {
        use std::sync::Mutex;

        let linker = EventLinker::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = |who: &'static str| {
            let seen = seen.clone();
            move |n: u64| seen.lock().unwrap().push((who, n))
        };
        let (mark, roommate, squatter) = (log("mark"), log("roommate"), log("squatter"));
        linker
            .on::<Mark>()
            .subscribe(move |e: &Mark| mark(e.0))
            .unwrap();
        linker
            .on::<Roommate>()
            .subscribe(move |e: &Roommate| roommate(e.0))
            .unwrap();
        linker
            .on::<Squatter>()
            .subscribe(move |e: &Squatter| squatter(e.0))
            .unwrap();
        let emitter = inline(&linker);
        let generation = linker.registry.generation();

        // Run on a thread of its own, whose table is empty.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 0..3 {
                    emitter.emit(Squatter(n)).unwrap();
                    emitter.emit(Mark(n)).unwrap();
                    emitter.emit(Roommate(n)).unwrap();
                }
                // The first two types emitted took the pair; the third reads
                // the snapshot every time, and takes no one's place.
                assert_eq!(
                    pair_of::<Mark>(generation),
                    [Some(TypeId::of::<Squatter>()), Some(TypeId::of::<Mark>())]
                );
            });
        });
        let seen = seen.lock().unwrap();
        let expected: Vec<_> = (0..3)
            .flat_map(|n| [("squatter", n), ("mark", n), ("roommate", n)])
            .collect();
        assert_eq!(*seen, expected);
    }

    #[test]
    fn a_type_emitted_while_its_pairs_first_place_runs_takes_the_free_second_one() {
        use std::sync::Mutex;

        let linker = EventLinker::new();
        let emitter = inline(&linker);
        let inside = Arc::new(Mutex::new(Vec::new()));
        let (nested, seen) = (emitter.clone(), inside.clone());
        let relinked = linker.clone();
        linker
            .on::<Mark>()
            .subscribe(move |m: &Mark| {
                if m.0 == 1 {
                    // The registry changes while Mark's lane runs from the
                    // first place: that place is of an older snapshot, but in
                    // use; the second, never filled, is free.
                    relinked.on::<Squatter>().subscribe(|| ()).unwrap();
                    let generation = relinked.registry.generation();
                    for n in 0..3 {
                        nested.emit(Roommate(n)).unwrap();
                        seen.lock().unwrap().push(pair_of::<Mark>(generation)[1]);
                    }
                }
            })
            .unwrap();
        linker.on::<Roommate>().subscribe(|| ()).unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                emitter.emit(Mark(0)).unwrap();
                emitter.emit(Mark(1)).unwrap();
            });
        });
        assert_eq!(
            *inside.lock().unwrap(),
            [Some(TypeId::of::<Roommate>()); 3],
            "each nested emit finds Roommate's lane at the second place"
        );
    }

    #[test]
    fn a_place_of_an_older_snapshot_is_free_and_a_type_keeps_its_own() {
        let linker = EventLinker::new();
        let emitter = inline(&linker);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                emitter.emit(Mark(0)).unwrap();
                emitter.emit(Roommate(0)).unwrap();
                emitter.emit(Squatter(0)).unwrap();
                let before = linker.registry.generation();
                assert_eq!(
                    pair_of::<Mark>(before),
                    [Some(TypeId::of::<Mark>()), Some(TypeId::of::<Roommate>())]
                );
                // The registry changes: the places hold lanes of an older
                // snapshot, which the first type emitted since may take.
                linker.on::<Roommate>().subscribe(|| ()).unwrap();
                let after = linker.registry.generation();
                emitter.emit(Squatter(1)).unwrap();
                emitter.emit(Roommate(1)).unwrap();
                emitter.emit(Mark(1)).unwrap();
                assert_eq!(
                    pair_of::<Mark>(after),
                    [
                        Some(TypeId::of::<Squatter>()),
                        Some(TypeId::of::<Roommate>())
                    ],
                    "Roommate kept its own place; Mark found none"
                );
            });
        });
    }
}
