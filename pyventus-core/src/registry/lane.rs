//! Typed lanes: the subscribers of an event that are all synchronous callbacks
//! of its type, called with `&E` directly, and each thread's cache of the lane
//! of each event type (what makes an inline emit cost one thread-local read,
//! one atomic load and the calls).

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::registry::list::{Live, SubList};
use crate::sync::{AccessError, LocalKey, thread_local};
use crate::workflow::{Delivery, Run, Settled, Workflow, panic_error};

/// A synchronous callback of `E`, typed: what a lane calls.
pub(crate) type TypedFnOf<E> = dyn Fn(&E, Run<'_>) -> Settled + Send + Sync;

/// A typed callback, shared by a subscriber's record and the lanes that hold
/// it. (A sized box inside the `Arc`: calling it is two loads, where an
/// `Arc<dyn Fn>` would also compute its data's offset from the vtable.)
pub(crate) struct TypedFn<E>(pub(crate) Box<TypedFnOf<E>>);

/// A typed callback that returns nothing: a lane calls it directly and only
/// catches its panic.
pub(crate) struct UnitFn<E>(pub(crate) Box<dyn Fn(&E) + Send + Sync>);

/// How a lane calls one subscriber.
pub(crate) enum Call<E> {
    /// A handler that returns `()`: called directly, its panic caught by the
    /// lane (catching costs nothing unless it panics).
    Unit(Arc<UnitFn<E>>),
    /// Any other: its callback settles its own outcome.
    Settling(Arc<TypedFn<E>>),
}

impl<E> Clone for Call<E> {
    fn clone(&self) -> Self {
        match self {
            Call::Unit(f) => Call::Unit(f.clone()),
            Call::Settling(f) => Call::Settling(f.clone()),
        }
    }
}

impl<E> Call<E> {
    /// Calls the subscriber and settles its outcome.
    #[inline]
    pub(crate) fn call(&self, event: &E, run: Run<'_>) -> Settled {
        match self {
            Call::Unit(f) => run.deliver(|| (f.0)(event)),
            Call::Settling(f) => (f.0)(event, run),
        }
    }
}

/// One subscriber of a lane.
pub(crate) struct LaneSubscriber<E> {
    workflow: Arc<Workflow>,
    call: LaneCall<E>,
}

/// How a lane calls one subscriber, with what it must do after the call
/// decided once: the common case (a unit handler nobody wants told of its
/// success) costs one test per subscriber.
enum LaneCall<E> {
    /// A unit handler without a success callback: called, its panic caught.
    Plain(Arc<UnitFn<E>>),
    /// A unit handler whose success goes to a callback.
    Notifying(Arc<UnitFn<E>>),
    /// Any other: its callback settles its own outcome.
    Settling(Arc<TypedFn<E>>),
}

impl<E> LaneSubscriber<E> {
    fn new(workflow: &Arc<Workflow>, call: &Call<E>) -> Self {
        let call = match call {
            Call::Unit(f) if workflow.notify_success => LaneCall::Notifying(f.clone()),
            Call::Unit(f) => LaneCall::Plain(f.clone()),
            Call::Settling(f) => LaneCall::Settling(f.clone()),
        };
        LaneSubscriber {
            workflow: workflow.clone(),
            call,
        }
    }
}

impl<E> Clone for LaneSubscriber<E> {
    fn clone(&self) -> Self {
        LaneSubscriber {
            workflow: self.workflow.clone(),
            call: match &self.call {
                LaneCall::Plain(f) => LaneCall::Plain(f.clone()),
                LaneCall::Notifying(f) => LaneCall::Notifying(f.clone()),
                LaneCall::Settling(f) => LaneCall::Settling(f.clone()),
            },
        }
    }
}

impl<E> LaneSubscriber<E> {
    /// Tells the success callback (a unit handler returned).
    #[cold]
    fn succeeded(&self, delivery: &Delivery<'_>) {
        Run::new(&self.workflow, delivery).succeed_unit();
    }

    /// Hands a unit handler's panic to its failure callback.
    #[cold]
    fn panicked(&self, delivery: &Delivery<'_>, panic: &(dyn Any + Send)) {
        delivery.tally.unit(false);
        // Handed to the callbacks; nobody here needs it back.
        drop(Run::new(&self.workflow, delivery).fail(panic_error(panic)));
    }
}

impl<E> Live for LaneSubscriber<E> {
    /// Always: a lane belongs to an entry without tombstones (a removal that
    /// leaves one drops the entry's lane), and holds no one-time subscriber,
    /// so each of its versions runs everyone it holds.
    #[inline]
    fn is_live_in(&self, _made: u64) -> bool {
        true
    }
}

/// A lane, erased, as a registry entry keeps it.
pub(crate) type ErasedLane = Arc<dyn Any + Send + Sync>;

/// The subscribers of a registry entry owned by `E`, each with its typed
/// callback: an emission of `E` calls every one with `&E` directly instead of
/// downcasting the event for each.
pub(crate) struct Lane<E> {
    subs: SubList<LaneSubscriber<E>>,
    /// The calls of a small lane whose subscribers are all plain unit
    /// handlers (the common case), in order: its loop is then a call and a
    /// step per subscriber, with nothing to test.
    plain: Option<Box<[Arc<UnitFn<E>>]>>,
}

impl<E: Any + Send + Sync> Lane<E> {
    /// The lane of these subscribers (a workflow and, if it is one, its typed
    /// callback of `E` erased), or `None` if one is not a typed callback of `E`.
    pub(crate) fn build(
        subs: &mut dyn Iterator<Item = (&Arc<Workflow>, Option<&(dyn Any + Send + Sync)>)>,
    ) -> Option<ErasedLane> {
        let subs = subs
            .map(|(workflow, call)| {
                Some(LaneSubscriber::new(
                    workflow,
                    call?.downcast_ref::<Call<E>>()?,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Arc::new(Lane::new(SubList::of(subs))))
    }

    /// This lane with one more subscriber, or `None` if it is not a typed
    /// callback of `E`.
    pub(crate) fn pushed(
        lane: &ErasedLane,
        workflow: &Arc<Workflow>,
        call: Option<&(dyn Any + Send + Sync)>,
    ) -> Option<ErasedLane> {
        let lane = lane.downcast_ref::<Lane<E>>()?;
        let call = call?.downcast_ref::<Call<E>>()?;
        Some(Arc::new(Lane::new(
            lane.subs.pushed(LaneSubscriber::new(workflow, call)),
        )))
    }

    fn new(subs: SubList<LaneSubscriber<E>>) -> Self {
        let plain = subs.as_small().and_then(|subs| {
            subs.iter()
                .map(|sub| match &sub.call {
                    LaneCall::Plain(f) => Some(f.clone()),
                    _ => None,
                })
                .collect()
        });
        Lane { subs, plain }
    }

    /// Runs the lane on `event` as one whole delivery: its subscribers, then the
    /// delivery's tally recorded.
    #[inline(always)]
    #[allow(clippy::inline_always)] // as `run`
    pub(crate) fn deliver(&self, event: &E, delivery: &Delivery<'_>) {
        self.run(event, delivery);
        delivery.tally.record(delivery.event.name());
    }

    /// Runs every subscriber of the lane on `event`.
    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: a lane of a payload type emitted from several places was run out of line (+25 instructions an emit)
    pub(crate) fn run(&self, event: &E, delivery: &Delivery<'_>) {
        let _hidden = crate::lifecycle::context::hide();
        // A unit handler's outcome is only its panic: caught here (which costs
        // nothing unless it panics), its success told only to who wants it.
        // The small list's loop is written out here, with the call inlined:
        // through a closure, the inliner may leave either out of line.
        if let Some(plain) = &self.plain {
            for f in plain {
                match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    Ok(()) => delivery.tally.unit(true),
                    Err(panic) => self.plain_panicked(f, delivery, &*panic),
                }
            }
            return;
        }
        match self.subs.as_small() {
            Some(subs) => {
                for sub in subs {
                    sub.call(event, delivery);
                }
            }
            None => self.subs.for_each(|sub| sub.call(event, delivery)),
        }
    }

    /// Hands the panic of the plain call `f` to its subscriber's failure
    /// callback.
    #[cold]
    #[inline(never)]
    fn plain_panicked(
        &self,
        f: &Arc<UnitFn<E>>,
        delivery: &Delivery<'_>,
        panic: &(dyn Any + Send),
    ) {
        let owner = self.subs.as_small().and_then(|subs| {
            subs.iter()
                .find(|sub| matches!(&sub.call, LaneCall::Plain(g) if Arc::ptr_eq(f, g)))
        });
        debug_assert!(
            owner.is_some(),
            "a plain call belongs to one of its lane's subscribers"
        );
        if let Some(sub) = owner {
            sub.panicked(delivery, panic);
        }
    }
}

impl<E> LaneSubscriber<E> {
    /// Calls the subscriber (always inlined into its lane's loop, whatever the
    /// inliner thinks of the loop's closure).
    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: left to the inliner, a lane may call it out of line
    fn call(&self, event: &E, delivery: &Delivery<'_>) {
        match &self.call {
            LaneCall::Plain(f) => match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                Ok(()) => delivery.tally.unit(true),
                Err(panic) => self.panicked(delivery, &*panic),
            },
            LaneCall::Notifying(f) => match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                Ok(()) => {
                    delivery.tally.unit(true);
                    self.succeeded(delivery);
                }
                Err(panic) => self.panicked(delivery, &*panic),
            },
            // Failures were handed to the callbacks; nobody here needs them back.
            LaneCall::Settling(f) => {
                let settled = (f.0)(event, Run::new(&self.workflow, delivery));
                delivery.tally.settled(&settled);
            }
        }
    }
}

/// What one thread knows of the lane of one event type in one snapshot.
enum Cached<E> {
    /// Nothing cached yet.
    Unknown,
    /// No subscriber: emitting it does nothing.
    Empty(u64),
    /// These subscribers, all typed callbacks of `E`.
    Lane(u64, Arc<Lane<E>>),
    /// Anything else (global subscribers, one-time ones, mixed callbacks):
    /// the general path.
    General(u64),
}

/// A thread's cache of the lane of the event type `E`, keyed by the snapshot
/// generation it was read from (generations are unique across linkers).
/// `#[derive(Event)]` gives each event type one. Not public API.
///
/// It keeps one lane per event type and thread alive until that thread emits
/// the type again after the registry changed, or exits: a removed subscriber's
/// closure may be dropped that much later.
#[doc(hidden)]
pub struct LaneSlot<E>(RefCell<Cached<E>>);

impl<E> LaneSlot<E> {
    /// An empty cache.
    pub const fn new() -> Self {
        LaneSlot(RefCell::new(Cached::Unknown))
    }
}

impl<E> Default for LaneSlot<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the lane cache decided.
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
    pub(crate) fn ran_or_fill(self, fill: impl FnOnce() -> bool) -> bool {
        match self {
            Lookup::Ran => true,
            Lookup::General => false,
            Lookup::Miss => fill(),
        }
    }
}

