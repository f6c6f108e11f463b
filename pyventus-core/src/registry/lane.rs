//! Typed lanes: the subscribers of an event that are all synchronous callbacks
//! of its type, called with `&E` directly (each thread caches the lanes it
//! uses: `thread_cache`).
//!
//! What a lane holds and how it is built and grows is [`RawLane`]: erased,
//! compiled once in pyventus rather than once per event type in every crate
//! that declares handlers (a crate of handlers over ten event types built
//! ten copies of it). [`Lane<E>`] adds the typed calls the emit's loop calls
//! directly: a small lane's made with it, a large lane's at its first run.

use std::any::{Any, TypeId};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use crate::registry::callback::TypedCallback;
use crate::registry::list::{Live, SubList};
use crate::workflow::{Dispatch, Run, Settled, Workflow, panic_error};

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
            Call::Unit(f) => deliver_unit(run, &|| (f.0)(event)),
            Call::Settling(f) => (f.0)(event, run),
        }
    }
}

/// Runs a unit handler's call and settles its outcome (a panic), compiled
/// once for every event type: the general path's call of a unit handler
/// (a lane catches its own).
pub(crate) fn deliver_unit(run: Run<'_>, call: &dyn Fn()) -> Settled {
    run.deliver(call)
}

/// A subscriber's typed call, erased: an `Arc<UnitFn<E>>` or an
/// `Arc<TypedFn<E>>` of its event type `E`, as a lane's erased side keeps it.
#[derive(Clone)]
pub(crate) enum ErasedCall {
    /// A `Call::Unit`'s function.
    Unit(Arc<dyn Any + Send + Sync>),
    /// A `Call::Settling`'s function.
    Settling(Arc<dyn Any + Send + Sync>),
}

impl<E: Any + Send + Sync> Call<E> {
    /// Its function, erased.
    pub(crate) fn erased(&self) -> ErasedCall {
        match self {
            Call::Unit(f) => ErasedCall::Unit(f.clone()),
            Call::Settling(f) => ErasedCall::Settling(f.clone()),
        }
    }

    /// The call of `E` that `erased` is, if it is one.
    pub(crate) fn of(erased: &ErasedCall) -> Option<Self> {
        Some(match erased {
            ErasedCall::Unit(f) => Call::Unit(f.clone().downcast().ok()?),
            ErasedCall::Settling(f) => Call::Settling(f.clone().downcast().ok()?),
        })
    }
}

/// One subscriber of a lane, erased: its workflow and its call. Not generic,
/// so that what a lane keeps and how it grows is compiled once, in pyventus,
/// not once per event type in the crate that declares handlers.
#[derive(Clone)]
struct LaneSubscriber {
    workflow: Arc<Workflow>,
    call: ErasedCall,
    /// A unit handler whose success goes to a callback.
    notifying: bool,
}

impl Live for LaneSubscriber {
    /// Always: a lane belongs to an entry without tombstones (a removal that
    /// leaves one drops the entry's lane), and holds no one-time subscriber,
    /// so each of its versions runs everyone it holds.
    #[inline]
    fn is_live_in(&self, _made: u64) -> bool {
        true
    }
}

/// The subscribers of a lane, erased, with the type of the event their calls
/// take: what a lane is built from and grows by, with no code of its event type.
pub(crate) struct RawLane {
    event: TypeId,
    subs: SubList<LaneSubscriber>,
}

impl RawLane {
    /// The subscribers (a workflow and, if it is one, its typed callback) of a
    /// lane of the event type `event`, or `None` if one is not a typed
    /// callback of that type.
    pub(crate) fn build(
        event: TypeId,
        subs: &mut dyn Iterator<Item = (&Arc<Workflow>, Option<&TypedCallback>)>,
    ) -> Option<RawLane> {
        let mut all = Vec::new();
        for (workflow, typed) in subs {
            all.push(RawLane::subscriber(event, workflow, typed?)?);
        }
        Some(RawLane {
            event,
            subs: SubList::of(all),
        })
    }

    /// These subscribers and one more, or `None` if it is not a typed callback
    /// of their event type.
    pub(crate) fn pushed(
        &self,
        workflow: &Arc<Workflow>,
        typed: &TypedCallback,
    ) -> Option<RawLane> {
        let sub = RawLane::subscriber(self.event, workflow, typed)?;
        Some(RawLane {
            event: self.event,
            subs: self.subs.pushed(sub),
        })
    }

