//! The forms a handler can take, and how each becomes a type-erased callback
//! (`registry::callback`).
//!
//! - The traits (this file): [`Handler`](crate::Handler),
//!   [`AsyncHandler`](crate::AsyncHandler),
//!   [`SuccessHandler`](crate::SuccessHandler), and their marker `kind`s.
//! - `declared`: what `#[on]` and its siblings build a link-time handler from.
//! - `probe`: how generated code reads a handler's declared return type.
//!
//! A handler's parameter is fixed by the subscription: for `linker.on::<E>()` it is
//! `&E`, `E` (when `E: Clone`), `Arc<E>`, `&AnyEvent` or nothing; for a named event,
//! `&T` for its payload `T`, `&AnyEvent` or nothing; for the global event and
//! multi-event subscriptions, `&AnyEvent` or nothing. Async handlers take owned
//! values (`Arc<E>`, `E`, `Arc<AnyEvent>`, a named payload `T` by clone, or
//! nothing) since their future outlives the emission's borrow.
//!
//! The marker types only tell the forms apart; they never appear in user code.

pub(crate) mod declared;
pub(crate) mod probe;

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::FutureExt;

use crate::event::key::TypeInfo;
use crate::registry::callback::{EventCallback, mismatch};
use crate::workflow::output::HandlerOutput;
use crate::workflow::{OkValue, Outcome, SuccessCallback};
use crate::{AnyEvent, Event};

/// Subscription kinds, which decide the parameter forms a handler may take:
/// `linker.on::<E>()` is a [`Subscription`](crate::Subscription) of
/// [`Typed<E>`](kind::Typed), `linker.on_named(..)` of [`Named`](kind::Named),
/// `linker.on_any()` and `linker.on_keys(..)` of [`Many`](kind::Many).
///
/// ```
/// use pyventus_core::kind::Named;
/// use pyventus_core::{EventLinker, Subscription};
///
/// let linker = EventLinker::new();
/// let named: Subscription<'_, Named> = linker.on_named("Greet");
/// named.subscribe(|name: &String| println!("{name}"))?;
/// # Ok::<(), pyventus_core::Error>(())
/// ```
pub mod kind {
    use std::marker::PhantomData;

    /// A subscription to the typed event `E`.
    pub struct Typed<E>(PhantomData<fn() -> E>);
    /// A subscription to a named event.
    pub struct Named;
    /// A subscription to the global event, or to several events at once.
    pub struct Many;
}

/// Markers that tell the parameter forms apart.
#[doc(hidden)]
pub mod marker {
    pub struct Ref;
    pub struct Val;
    pub struct Shared;
    pub struct AnyRef;
    pub struct AnyShared;
    pub struct Nothing;
}

use kind::{Many, Named, Typed};

/// A synchronous handler for a subscription of kind `K`.
///
/// Implemented for closures and functions taking, for `linker.on::<E>()`, `&E`,
/// `E` (when `E: Clone`), `Arc<E>`, `&AnyEvent` or nothing; for a named event,
/// `&T` of its payload, `&AnyEvent` or nothing; for the global event and
/// multi-event subscriptions, `&AnyEvent` or nothing. `M` only tells the forms
/// apart.
///
/// # Examples
///
/// ```
/// use pyventus_core::{AnyEvent, Event, EventLinker};
/// use std::sync::Arc;
///
/// #[derive(Debug, Clone)]
/// struct Ping(u32);
/// impl Event for Ping {
///     const NAME: &'static str = "Ping";
/// }
///
/// fn audit(p: &Ping) -> Result<u32, std::io::Error> {
///     Ok(p.0)
/// }
///
/// let linker = EventLinker::new();
/// linker.on::<Ping>().subscribe(audit)?; // a function
/// linker.on::<Ping>().subscribe(|p: Arc<Ping>| p.0)?; // a closure taking `Arc<E>`
/// linker.on::<Ping>().subscribe(|e: &AnyEvent| println!("{e:?}"))?;
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "this closure cannot handle the subscribed event",
    label = "expected a handler taking the event (`&E`, `E`, `Arc<E>`), `&AnyEvent`, or nothing",
    note = "a named event's handler takes `&T` for its payload; global and multi-event handlers take `&AnyEvent`",
    note = "handlers return `()`, a value, or `Result<T, E>` with `E: Into<anyhow::Error>`"
)]
pub trait Handler<K, M>: Send + Sync + 'static {
    /// What the handler returns.
    type Output: HandlerOutput;

    #[doc(hidden)]
    fn into_callback(self) -> EventCallback;
}