/// Runs `event` on its cached lane if this thread's cache knows `generation`.
#[inline]
pub(crate) fn run_cached<'d, E: Any + Send + Sync>(
    slot: &'static LocalKey<LaneSlot<E>>,
    generation: u64,
    event: &E,
    delivery: impl FnOnce() -> Delivery<'d>,
) -> Lookup {
    let hit = slot.try_with(|slot| {
        let cached = slot.0.try_borrow().ok()?;
        match &*cached {
            Cached::Empty(g) if *g == generation => Some(true),
            Cached::Lane(g, lane) if *g == generation => {
                lane.deliver(event, &delivery());
                Some(true)
            }
            Cached::General(g) if *g == generation => Some(false),
            _ => None,
        }
    });
    Lookup::of(hit)
}

/// What a snapshot holds for an event type, as the lane cache keeps it.
pub(crate) enum Found<E> {
    /// No subscriber.
    Nothing,
    /// A lane.
    Lane(Arc<Lane<E>>),
    /// Something only the general path runs.
    General,
}

/// Remembers what the snapshot of `generation` holds for `E` on this thread,
/// unless an emission further up this thread's stack is using the cache.
pub(crate) fn remember<E>(slot: &'static LocalKey<LaneSlot<E>>, generation: u64, found: Found<E>) {
    let next = match found {
        Found::General => Cached::General(generation),
        Found::Nothing => Cached::Empty(generation),
        Found::Lane(lane) => Cached::Lane(generation, lane),
    };
    let previous = slot
        .try_with(|slot| {
            slot.0
                .try_borrow_mut()
                .ok()
                .map(|mut cached| std::mem::replace(&mut *cached, next))
        })
        .ok()
        .flatten();
    // What the previous lane held may drop now (a removed subscriber's
    // captures): outside the borrow.
    drop(previous);
}

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
    found: NamedFound,
}