    fn subscriber(
        event: TypeId,
        workflow: &Arc<Workflow>,
        typed: &TypedCallback,
    ) -> Option<LaneSubscriber> {
        (typed.type_id == event).then(|| LaneSubscriber {
            workflow: workflow.clone(),
            notifying: matches!(typed.call, ErasedCall::Unit(_)) && workflow.notify_success,
            call: typed.call.clone(),
        })
    }

    /// Its subscribers, in order (for a large lane's typed calls: a copy
    /// made by code compiled once, so that no event type compiles the list's
    /// iterator).
    fn subscribers(&self) -> Vec<LaneSubscriber> {
        let mut all = Vec::new();
        self.subs.for_each(|sub| all.push(sub.clone()));
        all
    }

    /// Hands the panic of the quiet call at `f` to its subscriber's failure
    /// callback.
    #[cold]
    #[inline(never)]
    fn quiet_panicked(&self, f: *const (), delivery: &Dispatch<'_>, panic: &(dyn Any + Send)) {
        let owner = self.subs.as_small().and_then(|subs| {
            subs.iter().find(
                |sub| matches!(&sub.call, ErasedCall::Unit(g) if std::ptr::addr_eq(f, Arc::as_ptr(g))),
            )
        });
        debug_assert!(
            owner.is_some(),
            "a quiet call belongs to one of its lane's subscribers"
        );
        if let Some(sub) = owner {
            panicked(&sub.workflow, delivery, panic);
        }
    }
}

/// Tells the success callback (a unit handler returned).
#[cold]
fn succeeded(workflow: &Workflow, delivery: &Dispatch<'_>) {
    Run::new(workflow, delivery).succeed_unit();
}

/// Hands a unit handler's panic to its failure callback.
#[cold]
fn panicked(workflow: &Workflow, delivery: &Dispatch<'_>, panic: &(dyn Any + Send)) {
    delivery.tally.unit(false);
    // Handed to the callbacks; nobody here needs it back.
    drop(Run::new(workflow, delivery).fail(panic_error(panic)));
}

/// One subscriber of a small lane, with its typed call.
struct TypedSubscriber<E> {
    workflow: Arc<Workflow>,
    call: LaneCall<E>,
}

/// How a lane calls one subscriber, with what it must do after the call
/// decided once: the common case (a unit handler nobody wants told of its
/// success) costs one test per subscriber.
enum LaneCall<E> {
    /// A unit handler without a success callback: called, its panic caught.
    Quiet(Arc<UnitFn<E>>),
    /// A unit handler whose success goes to a callback.
    Notifying(Arc<UnitFn<E>>),
    /// Any other: its callback settles its own outcome.
    Settling(Arc<TypedFn<E>>),
}

/// A lane, erased, as a registry entry keeps it.
pub(crate) type ErasedLane = Arc<dyn Any + Send + Sync>;

/// The subscribers of a registry entry owned by `E`, each with its typed
/// callback: an emission of `E` calls every one with `&E` directly instead of
/// downcasting the event for each.
///
/// What it holds and how it grows is its [`RawLane`], compiled once; what is
/// compiled per event type is the small lane's typed calls, and its loop
/// (where `E` is emitted).
pub(crate) struct Lane<E> {
    raw: RawLane,
    /// The calls of a small lane whose subscribers are all quiet unit
    /// handlers (the common case), in order: its loop is then a call and a
    /// step per subscriber, with nothing to test. Empty for any other lane
    /// (one with no subscriber at all would run as a large one: nothing to
    /// call). Only one of `quiet` and `small` is made: the one the lane's
    /// shape needs. (`Vec`s, not boxed slices: `into_boxed_slice` compiled
    /// per event type cost a fifth of a lane's build in release, and an
    /// empty `Vec` tests as cheaply as a `None`.)
    quiet: Vec<Arc<UnitFn<E>>>,
    /// The subscribers of any other small lane with their typed calls, in
    /// order; empty for a large one, whose typed calls are `large`.
    small: Vec<TypedSubscriber<E>>,
    /// The typed calls of a large lane, made at its first run: a lane grows
    /// by sharing its erased list (a subscription costs the same at any
    /// size), and this version's copy of the calls costs what running them
    /// once does.
    /// (Erased: a `OnceLock` of a type of `E` would compile its
    /// initialisation once per event type in the crates that declare
    /// handlers.)
    large: OnceLock<Box<dyn Any + Send + Sync>>,
}

