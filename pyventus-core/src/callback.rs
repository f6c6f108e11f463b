//! Type-erased callbacks: what a subscriber stores, whatever form its handler took.
//!
//! A synchronous callback is one indirect call that downcasts the payload, runs
//! the handler and hands a success to the workflow. The parts that are the same
//! for every handler (failures, panics, callbacks, logging) live, non-generic and
//! out of line, in `workflow`.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::AnyEvent;
use crate::handler::HandlerOutput;
use crate::key::TypeInfo;
use crate::subscriber::SubscriberInner;
use crate::workflow::{Run, RunContext};

/// A handler's `Ok` value, boxed for the success callback.
pub type OkValue = Box<dyn Any + Send>;

/// What an async event callback resolves to: its `Ok` value (`None` for `()`,
/// which then costs nothing), or its error.
pub type Outcome = Result<Option<OkValue>, anyhow::Error>;

/// The outcome of a handler that returned `value`.
#[inline]
pub fn ok<T: Send + 'static>(value: T) -> Outcome {
    Ok(boxed_value(value))
}

#[inline]
pub(crate) fn boxed_value<T: Send + 'static>(value: T) -> Option<OkValue> {
    if TypeId::of::<T>() == TypeId::of::<()>() {
        None
    } else {
        Some(Box::new(value))
    }
}

/// The `Ok` value as the success callbacks take it.
pub(crate) fn unbox(value: Option<OkValue>) -> OkValue {
    value.unwrap_or_else(|| Box::new(()))
}

/// One event as a synchronous callback receives it. The payload is resolved
/// once per emission, so each subscriber's downcast is a single type check.
#[doc(hidden)]
pub struct Delivery<'a> {
    pub(crate) event: &'a AnyEvent,
    pub(crate) payload: &'a (dyn Any + Send + Sync),
    /// The shared event, when the emission owns one (not on the inline fast path).
    pub(crate) shared: Option<&'a Arc<AnyEvent>>,
    pub(crate) cx: &'a RunContext<'a>,
}

impl<'a> Delivery<'a> {
    /// The delivery of an event an emission shares.
    pub(crate) fn of_shared(event: &'a Arc<AnyEvent>, cx: &'a RunContext<'a>) -> Self {
        Delivery {
            event: &**event,
            payload: event.payload(),
            shared: Some(event),
            cx,
        }
    }
}

type SyncFn = dyn Fn(Run<'_>) + Send + Sync;
type AsyncFn = dyn Fn(Arc<AnyEvent>) -> BoxFuture<'static, Outcome> + Send + Sync;

/// An event callback, erased. Not public API.
#[doc(hidden)]
pub enum EventCallback {
    /// Synchronous, for the typed event `E`: erased, and also typed so that a
    /// registry entry of `E` can call it without downcasting (its [`Lane`]).
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
        f: impl Fn(&E, Run<'_>) + Send + Sync + 'static,
    ) -> Self {
        let typed = Arc::new(TypedFn::<E>(Box::new(f)));
        let erased = typed.clone();
        EventCallback::Typed(
            Box::new(
                move |run: Run<'_>| match run.delivery.payload.downcast_ref::<E>() {
                    Some(event) => (erased.0)(event, run),
                    None => run.fail(&mismatch::<E>(run.delivery.event)),
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
                None => run.fail(&mismatch::<E>(run.delivery.event)),
            }
        }))
    }

    /// A handler taking `&AnyEvent` (or ignoring the event).
    pub(crate) fn from_any<R: HandlerOutput>(
        f: impl Fn(&AnyEvent) -> R + Send + Sync + 'static,
    ) -> Self {
        EventCallback::Borrowed(Box::new(move |run: Run<'_>| {
            run.deliver(|| f(run.delivery.event));
        }))
    }

    pub(crate) fn asynchronous(
        f: impl Fn(Arc<AnyEvent>) -> BoxFuture<'static, Outcome> + Send + Sync + 'static,
    ) -> Self {
        EventCallback::Async(Box::new(f))
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

/// A `Lane<E>`, erased.
pub(crate) type ErasedLane = Arc<dyn Any + Send + Sync>;
type LaneBuilder = fn(&[Arc<SubscriberInner>]) -> Option<ErasedLane>;
type TypedFnOf<E> = Box<dyn Fn(&E, Run<'_>) + Send + Sync>;

struct TypedFn<E>(TypedFnOf<E>);

/// The subscribers of a registry entry owned by `E`, each with its typed callback:
/// an emission of `E` downcasts the lane once, then calls every subscriber with
/// `&E` directly instead of downcasting the event for each of them.
pub(crate) struct Lane<E> {
    subs: Box<[LaneSubscriber<E>]>,
}

type LaneSubscriber<E> = (Arc<SubscriberInner>, Arc<TypedFn<E>>);

impl<E: Any + Send + Sync> Lane<E> {
    fn build(subs: &[Arc<SubscriberInner>]) -> Option<ErasedLane> {
        let subs = subs
            .iter()
            .map(|sub| match &sub.callback {
                EventCallback::Typed(_, typed) => typed
                    .call
                    .clone()
                    .downcast::<TypedFn<E>>()
                    .ok()
                    .map(|f| (sub.clone(), f)),
                _ => None,
            })
            .collect::<Option<Box<[_]>>>()?;
        Some(Arc::new(Lane { subs }))
    }

    /// Runs every subscriber of the lane on `event`.
    #[inline]
    pub(crate) fn run(&self, event: &E, delivery: &Delivery<'_>) {
        for (sub, f) in &self.subs {
            (f.0)(event, Run::new(sub, delivery));
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

/// A success callback, erased, with the `Ok` type it expects (`None`: it ignores
/// the value). Not public API.
#[doc(hidden)]
#[derive(Clone)]
pub struct SuccessCallback {
    pub(crate) expects: Option<TypeInfo>,
    pub(crate) call: Arc<dyn Fn(OkValue) + Send + Sync>,
}

impl SuccessCallback {
    pub(crate) fn new(
        expects: Option<TypeInfo>,
        call: impl Fn(OkValue) + Send + Sync + 'static,
    ) -> Self {
        SuccessCallback {
            expects,
            call: Arc::new(call),
        }
    }
}

/// A failure callback, erased.
pub(crate) type FailureCallback = Arc<dyn Fn(&anyhow::Error) + Send + Sync>;

/// A linker's default success callback: gets every `Ok` value that has no
/// success callback of its own.
pub(crate) type DefaultSuccess = Arc<dyn Fn(&dyn Any) + Send + Sync>;
