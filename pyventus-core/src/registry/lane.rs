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
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
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

/// The types of a lane's event and of its subscribers' typed calls: what
/// erased code checks a call against before a lane keeps its address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct CallTypes {
    /// The event's (`E`).
    event: TypeId,
    /// A unit call's (`UnitFn<E>`).
    unit: TypeId,
    /// A settling call's (`TypedFn<E>`).
    settling: TypeId,
}

impl CallTypes {
    /// The types of the calls of `E`.
    pub(crate) fn of<E: Any>() -> Self {
        CallTypes {
            event: TypeId::of::<E>(),
            unit: TypeId::of::<UnitFn<E>>(),
            settling: TypeId::of::<TypedFn<E>>(),
        }
    }

    /// The event's type.
    pub(crate) fn event(&self) -> TypeId {
        self.event
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

/// The subscribers of a lane, erased, with the types of the event their calls
/// take: what a lane is built from and grows by, with no code of its event type.
pub(crate) struct RawLane {
    types: CallTypes,
    subs: SubList<LaneSubscriber>,
}

impl RawLane {
    /// The subscribers (a workflow and, if it is one, its typed callback) of a
    /// lane of the calls `types`, or `None` if one is not a typed callback of
    /// that event type.
    pub(crate) fn build(
        types: CallTypes,
        subs: &mut dyn Iterator<Item = (&Arc<Workflow>, Option<&TypedCallback>)>,
    ) -> Option<RawLane> {
        let mut all = Vec::new();
        for (workflow, typed) in subs {
            all.push(RawLane::subscriber(types, workflow, typed?)?);
        }
        Some(RawLane {
            types,
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
        let sub = RawLane::subscriber(self.types, workflow, typed)?;
        Some(RawLane {
            types: self.types,
            subs: self.subs.pushed(sub),
        })
    }

    fn subscriber(
        of: CallTypes,
        workflow: &Arc<Workflow>,
        typed: &TypedCallback,
    ) -> Option<LaneSubscriber> {
        (typed.types == of).then(|| LaneSubscriber {
            workflow: workflow.clone(),
            notifying: matches!(typed.call, ErasedCall::Unit(_)) && workflow.notify_success,
            call: typed.call.clone(),
        })
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

/// The address of one subscriber's typed call: a `UnitFn<E>` or a
/// `TypedFn<E>` of its lane's event type `E`, checked when the lane was
/// built ([`LaneBody::at`]), inside an `Arc` that the lane's own subscribers
/// hold (its [`RawLane`]), which no one mutates.
///
/// An address rather than the typed `Arc`: a lane keeps no value of a type of
/// `E`, so building, growing and dropping one is compiled once, in pyventus.
/// Typed, a crate declaring handlers of ten event types built ten copies of
/// it, more than half of what its handlers cost to build in release
/// (docs/benchmarks.md, "The lanes' build code").
#[derive(Clone, Copy)]
struct CallAt(NonNull<()>);

// SAFETY: a `CallAt` points at a `UnitFn<E>` or a `TypedFn<E>`, both `Send`
// and `Sync` (their functions are boxed `dyn Fn + Send + Sync`), owned by an
// `Arc` that the lane holding the `CallAt` holds too; it is only ever read
// through a shared borrow, as the `Arc` would be.
#[allow(unsafe_code)]
unsafe impl Send for CallAt {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for CallAt {}

impl CallAt {
    /// The address of `f`'s value, if its type is `expected`.
    fn checked(f: &Arc<dyn Any + Send + Sync>, expected: TypeId) -> Option<Self> {
        // The value, not the `Arc` (itself an `Any`).
        let f: &(dyn Any + Send + Sync) = &**f;
        (f.type_id() == expected).then(|| CallAt(NonNull::from(f).cast()))
    }
}

/// One subscriber of a small (or large) lane, with the address of its typed
/// call and what the lane must do after the call, decided once: the common
/// case (a unit handler nobody wants told of its success) costs one test per
/// subscriber.
#[derive(Clone)]
struct LaneEntry {
    workflow: Arc<Workflow>,
    call: LaneCall,
}

impl LaneEntry {
    /// The address of its call, if it is a quiet one.
    fn quiet(&self) -> Option<CallAt> {
        match self.call {
            LaneCall::Quiet(at) => Some(at),
            LaneCall::Notifying(_) | LaneCall::Settling(_) => None,
        }
    }
}

/// How a lane calls one subscriber.
#[derive(Clone, Copy)]
enum LaneCall {
    /// A unit handler without a success callback (a `UnitFn<E>`): called,
    /// its panic caught.
    Quiet(CallAt),
    /// A unit handler whose success goes to a callback (a `UnitFn<E>`).
    Notifying(CallAt),
    /// Any other (a `TypedFn<E>`): its callback settles its own outcome.
    Settling(CallAt),
}

/// A lane, erased, as a registry entry keeps it.
pub(crate) type ErasedLane = Arc<dyn Any + Send + Sync>;

/// A lane with its calls' addresses: all of a [`Lane<E>`], with nothing of
/// `E`, so compiled once.
struct LaneBody {
    raw: RawLane,
    /// The calls of a small lane whose subscribers are all quiet unit
    /// handlers (the common case), in order: its loop is then a call and a
    /// step per subscriber, with nothing to test. Empty for any other lane
    /// (one with no subscriber at all would run as a large one: nothing to
    /// call). Only one of `quiet` and `small` is kept: the one the lane's
    /// shape needs. (An empty `Vec` tests as cheaply as a `None`.)
    quiet: Vec<CallAt>,
    /// The subscribers of any other small lane with their calls, in order;
    /// empty for a large one, whose calls are `large`.
    small: Vec<LaneEntry>,
    /// The calls of a large lane, made at its first run: a lane grows by
    /// sharing its erased list (a subscription costs the same at any size),
    /// and this version's copy of the calls costs what running them once
    /// does.
    large: OnceLock<Vec<LaneEntry>>,
}

impl LaneBody {
    /// The lane of `raw`'s subscribers, or `None` if one's call is not of
    /// its event type. Every address a lane keeps is checked here, against
    /// the type of the call it must be.
    fn new(raw: RawLane) -> Option<Self> {
        let small = match raw.subs.as_small() {
            Some(subs) => Self::entries(raw.types, subs.iter())?,
            None => Vec::new(),
        };
        // All quiet (the common case, an empty lane too): their addresses alone.
        let (quiet, small) = match small.iter().map(LaneEntry::quiet).collect() {
            Some(quiet) => (quiet, Vec::new()),
            None => (Vec::new(), small),
        };
        Some(LaneBody {
            raw,
            quiet,
            small,
            large: OnceLock::new(),
        })
    }

    /// The entries of `subs`, or `None` if one's call is not of `types`.
    fn entries<'a>(
        types: CallTypes,
        subs: impl Iterator<Item = &'a LaneSubscriber>,
    ) -> Option<Vec<LaneEntry>> {
        let mut entries = Vec::with_capacity(subs.size_hint().0);
        for sub in subs {
            let call = match &sub.call {
                ErasedCall::Unit(f) => {
                    let at = CallAt::checked(f, types.unit)?;
                    if sub.notifying {
                        LaneCall::Notifying(at)
                    } else {
                        LaneCall::Quiet(at)
                    }
                }
                ErasedCall::Settling(f) => LaneCall::Settling(CallAt::checked(f, types.settling)?),
            };
            entries.push(LaneEntry {
                workflow: sub.workflow.clone(),
                call,
            });
        }
        Some(entries)
    }

    /// A large lane's entries, made at its first run.
    #[inline(never)]
    fn large(&self) -> &[LaneEntry] {
        self.large.get_or_init(|| {
            let mut all = Vec::new();
            self.raw.subs.for_each(|sub| all.push(sub.clone()));
            // Its subscribers were checked as calls of its event type when
            // they joined (`RawLane::subscriber`).
            Self::entries(self.raw.types, all.iter())
                .unwrap_or_else(|| unreachable!("a lane holds calls of its event type only"))
        })
    }
}

/// The subscribers of a registry entry owned by `E`, with the addresses of
/// their typed calls: an emission of `E` calls every one with `&E` directly
/// instead of downcasting the event for each.
///
/// What it holds, how it is built and grows is its [`LaneBody`], compiled
/// once; what is compiled per event type is its loop (where `E` is emitted)
/// and the little that makes a `Lane<E>` of a body.
pub(crate) struct Lane<E> {
    body: LaneBody,
    event: PhantomData<fn(&E)>,
}

impl<E: Any + Send + Sync> Lane<E> {
    /// The lane of `raw`, erased as a registry entry keeps it, or `None` if
    /// its subscribers are not typed callbacks of `E`.
    pub(crate) fn erased(raw: RawLane) -> Option<ErasedLane> {
        if raw.types != CallTypes::of::<E>() {
            return None;
        }
        let body = LaneBody::new(raw)?;
        Some(Arc::new(Lane::<E> {
            body,
            event: PhantomData,
        }))
    }

    /// The erased subscribers of `lane`, if it is a lane of `E`.
    pub(crate) fn raw(lane: &ErasedLane) -> Option<&RawLane> {
        lane.downcast_ref::<Lane<E>>().map(|lane| &lane.body.raw)
    }
}

impl<E> Lane<E> {
    /// The unit call at `at`.
    #[inline(always)]
    #[allow(clippy::inline_always)] // as `call`
    #[allow(clippy::unused_self)] // the borrow of the lane is the call's lifetime
    fn unit(&self, at: CallAt) -> &UnitFn<E> {
        // SAFETY: every address of this lane's is one that `LaneBody::new`
        // or `LaneBody::entries` checked: a unit call's is a `UnitFn<X>`
        // where `X` is the event of the lane's `CallTypes`, which
        // `Lane::<E>::erased`, the only maker of a `Lane<E>`, checked is
        // `E`'s. The value is owned by an `Arc` of the lane's own
        // subscribers (`body.raw`), which live, unmoved and never mutated,
        // as long as the lane: the borrow cannot outlive `self`.
        #[allow(unsafe_code)]
        unsafe {
            at.0.cast::<UnitFn<E>>().as_ref()
        }
    }

    /// The settling call at `at`.
    #[inline(always)]
    #[allow(clippy::inline_always)] // as `call`
    #[allow(clippy::unused_self)] // as `unit`
    fn settling(&self, at: CallAt) -> &TypedFn<E> {
        // SAFETY: as for `unit`: a settling call's address was checked to be
        // a `TypedFn<E>`'s.
        #[allow(unsafe_code)]
        unsafe {
            at.0.cast::<TypedFn<E>>().as_ref()
        }
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
        if !cfg!(feature = "metrics") && !self.body.quiet.is_empty() {
            let _hidden = crate::lifecycle::context::hide();
            for &at in &self.body.quiet {
                let f = self.unit(at);
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    self.quiet_panicked(at, &delivery(), &*panic);
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
        if !self.body.quiet.is_empty() {
            for &at in &self.body.quiet {
                let f = self.unit(at);
                match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    Ok(()) => delivery.tally.unit(true),
                    Err(panic) => self.quiet_panicked(at, delivery, &*panic),
                }
            }
            return;
        }
        let subs = if self.body.small.is_empty() {
            self.body.large()
        } else {
            &self.body.small
        };
        for sub in subs {
            self.call(sub, event, delivery);
        }
    }

    /// Hands the panic of the quiet call at `at` to its subscriber's failure
    /// callback (through the lane itself: what the emit's loop keeps at hand).
    #[cold]
    #[inline(never)]
    fn quiet_panicked(&self, at: CallAt, delivery: &Dispatch<'_>, panic: &(dyn Any + Send)) {
        self.body
            .raw
            .quiet_panicked(at.0.as_ptr().cast_const(), delivery, panic);
    }

    /// Calls one subscriber of the lane (always inlined into its lane's loop,
    /// whatever the inliner thinks of the loop's closure).
    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: left to the inliner, a lane may call it out of line
    fn call(&self, sub: &LaneEntry, event: &E, delivery: &Dispatch<'_>) {
        let workflow = &sub.workflow;
        match sub.call {
            LaneCall::Quiet(at) => {
                let f = self.unit(at);
                match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    Ok(()) => delivery.tally.unit(true),
                    Err(panic) => panicked(workflow, delivery, &*panic),
                }
            }
            LaneCall::Notifying(at) => {
                let f = self.unit(at);
                match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    Ok(()) => {
                        delivery.tally.unit(true);
                        succeeded(workflow, delivery);
                    }
                    Err(panic) => panicked(workflow, delivery, &*panic),
                }
            }
            // Failures were handed to the callbacks; nobody here needs them back.
            LaneCall::Settling(at) => {
                let settled = (self.settling(at).0)(event, Run::new(workflow, delivery));
                delivery.tally.settled(&settled);
            }
        }
    }
}
