//! Typed lanes: the subscribers of an event that are all synchronous callbacks
//! of its type, called with `&E` directly (each thread caches the lanes it
//! uses: `thread_cache`).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

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
    Quiet(Arc<UnitFn<E>>),
    /// A unit handler whose success goes to a callback.
    Notifying(Arc<UnitFn<E>>),
    /// Any other: its callback settles its own outcome.
    Settling(Arc<TypedFn<E>>),
}

impl<E> LaneSubscriber<E> {
    fn new(workflow: &Arc<Workflow>, call: &Call<E>) -> Self {
        let call = match call {
            Call::Unit(f) if workflow.notify_success => LaneCall::Notifying(f.clone()),
            Call::Unit(f) => LaneCall::Quiet(f.clone()),
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
                LaneCall::Quiet(f) => LaneCall::Quiet(f.clone()),
                LaneCall::Notifying(f) => LaneCall::Notifying(f.clone()),
                LaneCall::Settling(f) => LaneCall::Settling(f.clone()),
            },
        }
    }
}

impl<E> LaneSubscriber<E> {
    /// Tells the success callback (a unit handler returned).
    #[cold]
    fn succeeded(&self, delivery: &Dispatch<'_>) {
        Run::new(&self.workflow, delivery).succeed_unit();
    }

    /// Hands a unit handler's panic to its failure callback.
    #[cold]
    fn panicked(&self, delivery: &Dispatch<'_>, panic: &(dyn Any + Send)) {
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
    /// The calls of a small lane whose subscribers are all quiet unit
    /// handlers (the common case), in order: its loop is then a call and a
    /// step per subscriber, with nothing to test.
    quiet: Option<Box<[Arc<UnitFn<E>>]>>,
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
        let quiet = subs.as_small().and_then(|subs| {
            subs.iter()
                .map(|sub| match &sub.call {
                    LaneCall::Quiet(f) => Some(f.clone()),
                    _ => None,
                })
                .collect()
        });
        Lane { subs, quiet }
    }

    /// Runs the lane on `event` as one whole delivery: its subscribers, then the
    /// delivery's tally recorded.
    #[inline(always)]
    #[allow(clippy::inline_always)] // as `run`
    pub(crate) fn deliver(&self, event: &E, delivery: &Dispatch<'_>) {
        self.run(event, delivery);
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
        if let Some(quiet) = &self.quiet {
            for f in quiet {
                match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
                    Ok(()) => delivery.tally.unit(true),
                    Err(panic) => self.quiet_panicked(f, delivery, &*panic),
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

    /// Hands the panic of the quiet call `f` to its subscriber's failure
    /// callback.
    #[cold]
    #[inline(never)]
    fn quiet_panicked(
        &self,
        f: &Arc<UnitFn<E>>,
        delivery: &Dispatch<'_>,
        panic: &(dyn Any + Send),
    ) {
        let owner = self.subs.as_small().and_then(|subs| {
            subs.iter()
                .find(|sub| matches!(&sub.call, LaneCall::Quiet(g) if Arc::ptr_eq(f, g)))
        });
        debug_assert!(
            owner.is_some(),
            "a quiet call belongs to one of its lane's subscribers"
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
    fn call(&self, event: &E, delivery: &Dispatch<'_>) {
        match &self.call {
            LaneCall::Quiet(f) => match catch_unwind(AssertUnwindSafe(|| (f.0)(event))) {
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