/// The shape of a lane, decided by erased code: which typed calls it needs.
enum Shape<'a> {
    Quiet(&'a [LaneSubscriber]),
    Small(&'a [LaneSubscriber]),
    Large,
}

impl RawLane {
    /// Which typed calls the lane needs, decided once for every event type.
    fn shape(&self) -> Shape<'_> {
        match self.subs.as_small() {
            Some(subs)
                if subs
                    .iter()
                    .all(|sub| matches!(sub.call, ErasedCall::Unit(_)) && !sub.notifying) =>
            {
                Shape::Quiet(subs)
            }
            Some(subs) => Shape::Small(subs),
            None => Shape::Large,
        }
    }
}

/// The typed function `f` is, if it is a `T`.
#[inline(never)]
fn typed_fn<T: Any + Send + Sync>(f: &Arc<dyn Any + Send + Sync>) -> Option<Arc<T>> {
    f.clone().downcast().ok()
}

impl<E: Any + Send + Sync> Lane<E> {
    /// The typed calls of `subs`, or `None` if one is not a call of `E`.
    /// (Written as a loop: `collect` into an `Option` compiles a dozen
    /// iterator adapters per event type.)
    #[inline(never)]
    fn typed(subs: &[LaneSubscriber]) -> Option<Vec<TypedSubscriber<E>>> {
        let mut typed = Vec::with_capacity(subs.len());
        for sub in subs {
            let call = match &sub.call {
                ErasedCall::Unit(f) => {
                    let f = typed_fn(f)?;
                    if sub.notifying {
                        LaneCall::Notifying(f)
                    } else {
                        LaneCall::Quiet(f)
                    }
                }
                ErasedCall::Settling(f) => LaneCall::Settling(typed_fn(f)?),
            };
            typed.push(TypedSubscriber {
                workflow: sub.workflow.clone(),
                call,
            });
        }
        Some(typed)
    }

    /// The calls of quiet unit handlers `subs`, or `None` if one is not a
    /// unit call of `E`.
    #[inline(never)]
    fn quiet(subs: &[LaneSubscriber]) -> Option<Vec<Arc<UnitFn<E>>>> {
        let mut calls = Vec::with_capacity(subs.len());
        for sub in subs {
            match &sub.call {
                ErasedCall::Unit(f) => calls.push(typed_fn(f)?),
                ErasedCall::Settling(_) => return None,
            }
        }
        Some(calls)
    }

    /// The lane of `raw`, erased as a registry entry keeps it, or `None` if
    /// its subscribers are not typed callbacks of `E`.
    pub(crate) fn erased(raw: RawLane) -> Option<ErasedLane> {
        if raw.event != TypeId::of::<E>() {
            return None;
        }
        let (quiet, small) = match raw.shape() {
            Shape::Quiet(subs) => (Self::quiet(subs)?, Vec::new()),
            Shape::Small(subs) => (Vec::new(), Self::typed(subs)?),
            Shape::Large => (Vec::new(), Vec::new()),
        };
        Some(Arc::new(Lane {
            raw,
            quiet,
            small,
            large: OnceLock::new(),
        }))
    }

    /// The erased subscribers of `lane`, if it is a lane of `E`.
    pub(crate) fn raw(lane: &ErasedLane) -> Option<&RawLane> {
        lane.downcast_ref::<Lane<E>>().map(|lane| &lane.raw)
    }

