//! What declarative handlers are made of: each handler as constant data (its
//! function pointer in a form pyventus knows), and the adapters that make an
//! event callback of it.
//!
//! Not public API: `#[on]`, `#[once]`, `#[on_success]` and `#[on_failure]`
//! reach these items through `__private`. Everything here is a thin shim over
//! the same machinery runtime subscription uses, so that a declared handler
//! behaves exactly like the same function subscribed at runtime.
//!
//! # Handlers as data
//!
//! A thousand handlers should build like a thousand functions. So `#[on]` emits
//! no code of its own for a synchronous handler (beyond the constructor
//! `inventory` links each registration with): its registration holds the
//! handler's `fn` pointer in a [`RefFn`], [`SharedFn`], [`AnyFn`] or
//! [`NoArgFn`], and the adapter that calls it ([`by_ref`], [`by_shared`],
//! [`by_any`], [`by_nothing`]) is generic only over the event type and the
//! return type: it is compiled once for all the handlers that share them. Each
//! data form is built by a `const fn` that also takes the *read probe*: a
//! closure reading the handler's declared return type (the probe of
//! `probe.rs`), or [`read_unit`] for a handler returning `()`. Only its type is
//! used, to pick how the value is read; it is never called, so never compiled
//! to code. The event the parameter takes is checked against the attribute's
//! ([`TakesEvent`]) by the same `const fn`.
//!
//! An `async fn` has a future type of its own, so its handler keeps one
//! function per handler ([`AsyncFn`]), which boxes that future; the rest is
//! shared. `#[on(E, inline)]` keeps a closure per handler ([`BuiltFn`]), where
//! the handler can be inlined into its adapter.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::handler::marker;
use crate::handler::probe::ReadAs;
use crate::registry::callback::EventCallback;
use crate::workflow::extract::DeliveryContext;
use crate::workflow::{Outcome, SuccessCallback, ok};
use crate::{AnyEvent, HandlerOutput, SuccessHandler};

/// What `#[on]` tells `#[on_success(handler)]` and `#[on_failure(handler)]`
/// about a handler, through a hidden type alias beside it (a [`Declared`]).
///
/// A callback naming a function of its own module that has no such alias
/// finds a fallback of that name instead, [`NotAHandler`], which the
/// callback's attribute glob-imports (the handler's own alias shadows it),
/// and this trait's message says what went wrong.
#[diagnostic::on_unimplemented(
    message = "no `#[on]` or `#[once]` handler of this name in scope",
    label = "not a handler declared with `#[on]` or `#[once]`",
    note = "a callback names its handler: declare the function with `#[on(...)]` or `#[once(...)]`, or give its path (`orders::charge`) when it is in another module"
)]
pub trait HandlerInfo {
    /// The handler's declared return type (`()` when it declares none), the
    /// output of its future for an `async fn`.
    type Output;
    /// The handler's key, which its registration carries too: made by `#[on]`
    /// from its compilation, its count of expansions, where the handler is
    /// written and its name, one per handler. The linker attaches a callback
    /// to the handler of its key, and refuses one whose key two handlers
    /// share (`Error::AmbiguousHandler`) rather than guess.
    const KEY: u64;
}

/// A declared handler's return type and key, as a type: `#[on]` writes
/// `type __pyventus_handler_<name> = Declared<fn() -> Output, KEY>` beside
/// the handler. A type alias is the cheapest item rustc builds (an unused one
/// is never checked further): a constant cost it 0.75 M instructions a
/// handler where the alias costs 0.29 M (docs/benchmarks.md). It names
/// nothing a callback might not see: the handler's linker is in its
/// registration, not here.
///
/// `F` is `fn() -> Output`: in a function pointer's return type, a lifetime
/// the handler's return type leaves out (`-> Cow<str>`) is an error at that
/// type (`E0106`). Never made: the handler's data is in its registration.
pub enum Declared<F, const KEY: u64> {
    #[doc(hidden)]
    Never(std::convert::Infallible, PhantomData<F>),
}

impl<O, const K: u64> HandlerInfo for Declared<fn() -> O, K> {
    type Output = O;
    const KEY: u64 = K;
}