/// An asynchronous handler (a closure returning a future) for a subscription of kind `K`.
///
/// # Examples
///
/// ```
/// use pyventus_core::{AnyEvent, Event, EventLinker};
/// use std::sync::Arc;
///
/// #[derive(Debug, Clone)]
/// struct Ping(u32);
/// impl Event for Ping {
///     const NAME: &'static str = "Ping";
/// }
///
/// let linker = EventLinker::new();
/// linker.on::<Ping>().subscribe_async(|p: Arc<Ping>| async move { p.0 })?;
/// linker.on::<Ping>().subscribe_async(|p: Ping| async move { anyhow::Ok(p.0) })?;
/// linker.on_any().subscribe_async(|e: Arc<AnyEvent>| async move { println!("{e:?}") })?;
/// linker.on_named("Greet").subscribe_async(|name: String| async move { println!("{name}") })?;
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "this closure cannot be an async handler of the subscribed event",
    label = "expected a closure taking `Arc<E>`, `E`, `Arc<AnyEvent>` or nothing and returning a future",
    note = "an async handler's future must be `Send + 'static`: take the event by `Arc` or by value, not by reference",
    note = "a named event's async handler takes its payload by value (cloned) or nothing"
)]
pub trait AsyncHandler<K, M>: Send + Sync + 'static {
    /// What the handler's future resolves to.
    type Output: HandlerOutput;

    #[doc(hidden)]
    fn into_callback(self) -> EventCallback;
}

#[inline]
fn ok_value<R: HandlerOutput>(r: R) -> Outcome {
    r.into_result().and_then(crate::workflow::ok)
}

fn boxed<Fut, R>(fut: Fut) -> futures::future::BoxFuture<'static, Outcome>
where
    Fut: Future<Output = R> + Send + 'static,
    R: HandlerOutput,
{
    fut.map(ok_value).boxed()
}

impl<E, F, R> Handler<Typed<E>, marker::Ref> for F
where
    E: Event,
    F: Fn(&E) -> R + Send + Sync + 'static,
    R: HandlerOutput,
{
    type Output = R;
    fn into_callback(self) -> EventCallback {
        EventCallback::from_ref(self)
    }
}

impl<E, F, R> Handler<Typed<E>, marker::Val> for F
where
    E: Event + Clone,
    F: Fn(E) -> R + Send + Sync + 'static,
    R: HandlerOutput,
{
    type Output = R;
    fn into_callback(self) -> EventCallback {
        EventCallback::from_ref(move |e: &E| self(e.clone()))
    }
}

impl<E, F, R> Handler<Typed<E>, marker::Shared> for F
where
    E: Event,
    F: Fn(Arc<E>) -> R + Send + Sync + 'static,
    R: HandlerOutput,
{
    type Output = R;
    fn into_callback(self) -> EventCallback {
        EventCallback::from_shared(self)
    }
}

impl<K: 'static, F, R> Handler<K, marker::AnyRef> for F
where
    F: Fn(&AnyEvent) -> R + Send + Sync + 'static,
    R: HandlerOutput,
{
    type Output = R;
    fn into_callback(self) -> EventCallback {
        EventCallback::from_any(self)
    }
}

impl<K: 'static, F, R> Handler<K, marker::Nothing> for F
where
    F: Fn() -> R + Send + Sync + 'static,
    R: HandlerOutput,
{
    type Output = R;
    fn into_callback(self) -> EventCallback {
        EventCallback::from_any(move |_: &AnyEvent| self())
    }
}

impl<P, F, R> Handler<Named, (marker::Ref, P)> for F
where
    P: Send + Sync + 'static,
    F: Fn(&P) -> R + Send + Sync + 'static,
    R: HandlerOutput,
{
    type Output = R;
    fn into_callback(self) -> EventCallback {
        EventCallback::from_ref(self)
    }
}

