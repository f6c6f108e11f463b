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

use crate::lifecycle::gate::{Gate, Inside};
use crate::registry::lane::{
    Call, CallTypes, ErasedCall, ErasedLane, Lane, RawLane, TypedFn, UnitFn, deliver_unit,
};
use crate::resilience::{Layers, Middleware, Policy};
use crate::workflow::extract::DeliveryContext;
use crate::workflow::output::HandlerOutput;
use crate::workflow::{OkValue, Outcome, Run, Settled, Skipped, Workflow};
use crate::{AnyEvent, Error};

type SyncFn = dyn Fn(Run<'_>) -> Settled + Send + Sync;
type AsyncFn =
    dyn Fn(Arc<AnyEvent>, &DeliveryContext<'_>) -> BoxFuture<'static, Outcome> + Send + Sync;

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
    /// A callback with a [`Policy`]: run apart, by the emission's retry loop.
    Resilient(Box<Guarded>),
}

/// A callback with its policy, and the permits of its concurrency limit
/// (shared by every emission that runs the subscriber). Not public API.
#[doc(hidden)]
pub struct Guarded {
    pub(crate) inner: EventCallback,
    pub(crate) policy: Policy,
    pub(crate) permits: Option<tokio::sync::Semaphore>,
    /// Outermost first.
    pub(crate) middleware: Layers,
    /// Whether the policy is the subscription's own (not only middleware's
    /// placeholder): a linker's default policy leaves its own alone.
    pub(crate) own_policy: bool,
}

impl EventCallback {
    /// A synchronous callback of the typed event `E`, as a lane calls it.
    fn typed<E: Any + Send + Sync>(call: Call<E>) -> Self {
        let typed = TypedCallback::of::<E>(call.erased(), Some(gated_typed::<E>));
        EventCallback::Typed(
            Box::new(
                move |run: Run<'_>| match run.delivery.payload().downcast_ref::<E>() {
                    Some(event) => call.call(event, run),
                    None => Err(run.fail(mismatch::<E>(run.delivery.event))),
                },
            ),
            typed,
        )
    }

    /// `inner`, run under `policy`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] if the policy cannot work, or asks for a
    /// timeout of a synchronous callback (which cannot be cancelled).
    pub(crate) fn guarded(inner: EventCallback, policy: Policy) -> Result<Self, Error> {
        policy.check()?;
        if policy.timeout_after().is_some() && !inner.is_async() {
            return Err(Error::InvalidSetting {
                setting: "timeout",
                problem: "applies to async handlers only: a synchronous handler cannot be \
                          cancelled at its deadline; make it async (`subscribe_async`, \
                          `async fn`), or leave the timeout out",
            });
        }
        Ok(EventCallback::Resilient(Box::new(Guarded {
            inner,
            policy,
            permits: permits(policy),
            middleware: Vec::new(),
            own_policy: true,
        })))
    }

    /// The callback under the linker's defaults: its default policy, if the
    /// callback has none of its own (without the timeout for a synchronous
    /// one, which cannot honour it), then its middleware around all.
    pub(crate) fn linked(
        self,
        default: Option<Policy>,
        layers: &[Arc<dyn Middleware>],
    ) -> Result<Self, Error> {
        let callback = match (self, default) {
            (EventCallback::Resilient(mut guarded), Some(policy)) if !guarded.own_policy => {
                let policy = policy.for_callback(guarded.inner.is_async());
                policy.check()?;
                guarded.permits = permits(policy);
                guarded.policy = policy;
                guarded.own_policy = true;
                EventCallback::Resilient(guarded)
            }
            (EventCallback::Resilient(guarded), _) => EventCallback::Resilient(guarded),
            (plain, Some(policy)) => {
                let policy = policy.for_callback(plain.is_async());
                EventCallback::guarded(plain, policy)?
            }
            (plain, None) => plain,
        };
        Ok(callback.wrapped(layers))
    }

    /// The callback wrapped in `layers` (outside any it has already): run
    /// apart, as one with a policy is.
    pub(crate) fn wrapped(self, layers: &[Arc<dyn Middleware>]) -> Self {
        if layers.is_empty() {
            return self;
        }
        let mut guarded = match self {
            EventCallback::Resilient(guarded) => guarded,
            plain => Box::new(Guarded {
                inner: plain,
                policy: Policy::new(),
                permits: None,
                middleware: Vec::new(),
                own_policy: false,
            }),
        };
        guarded.middleware.splice(0..0, layers.iter().cloned());
        EventCallback::Resilient(guarded)
    }

    /// The typed callback, for a lane to take.
    pub(crate) fn typed_side(&self) -> Option<&TypedCallback> {
        match self {
            EventCallback::Typed(_, typed) => Some(typed),
            _ => None,
        }
    }

    /// A handler taking `&E`, for the typed event (or named payload) `E`. One
    /// that returns `()` is called by lanes directly (nothing to settle but a
    /// panic), any other through its workflow.
    pub(crate) fn from_ref<E, R>(f: impl Fn(&E) -> R + Send + Sync + 'static) -> Self
    where
        E: Any + Send + Sync,
        R: HandlerOutput,
    {
        if TypeId::of::<R>() == TypeId::of::<()>() {
            // `R` is `()`: dropping the result drops nothing.
            let unit = move |event: &E| drop(f(event));
            return EventCallback::typed(Call::Unit(Arc::new(UnitFn(Box::new(unit)))));
        }
        let settling = move |event: &E, run: Run<'_>| run.deliver(|| f(event));
        EventCallback::typed(Call::Settling(Arc::new(TypedFn(Box::new(settling)))))
    }

    /// A function taking `&E` and returning nothing (a declared handler): lanes
    /// call it as a unit handler, with nothing to read. It is never gated
    /// (only a guarded subscription and a responder are), so it compiles no
    /// gated form; gated anyway, it runs as any borrowed callback. Its general
    /// path calls the `fn` itself, which drops nothing: a crate of declared
    /// handlers compiles no `Call<E>` for it.
    pub(crate) fn from_unit_fn<E: Any + Send + Sync>(f: fn(&E)) -> Self {
        let call: Arc<UnitFn<E>> = Arc::new(UnitFn(Box::new(f)));
        let typed = TypedCallback::of::<E>(ErasedCall::Unit(call), None);
        EventCallback::Typed(
            Box::new(
                move |run: Run<'_>| match run.delivery.payload().downcast_ref::<E>() {
                    Some(event) => deliver_unit(run, &|| f(event)),
                    None => Err(run.fail(mismatch::<E>(run.delivery.event))),
                },
            ),
            typed,
        )
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
        EventCallback::Async(Box::new(move |event, _: &DeliveryContext<'_>| f(event)))
    }

    /// An async callback that reads its delivery before its future starts
    /// (a handler that takes a `State`).
    pub(crate) fn asynchronous_in(
        f: impl Fn(Arc<AnyEvent>, &DeliveryContext<'_>) -> BoxFuture<'static, Outcome>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        EventCallback::Async(Box::new(f))
    }

    /// A callback taking `&E` and its delivery (a handler that takes a
    /// `State`): it always settles its own outcome, since reading its
    /// delivery may fail.
    pub(crate) fn from_ref_in<E, R>(
        f: impl Fn(&E, &DeliveryContext<'_>) -> R + Send + Sync + 'static,
    ) -> Self
    where
        E: Any + Send + Sync,
        R: HandlerOutput,
    {
        let settling =
            move |event: &E, run: Run<'_>| run.deliver(|| f(event, &DeliveryContext::new(run)));
        EventCallback::typed(Call::Settling(Arc::new(TypedFn(Box::new(settling)))))
    }

    /// [`from_shared`](Self::from_shared), with its delivery.
    pub(crate) fn from_shared_in<E, R>(
        f: impl Fn(Arc<E>, &DeliveryContext<'_>) -> R + Send + Sync + 'static,
    ) -> Self
    where
        E: Any + Send + Sync,
        R: HandlerOutput,
    {
        EventCallback::Shared(Box::new(move |run: Run<'_>| {
            match run.delivery.shared.and_then(AnyEvent::downcast_arc::<E>) {
                Some(event) => run.deliver(|| f(event, &DeliveryContext::new(run))),
                None => Err(run.fail(mismatch::<E>(run.delivery.event))),
            }
        }))
    }

    /// [`from_any`](Self::from_any), with its delivery.
    pub(crate) fn from_any_in<R: HandlerOutput>(
        f: impl Fn(&AnyEvent, &DeliveryContext<'_>) -> R + Send + Sync + 'static,
    ) -> Self {
        EventCallback::Borrowed(Box::new(move |run: Run<'_>| {
            run.deliver(|| f(run.delivery.event, &DeliveryContext::new(run)))
        }))
    }

    /// The callback behind `gate`: a run starts only through it (none once it
    /// is closed), and counts there until it is over, callbacks included. A
    /// typed callback stays typed, so its entry keeps its lane.
    pub(crate) fn gated(self, gate: Arc<Gate>) -> Self {
        fn sync(f: Box<SyncFn>, gate: Arc<Gate>) -> Box<SyncFn> {
            Box::new(move |run: Run<'_>| match gate.enter() {
                Some(_pass) => f(run),
                // Closed: the run never starts, and has nothing to settle.
                None => Ok(()),
            })
        }
        match self {
            EventCallback::Typed(f, typed) => match typed
                .gated
                .and_then(|gated| gated(&typed.call, gate.clone()))
            {
                Some(gated) => gated,
                // One that is never gated (a declared handler), gated anyway.
                None => EventCallback::Borrowed(sync(f, gate)),
            },
            EventCallback::Borrowed(f) => EventCallback::Borrowed(sync(f, gate)),
            EventCallback::Shared(f) => EventCallback::Shared(sync(f, gate)),
            EventCallback::Async(f) => {
                EventCallback::Async(Box::new(move |event, delivery: &DeliveryContext<'_>| {
                    match gate.enter_owned() {
                        Some(pass) => {
                            let future = {
                                let _inside = gate.enter_mark();
                                f(event, delivery)
                            };
                            Box::pin(Inside {
                                pass: Some(pass),
                                future,
                            })
                        }
                        None => {
                            let skipped: OkValue = Box::new(Skipped);
                            Box::pin(futures::future::ready(Ok(Some(skipped))))
                        }
                    }
                }))
            }
            // Each attempt passes the gate: once it is closed, no retry starts.
            EventCallback::Resilient(mut guarded) => {
                guarded.inner = guarded.inner.gated(gate);
                EventCallback::Resilient(guarded)
            }
        }
    }

    /// Runs a synchronous callback to completion.
    #[inline]
    pub(crate) fn run_sync(&self, run: Run<'_>) -> Settled {
        let _span = run.start();
        match self {
            EventCallback::Typed(f, _) | EventCallback::Borrowed(f) => f(run),
            EventCallback::Shared(f) if run.delivery.shared.is_some() => f(run),
            // The emitter only borrows when every subscriber can run on a borrow,
            // and only calls this for synchronous ones; reaching here is a bug in
            // pyventus.
            EventCallback::Shared(_) | EventCallback::Async(_) | EventCallback::Resilient(_) => {
                Err(run.fail(anyhow::anyhow!(
                    "pyventus internal error: a subscriber was run on the wrong path"
                )))
            }
        }
    }

    pub(crate) fn is_async(&self) -> bool {
        match self {
            EventCallback::Async(_) => true,
            EventCallback::Resilient(guarded) => guarded.inner.is_async(),
            _ => false,
        }
    }

    /// Whether running it needs the event on the heap (`Arc`), not just
    /// borrowed: an async callback's future owns it, and a retry loop keeps it.
    pub(crate) fn needs_shared(&self) -> bool {
        matches!(
            self,
            EventCallback::Shared(_) | EventCallback::Async(_) | EventCallback::Resilient(_)
        )
    }
}

/// The typed side of a synchronous callback of `E`: what a lane of `E` is
/// made of. Only its function pointers are compiled per event type, and
/// they are small: what builds and grows a lane is [`RawLane`]'s.
#[doc(hidden)]
pub struct TypedCallback {
    /// The types of its event and its call.
    pub(crate) types: CallTypes,
    /// Its `Call<E>`, erased.
    pub(crate) call: ErasedCall,
    /// Makes the lane of `E` of a lane's subscribers (`Lane::<E>::erased`).
    lane: fn(RawLane) -> Option<ErasedLane>,
    /// The subscribers of a lane of `E` (`Lane::<E>::raw`).
    raw: fn(&ErasedLane) -> Option<&RawLane>,
    /// The same callback behind a gate (see [`EventCallback::gated`]), if it
    /// can be gated and stay typed.
    gated: Option<GatedTyped>,
}

/// Makes a typed callback's gated form (`gated_typed::<E>`).
type GatedTyped = fn(&ErasedCall, Arc<Gate>) -> Option<EventCallback>;

impl TypedCallback {
    /// The typed side of a callback of `E` whose call is `call`.
    fn of<E: Any + Send + Sync>(call: ErasedCall, gated: Option<GatedTyped>) -> Self {
        TypedCallback {
            types: CallTypes::of::<E>(),
            call,
            lane: Lane::<E>::erased,
            raw: Lane::<E>::raw,
            gated,
        }
    }

    /// The lane of a registry entry whose subscribers (a workflow and, if it
    /// is one, its typed callback) are all typed callbacks of this one's
    /// event type, or `None`.
    pub(crate) fn lane(
        &self,
        subs: &mut dyn Iterator<Item = (&Arc<Workflow>, Option<&TypedCallback>)>,
    ) -> Option<ErasedLane> {
        RawLane::build(self.types, subs).and_then(self.lane)
    }

    /// `lane` with this callback's subscriber appended, or `None` if `lane` is
    /// not a lane of its event type.
    pub(crate) fn pushed(&self, lane: &ErasedLane, workflow: &Arc<Workflow>) -> Option<ErasedLane> {
        (self.raw)(lane)?.pushed(workflow, self).and_then(self.lane)
    }
}

/// A typed callback of `E` behind `gate`, still typed (its entry keeps its
/// lane). A unit handler becomes a settling one: a run the gate refuses must
/// not be told to a success callback as a unit handler's return would be.
fn gated_typed<E: Any + Send + Sync>(call: &ErasedCall, gate: Arc<Gate>) -> Option<EventCallback> {
    let call = Call::<E>::of(call)?;
    let gated = Call::Settling(Arc::new(TypedFn(Box::new(
        move |event: &E, run: Run<'_>| match gate.enter() {
            Some(_pass) => call.call(event, run),
            None => Ok(()),
        },
    ))));
    Some(EventCallback::typed(gated))
}

/// The permits of a policy's concurrency limit.
fn permits(policy: Policy) -> Option<tokio::sync::Semaphore> {
    policy
        .concurrency_limit()
        .map(|limit| tokio::sync::Semaphore::new(usize::try_from(limit).unwrap_or(usize::MAX)))
}

/// The failure of a subscriber handed a payload of another type. Kept out of
/// line: the hot path is the successful downcast.
#[cold]
#[inline(never)]
pub(crate) fn mismatch<T>(event: &AnyEvent) -> anyhow::Error {
    payload_type(event, std::any::type_name::<T>())
}

/// [`mismatch`], compiled once for every type expected.
#[cold]
#[inline(never)]
fn payload_type(event: &AnyEvent, expected: &'static str) -> anyhow::Error {
    crate::Error::PayloadType {
        event: event.name().to_owned(),
        expected,
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
            EventCallback::Resilient(guarded) if guarded.inner.is_async() => "async, with a policy",
            EventCallback::Resilient(_) => "sync, with a policy",
        })
    }
}