/// The fallback a callback's attribute finds for a name that is no handler:
/// no [`HandlerInfo`], so the only error is that trait's.
pub enum NotAHandler {}

/// A declared handler, as constant data: makes its event callback when its
/// linker is collected.
pub trait DeclaredHandler: Sync {
    /// The handler's event callback.
    fn callback(&self) -> EventCallback;
}

/// `Self`, the event a handler's parameter takes, is `A`, the event its
/// attribute names: checked where the handler's data is built, with a message
/// at the parameter.
#[diagnostic::on_unimplemented(
    message = "this handler takes the event `{Self}`, but its attribute links it to `{A}`",
    label = "expected `{A}` here",
    note = "a handler of one typed event takes it as `&{A}`, `{A}` (cloned) or `Arc<{A}>`, \
            or takes `&AnyEvent`, or nothing"
)]
pub trait TakesEvent<A> {}

impl<A> TakesEvent<A> for A {}

/// The read probe of a handler declaring no return type: `()` is a success.
pub const fn read_unit(value: ()) -> Result<(), anyhow::Error> {
    Ok(value)
}

/// A synchronous handler taking `&E`, read as `O`.
pub struct RefFn<E, R, O> {
    handler: fn(&E) -> R,
    read: PhantomData<fn() -> O>,
}

impl<E, R, O> RefFn<E, R, O> {
    /// The handler, of the event `A` its attribute names; `read` is the read
    /// probe, only its type is used.
    pub const fn new<A>(handler: fn(&E) -> R, read: fn(R) -> O) -> Self
    where
        E: TakesEvent<A>,
    {
        let _ = read;
        RefFn {
            handler,
            read: PhantomData,
        }
    }
}

impl<E, R, O> DeclaredHandler for RefFn<E, R, O>
where
    E: Any + Send + Sync,
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    fn callback(&self) -> EventCallback {
        by_ref::<E, R, O>(self.handler)
    }
}

/// A synchronous handler taking `&E` and declaring no return type: called
/// by lanes through its own pointer, with nothing to read (and no adapter of
/// its return type to compile).
pub struct UnitRefFn<E> {
    handler: fn(&E),
}

impl<E> UnitRefFn<E> {
    /// The handler, of the event `A` its attribute names.
    pub const fn new<A>(handler: fn(&E)) -> Self
    where
        E: TakesEvent<A>,
    {
        UnitRefFn { handler }
    }
}

impl<E: Any + Send + Sync> DeclaredHandler for UnitRefFn<E> {
    fn callback(&self) -> EventCallback {
        EventCallback::from_unit_fn(self.handler)
    }
}

/// A synchronous handler taking `Arc<E>`, read as `O`.
pub struct SharedFn<E, R, O> {
    handler: fn(Arc<E>) -> R,
    read: PhantomData<fn() -> O>,
}

impl<E, R, O> SharedFn<E, R, O> {
    /// The handler, of the event `A` its attribute names; `read` is the read
    /// probe, only its type is used.
    pub const fn new<A>(handler: fn(Arc<E>) -> R, read: fn(R) -> O) -> Self
    where
        E: TakesEvent<A>,
    {
        let _ = read;
        SharedFn {
            handler,
            read: PhantomData,
        }
    }
}

impl<E, R, O> DeclaredHandler for SharedFn<E, R, O>
where
    E: Any + Send + Sync,
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    fn callback(&self) -> EventCallback {
        by_shared::<E, R, O>(self.handler)
    }
}

/// A synchronous handler taking `&AnyEvent`, read as `O`.
pub struct AnyFn<R, O> {
    handler: fn(&AnyEvent) -> R,
    read: PhantomData<fn() -> O>,
}

impl<R, O> AnyFn<R, O> {
    /// The handler; `read` is the read probe, only its type is used.
    pub const fn new(handler: fn(&AnyEvent) -> R, read: fn(R) -> O) -> Self {
        let _ = read;
        AnyFn {
            handler,
            read: PhantomData,
        }
    }
}

