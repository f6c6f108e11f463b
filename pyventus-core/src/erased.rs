//! Type-erased event callbacks: what a subscriber stores, whatever form its
//! handler took.
//!
//! A synchronous callback is one indirect call that downcasts the payload, runs
//! the handler and settles its outcome. The parts that are the same for every
//! handler (failures, panics, callbacks, logging) live, non-generic and out of
//! line, in `workflow`.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::AnyEvent;
use crate::output::HandlerOutput;
use crate::workflow::{Delivery, Outcome, Run, Settled, Workflow};

type SyncFn = dyn Fn(Run<'_>) -> Settled + Send + Sync;
type AsyncFn = dyn Fn(Arc<AnyEvent>) -> BoxFuture<'static, Outcome> + Send + Sync;

/// An event callback, erased. Not public API.
#[doc(hidden)]
pub enum EventCallback {
    /// Synchronous, for the typed event `E`: erased, and also typed so that a
    /// registry entry of `E` can call it without downcasting (its lane).
    Typed(Box<SyncFn>, TypedCallback),
    /// Synchronous, needs only a borrow of the event: can run on a borrowed event
    /// without the emission ever being moved to the heap.
    Borrowed(Box<SyncFn>),
    /// Synchronous, needs the shared event (`Arc<E>` parameters).
    Shared(Box<SyncFn>),
    /// Asynchronous.
    Async(Box<AsyncFn>),
}

impl EventCallback {
    /// A synchronous callback of the typed event `E`.
    pub(crate) fn typed<E: Any + Send + Sync>(
        f: impl Fn(&E, Run<'_>) -> Settled + Send + Sync + 'static,
    ) -> Self {
        let typed = Arc::new(TypedFn::<E>(Box::new(f)));
        let erased = typed.clone();
        EventCallback::Typed(
            Box::new(
                move |run: Run<'_>| match run.delivery.payload.downcast_ref::<E>() {
                    Some(event) => (erased.0)(event, run),
                    None => Err(run.fail(mismatch::<E>(run.delivery.event))),
                },
            ),
            TypedCallback {
                type_id: TypeId::of::<E>(),
                call: typed,
                lane: Lane::<E>::build,
            },
        )
    }

    /// A handler taking `&E`, for the typed event (or named payload) `E`.
    pub(crate) fn from_ref<E, R>(f: impl Fn(&E) -> R + Send + Sync + 'static) -> Self
    where
        E: Any + Send + Sync,
        R: HandlerOutput,
    {
        EventCallback::typed(move |event: &E, run: Run<'_>| run.deliver(|| f(event)))
    }

    /// A handler taking `Arc<E>`.
    pub(crate) fn from_shared<E, R>(f: impl Fn(Arc<E>) -> R + Send + Sync + 'static) -> Self
    where
        E: Any + Send + Sync,
        R: HandlerOutput,
    {
        EventCallback::Shared(Box::new(move |run: Run<'_>| {
            match run.delivery.shared.and_then(AnyEvent::downcast_arc::<E>) {
                Some(event) => run.deliver(|| f(event)),
                None => Err(run.fail(mismatch::<E>(run.delivery.event))),
            }
        }))
    }

    /// A handler taking `&AnyEvent` (or ignoring the event).
    pub(crate) fn from_any<R: HandlerOutput>(
        f: impl Fn(&AnyEvent) -> R + Send + Sync + 'static,
    ) -> Self {
        EventCallback::Borrowed(Box::new(move |run: Run<'_>| {
            run.deliver(|| f(run.delivery.event))
        }))
    }

    pub(crate) fn asynchronous(
        f: impl Fn(Arc<AnyEvent>) -> BoxFuture<'static, Outcome> + Send + Sync + 'static,
    ) -> Self {
        EventCallback::Async(Box::new(f))
    }

    /// Runs a synchronous callback to completion.
    #[inline]
    pub(crate) fn run_sync(&self, run: Run<'_>) -> Settled {
        run.trace_start();
        match self {
            EventCallback::Typed(f, _) | EventCallback::Borrowed(f) => f(run),
            EventCallback::Shared(f) if run.delivery.shared.is_some() => f(run),
            // The emitter only borrows when every subscriber can run on a borrow,
            // and only calls this for synchronous ones; reaching here is a bug in
            // pyventus.
            EventCallback::Shared(_) | EventCallback::Async(_) => Err(run.fail(anyhow::anyhow!(
                "pyventus internal error: a subscriber was run on the wrong path"
            ))),
        }
    }

    pub(crate) fn is_async(&self) -> bool {
        matches!(self, EventCallback::Async(_))
    }

    /// Whether running it needs the event on the heap (`Arc`), not just borrowed.
    pub(crate) fn needs_shared(&self) -> bool {
        matches!(self, EventCallback::Shared(_) | EventCallback::Async(_))
    }
}

/// The typed side of a synchronous callback of `E`.
#[doc(hidden)]
pub struct TypedCallback {
    pub(crate) type_id: TypeId,
    /// An `Arc<TypedFn<E>>`.
    call: Arc<dyn Any + Send + Sync>,
    /// Builds the lane of a registry entry whose subscribers are all typed for `E`.
    pub(crate) lane: LaneBuilder,
}

/// A [`Lane<E>`], erased.
pub(crate) type ErasedLane = Arc<dyn Any + Send + Sync>;
/// The subscribers of a registry entry, as a lane is built from them.
pub(crate) type LaneSource<'a> = dyn Iterator<Item = (&'a Arc<Workflow>, &'a EventCallback)> + 'a;
type LaneBuilder = fn(&mut LaneSource<'_>) -> Option<ErasedLane>;

/// A synchronous callback of `E`, typed.
pub(crate) struct TypedFn<E>(pub(crate) Box<TypedFnOf<E>>);
type TypedFnOf<E> = dyn Fn(&E, Run<'_>) -> Settled + Send + Sync;

impl TypedCallback {
    /// The typed callback, if it is one of `E`.
    pub(crate) fn of<E: Any + Send + Sync>(&self) -> Option<Arc<TypedFn<E>>> {
        self.call.clone().downcast::<TypedFn<E>>().ok()
    }
}

/// The subscribers of a registry entry owned by `E`, each with its typed callback:
/// an emission of `E` downcasts the lane once, then calls every subscriber with
/// `&E` directly instead of downcasting the event for each of them.
pub(crate) struct Lane<E> {
    subs: Box<[LaneSubscriber<E>]>,
}

type LaneSubscriber<E> = (Arc<Workflow>, Arc<TypedFn<E>>);

impl<E: Any + Send + Sync> Lane<E> {
    /// The lane of these subscribers, if every one is a typed callback of `E`.
    fn build(subs: &mut LaneSource<'_>) -> Option<ErasedLane> {
        let subs = subs
            .map(|(workflow, callback)| match callback {
                EventCallback::Typed(_, typed) => typed.of::<E>().map(|f| (workflow.clone(), f)),
                _ => None,
            })
            .collect::<Option<Box<[_]>>>()?;
        Some(Arc::new(Lane { subs }))
    }

    /// Runs every subscriber of the lane on `event`.
    #[inline]
    pub(crate) fn run(&self, event: &E, delivery: &Delivery<'_>) {
        for (workflow, f) in &self.subs {
            // Failures were handed to the callbacks; nobody here needs them back.
            let _ = (f.0)(event, Run::new(workflow, delivery));
        }
    }
}

/// The failure of a subscriber handed a payload of another type. Kept out of
/// line: the hot path is the successful downcast.
#[cold]
#[inline(never)]
pub(crate) fn mismatch<T>(event: &AnyEvent) -> anyhow::Error {
    crate::Error::PayloadType {
        event: event.name().to_owned(),
        expected: std::any::type_name::<T>(),
        found: event.payload_type_name(),
    }
    .into()
}

impl fmt::Debug for EventCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventCallback::Typed(..) | EventCallback::Borrowed(_) => "sync",
            EventCallback::Shared(_) => "sync (shared)",
            EventCallback::Async(_) => "async",
        })
    }
}