impl<E, F, Fut> AsyncHandler<Typed<E>, marker::Shared> for F
where
    E: Event,
    F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    type Output = Fut::Output;
    fn into_callback(self) -> EventCallback {
        EventCallback::asynchronous(move |ev| match AnyEvent::downcast_arc::<E>(&ev) {
            Some(e) => boxed(self(e)),
            None => futures::future::ready(Err(mismatch::<E>(&*ev))).boxed(),
        })
    }
}

impl<E, F, Fut> AsyncHandler<Typed<E>, marker::Val> for F
where
    E: Event + Clone,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    type Output = Fut::Output;
    fn into_callback(self) -> EventCallback {
        EventCallback::asynchronous(move |ev| match ev.downcast_ref::<E>() {
            Some(e) => boxed(self(e.clone())),
            None => futures::future::ready(Err(mismatch::<E>(&*ev))).boxed(),
        })
    }
}

impl<P, F, Fut> AsyncHandler<Named, (marker::Val, P)> for F
where
    P: Clone + Send + Sync + 'static,
    F: Fn(P) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    type Output = Fut::Output;
    fn into_callback(self) -> EventCallback {
        EventCallback::asynchronous(move |ev| match ev.downcast_ref::<P>() {
            Some(p) => boxed(self(p.clone())),
            None => futures::future::ready(Err(mismatch::<P>(&*ev))).boxed(),
        })
    }
}

macro_rules! any_shared_async {
    ($($kind:ty),*) => {$(
        impl<F, Fut> AsyncHandler<$kind, marker::AnyShared> for F
        where
            F: Fn(Arc<AnyEvent>) -> Fut + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: HandlerOutput,
        {
            type Output = Fut::Output;
            fn into_callback(self) -> EventCallback {
                EventCallback::asynchronous(move |ev| boxed(self(ev)))
            }
        }
    )*};
}

// Not for `Named`: there `Fn(Arc<AnyEvent>)` would be indistinguishable from a
// payload taken by value.
any_shared_async!(Many);

impl<E: Event, F, Fut> AsyncHandler<Typed<E>, marker::AnyShared> for F
where
    F: Fn(Arc<AnyEvent>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    type Output = Fut::Output;
    fn into_callback(self) -> EventCallback {
        EventCallback::asynchronous(move |ev| boxed(self(ev)))
    }
}

impl<K: 'static, F, Fut> AsyncHandler<K, marker::Nothing> for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    type Output = Fut::Output;
    fn into_callback(self) -> EventCallback {
        EventCallback::asynchronous(move |_| boxed(self()))
    }
}

/// A success callback: takes the handler's `Ok` value `T`, or nothing.
///
/// # Examples
///
/// ```
/// use pyventus_core::EventLinker;
///
/// let linker = EventLinker::new();
/// linker
///     .on_named("Count")
///     .on_success(|n: u64| println!("counted {n}"))
///     .subscribe(|n: &u64| n + 1)?;
/// linker.on_named("Tick").on_success(|| println!("done")).subscribe(|| ())?;
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "this closure cannot be a success callback",
    label = "expected a closure taking the handler's `Ok` value, or nothing",
    note = "success callbacks take the value by value: `|receipt: Receipt| ...`"
)]
pub trait SuccessHandler<T, M>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_success(self) -> SuccessCallback;
}

/// Stands for "any `Ok` value" in a success callback that ignores it.
#[doc(hidden)]
pub struct IgnoredValue(PhantomData<()>);

impl<T, F> SuccessHandler<T, marker::Val> for F
where
    T: Send + 'static,
    F: Fn(T) + Send + Sync + 'static,
{
    fn into_success(self) -> SuccessCallback {
        SuccessCallback::new(Some(TypeInfo::of::<T>()), move |value: OkValue| {
            if let Ok(v) = (value as Box<dyn Any + Send>).downcast::<T>() {
                self(*v);
            }
        })
    }
}

impl<F> SuccessHandler<IgnoredValue, marker::Nothing> for F
where
    F: Fn() + Send + Sync + 'static,
{
    fn into_success(self) -> SuccessCallback {
        SuccessCallback::new(None, move |_| self())
    }
}