    /// Runs the lane on `event` as one whole delivery: its subscribers, then the
    /// delivery's tally recorded.
    ///
    /// The delivery is made only when something reads it: a lane of quiet
    /// calls, with no metrics to count, needs it only when one panics (making
    /// it first cost an inline emit 8 of its 74 instructions).
    #[inline(always)]
    #[allow(clippy::inline_always)] // as `run`
    pub(crate) fn deliver<'d>(&self, event: &E, delivery: impl Fn() -> Dispatch<'d>) {
        if !cfg!(feature = "metrics") && !self.quiet.is_empty() {
            let _hidden = crate::lifecycle::context::hide();
            for f in &self.quiet {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    self.quiet_panicked(f, &delivery(), &*panic);
                }
            }
            return;
        }
        let delivery = delivery();
        self.run(event, &delivery);
        delivery.tally.record(delivery.event.name());
    }

    /// Runs every subscriber of the lane on `event`.
    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: a lane of a payload type emitted from several places was run out of line (+25 instructions an emit)
    pub(crate) fn run(&self, event: &E, delivery: &Dispatch<'_>) {
        let _hidden = crate::lifecycle::context::hide();
        // A unit handler's outcome is only its panic: caught here (which costs
        // nothing unless it panics), its success told only to who wants it.
        // The small list's loop is written out here, with the call inlined:
        // through a closure, the inliner may leave either out of line.
        if !self.quiet.is_empty() {
            for f in &self.quiet {
                match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    Ok(()) => delivery.tally.unit(true),
                    Err(panic) => self.quiet_panicked(f, delivery, &*panic),
                }
            }
            return;
        }
        let subs = if self.small.is_empty() {
            self.large()
        } else {
            &self.small
        };
        for sub in subs {
            call(&sub.workflow, sub.call.as_ref(), event, delivery);
        }
    }

    /// Hands the panic of the quiet call `f` to its subscriber's failure
    /// callback (through the lane itself: what the emit's loop keeps at hand).
    #[cold]
    #[inline(never)]
    fn quiet_panicked(
        &self,
        f: &Arc<UnitFn<E>>,
        delivery: &Dispatch<'_>,
        panic: &(dyn Any + Send),
    ) {
        self.raw
            .quiet_panicked(Arc::as_ptr(f).cast(), delivery, panic);
    }

    /// A large lane's typed calls, made at its first run.
    #[inline(never)]
    fn large(&self) -> &[TypedSubscriber<E>] {
        if self.large.get().is_none() {
            // Its subscribers were checked as calls of `E` when they joined
            // (`RawLane::subscriber`), and `erased` made it a lane of `E`.
            let typed = Self::typed(&self.raw.subscribers())
                .unwrap_or_else(|| unreachable!("a lane of `E` holds calls of `E` only"));
            // A thread that raced this one may have set them first: the same.
            drop(self.large.set(Box::new(typed)));
        }
        self.large
            .get()
            .and_then(|large| large.downcast_ref::<Vec<TypedSubscriber<E>>>())
            .map_or(&[], |typed| &typed[..])
    }
}

/// A subscriber's typed call, borrowed.
enum CallRef<'a, E> {
    Quiet(&'a UnitFn<E>),
    Notifying(&'a UnitFn<E>),
    Settling(&'a TypedFn<E>),
}

impl<E> Clone for CallRef<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for CallRef<'_, E> {}

impl<E> LaneCall<E> {
    #[inline(always)]
    #[allow(clippy::inline_always)] // as `call`
    fn as_ref(&self) -> CallRef<'_, E> {
        match self {
            LaneCall::Quiet(f) => CallRef::Quiet(f),
            LaneCall::Notifying(f) => CallRef::Notifying(f),
            LaneCall::Settling(f) => CallRef::Settling(f),
        }
    }
}

/// Calls one subscriber of a lane (always inlined into its lane's loop,
/// whatever the inliner thinks of the loop's closure).
#[inline(always)]
#[allow(clippy::inline_always)] // measured: left to the inliner, a lane may call it out of line
fn call<E>(workflow: &Arc<Workflow>, call: CallRef<'_, E>, event: &E, delivery: &Dispatch<'_>) {
    match call {
        CallRef::Quiet(f) => match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
            Ok(()) => delivery.tally.unit(true),
            Err(panic) => panicked(workflow, delivery, &*panic),
        },
        CallRef::Notifying(f) => match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
            Ok(()) => {
                delivery.tally.unit(true);
                succeeded(workflow, delivery);
            }
            Err(panic) => panicked(workflow, delivery, &*panic),
        },
        // Failures were handed to the callbacks; nobody here needs them back.
        CallRef::Settling(f) => {
            let settled = (f.0)(event, Run::new(workflow, delivery));
            delivery.tally.settled(&settled);
        }
    }
}