impl<R, O> DeclaredHandler for AnyFn<R, O>
where
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    fn callback(&self) -> EventCallback {
        by_any::<R, O>(self.handler)
    }
}

/// A synchronous handler taking nothing, read as `O`.
pub struct NoArgFn<R, O> {
    handler: fn() -> R,
    read: PhantomData<fn() -> O>,
}

impl<R, O> NoArgFn<R, O> {
    /// The handler; `read` is the read probe, only its type is used.
    pub const fn new(handler: fn() -> R, read: fn(R) -> O) -> Self {
        let _ = read;
        NoArgFn {
            handler,
            read: PhantomData,
        }
    }
}

impl<R, O> DeclaredHandler for NoArgFn<R, O>
where
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    fn callback(&self) -> EventCallback {
        by_nothing::<R, O>(self.handler)
    }
}

/// An `async fn` handler: its function takes the shared event and boxes the
/// handler's future, which owns the event and borrows from it.
pub struct AsyncFn(pub fn(Arc<AnyEvent>) -> BoxFuture<'static, Outcome>);

impl DeclaredHandler for AsyncFn {
    fn callback(&self) -> EventCallback {
        EventCallback::asynchronous(self.0)
    }
}

/// An `async fn` handler that takes values after its event: its function
/// reads them from the delivery, then boxes the handler's future.
pub struct AsyncInFn(pub fn(Arc<AnyEvent>, &DeliveryContext<'_>) -> BoxFuture<'static, Outcome>);

impl DeclaredHandler for AsyncInFn {
    fn callback(&self) -> EventCallback {
        EventCallback::asynchronous_in(self.0)
    }
}

/// A handler whose callback is built by a function of its own (`inline`, or
/// one that takes values after its event).
pub struct BuiltFn(pub fn() -> EventCallback);

/// A responder declared with `#[respond]`: its request's key, whether the
/// request takes several responders, and its callback. Not public API.
#[doc(hidden)]
pub struct DeclaredResponder {
    pub(crate) key: crate::EventKey,
    pub(crate) many: bool,
    pub(crate) callback: EventCallback,
}

impl DeclaredResponder {
    pub(crate) fn new(key: crate::EventKey, many: bool, callback: EventCallback) -> Self {
        DeclaredResponder {
            key,
            many,
            callback,
        }
    }
}

impl DeclaredHandler for BuiltFn {
    fn callback(&self) -> EventCallback {
        (self.0)()
    }
}

/// The callback of a declared handler taking `&E` (a typed event or a named
/// payload), whose value is read as `O`. Every declared handler of this form
/// reaches the runtime here, so how it is called can change without the macros.
pub(crate) fn by_ref<E, R, O>(handler: fn(&E) -> R) -> EventCallback
where
    E: Any + Send + Sync,
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    // A handler returning `()` is called through its own pointer, as a
    // subscribed function would be: nothing to read.
    if let Some(unit) = (&handler as &dyn Any).downcast_ref::<fn(&E)>() {
        return EventCallback::from_unit_fn(*unit);
    }
    EventCallback::from_ref(move |event: &E| handler(event).read_as())
}

/// The callback of a declared handler taking `Arc<E>`.
pub(crate) fn by_shared<E, R, O>(handler: fn(Arc<E>) -> R) -> EventCallback
where
    E: Any + Send + Sync,
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    EventCallback::from_shared(move |event: Arc<E>| handler(event).read_as())
}

/// The callback of a declared handler taking `&AnyEvent`.
pub(crate) fn by_any<R, O>(handler: fn(&AnyEvent) -> R) -> EventCallback
where
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    EventCallback::from_any(move |event: &AnyEvent| handler(event).read_as())
}

/// The callback of a declared handler taking nothing.
pub(crate) fn by_nothing<R, O>(handler: fn() -> R) -> EventCallback
where
    R: ReadAs<O> + 'static,
    O: HandlerOutput,
{
    EventCallback::from_any(move |_: &AnyEvent| handler().read_as())
}