pub(crate) enum NamedFound {
    /// No subscriber: nothing to run, whatever the payload.
    Empty,
    /// The general path decides (a global subscriber, or one that is not a
    /// plain synchronous callback).
    General,
    /// The event's lane, of the payload type its subscribers take.
    Lane(ErasedLane),
}

impl NamedSlot {
    const UNUSED: NamedSlot = NamedSlot {
        generation: 0,
        hash: 0,
        name: Cow::Borrowed(""),
        found: NamedFound::General,
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
pub(crate) fn run_named_cached<'d, P: Any + Send + Sync>(
    hash: u64,
    name: &str,
    generation: u64,
    payload: &P,
    delivery: impl FnOnce() -> Delivery<'d>,
) -> Lookup {
    let hit = NAMED.try_with(|slots| {
        let slots = slots.try_borrow().ok()?;
        let slot = &slots[named_slot(hash)];
        let own = &*slot.name;
        let same_name = std::ptr::eq(own, name) || own == name;
        if slot.generation != generation || slot.hash != hash || !same_name {
            return None;
        }
        match &slot.found {
            NamedFound::Empty => Some(true),
            NamedFound::General => Some(false),
            // Another payload type than its subscribers': the general path
            // says what that means (an error if a typed event owns the name).
            NamedFound::Lane(lane) => {
                let lane = lane.downcast_ref::<Lane<P>>()?;
                lane.deliver(payload, &delivery());
                Some(true)
            }
        }
    });
    Lookup::of(hit)
}

/// Caches what the snapshot of `generation` holds for the named event.
pub(crate) fn remember_named(
    hash: u64,
    name: Cow<'static, str>,
    generation: u64,
    found: NamedFound,
) {
    let next = NamedSlot {
        generation,
        hash,
        name,
        found,
    };
    let previous = NAMED
        .try_with(|slots| {
            slots
                .try_borrow_mut()
                .ok()
                .map(|mut slots| std::mem::replace(&mut slots[named_slot(hash)], next))
        })
        .ok()
        .flatten();
    // What the previous lane held may drop now: outside the borrow.
    drop(previous);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(hash: u64, name: &str, generation: u64) -> &'static str {
        let never = || -> Delivery<'static> { unreachable!("an empty event runs nothing") };
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
        remember_named(7, Cow::Borrowed("Alpha"), 3, NamedFound::Empty);
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
        remember_named(7, Cow::Borrowed("Bravo"), 3, NamedFound::General);
        assert_eq!(lookup(7, "Bravo", 3), "general");
        assert_eq!(lookup(7, "Alpha", 3), "miss", "replaced");
    }
}