/// An `async fn` handler's future, boxed. Generic over the future, so compiled
/// once per handler: the least an unnameable future type allows.
pub fn boxed<F>(future: F) -> BoxFuture<'static, Outcome>
where
    F: Future<Output = Outcome> + Send + 'static,
{
    future.boxed()
}

/// The callback of a handler taking `&E`, with the handler inlined (`inline`).
pub fn typed_callback<E, R>(handler: impl Fn(&E) -> R + Send + Sync + 'static) -> EventCallback
where
    E: Any + Send + Sync,
    R: HandlerOutput,
{
    EventCallback::from_ref(handler)
}

/// The callback of a handler taking `Arc<E>`, with the handler inlined.
pub fn shared_callback<E, R>(handler: impl Fn(Arc<E>) -> R + Send + Sync + 'static) -> EventCallback
where
    E: Any + Send + Sync,
    R: HandlerOutput,
{
    EventCallback::from_shared(handler)
}

/// The callback of a handler taking `&AnyEvent` or nothing, with the handler
/// inlined.
pub fn any_callback<R: HandlerOutput>(
    handler: impl Fn(&AnyEvent) -> R + Send + Sync + 'static,
) -> EventCallback {
    EventCallback::from_any(handler)
}

/// The callback of a handler taking `&E` and values read from its delivery.
pub fn typed_callback_in<E, R>(
    handler: impl Fn(&E, &DeliveryContext<'_>) -> R + Send + Sync + 'static,
) -> EventCallback
where
    E: Any + Send + Sync,
    R: HandlerOutput,
{
    EventCallback::from_ref_in(handler)
}

/// The callback of a handler taking `Arc<E>` and values read from its
/// delivery.
pub fn shared_callback_in<E, R>(
    handler: impl Fn(Arc<E>, &DeliveryContext<'_>) -> R + Send + Sync + 'static,
) -> EventCallback
where
    E: Any + Send + Sync,
    R: HandlerOutput,
{
    EventCallback::from_shared_in(handler)
}

/// The callback of a handler taking `&AnyEvent` (or nothing) and values read
/// from its delivery.
pub fn any_callback_in<R: HandlerOutput>(
    handler: impl Fn(&AnyEvent, &DeliveryContext<'_>) -> R + Send + Sync + 'static,
) -> EventCallback {
    EventCallback::from_any_in(handler)
}

/// The shared event as `Arc<E>`, if it is an `E`.
pub fn shared_event<E: Any + Send + Sync>(event: &Arc<AnyEvent>) -> Option<Arc<E>> {
    AnyEvent::downcast_arc(event)
}

/// The outcome of an `async fn` handler's result.
pub fn outcome<R: HandlerOutput>(result: R) -> Outcome {
    result.into_result().and_then(ok)
}

/// The failure of a handler whose event does not carry the payload it takes.
pub fn payload_mismatch<T>(event: &AnyEvent) -> anyhow::Error {
    crate::registry::callback::mismatch::<T>(event)
}

/// A declared success callback, as constant data.
pub trait DeclaredSuccess: Sync {
    /// The success callback.
    fn callback(&self) -> SuccessCallback;
}

/// A success callback taking its handler's `Ok` value, `T`.
pub struct SuccessFn<T>(fn(T));

impl<T> SuccessFn<T> {
    /// The callback of the handler `I`, called with its `Ok` value read as
    /// `O` (the read probe of the handler's declared return type; only its
    /// type is used).
    pub const fn new<I, O>(read: fn(I::Output) -> O, callback: fn(T)) -> Self
    where
        I: HandlerInfo,
        O: HandlerOutput<Ok = T>,
    {
        let _ = read;
        SuccessFn(callback)
    }
}

impl<T: Send + 'static> DeclaredSuccess for SuccessFn<T> {
    fn callback(&self) -> SuccessCallback {
        SuccessHandler::<T, marker::Val>::into_success(self.0)
    }
}

/// A success callback that ignores its handler's `Ok` value.
pub struct IgnoreFn(pub fn());

impl DeclaredSuccess for IgnoreFn {
    fn callback(&self) -> SuccessCallback {
        SuccessHandler::<crate::handler::IgnoredValue, marker::Nothing>::into_success(self.0)
    }
}
