//! Type-erased callbacks: what a subscriber stores, whatever form its handler took.
//!
//! Erasing at subscription time keeps the workflow (success, failure, panics,
//! logging) in one non-generic place, so each handler costs one small adapter.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::AnyEvent;
use crate::key::TypeInfo;

/// A handler's `Ok` value, boxed for the success callback. `()` (the common case)
/// is zero-sized and does not allocate.
pub type OkValue = Box<dyn Any + Send>;

/// What running an event callback gives: its `Ok` value, or its error.
pub type Outcome = Result<OkValue, anyhow::Error>;

type BorrowedFn = dyn Fn(&AnyEvent) -> Outcome + Send + Sync;
type SharedFn = dyn Fn(&Arc<AnyEvent>) -> Outcome + Send + Sync;
type AsyncFn = dyn Fn(Arc<AnyEvent>) -> BoxFuture<'static, Outcome> + Send + Sync;

/// An event callback, erased. Used by the declarative macros through
/// `::pyventus::__private`; not public API.
#[doc(hidden)]
#[derive(Clone)]
pub enum EventCallback {
    /// Synchronous, needs only a borrow of the event: can run on a borrowed event
    /// without the emission ever being moved to the heap.
    Borrowed(Arc<BorrowedFn>),
    /// Synchronous, needs the shared event (`Arc<E>` parameters).
    Shared(Arc<SharedFn>),
    /// Asynchronous.
    Async(Arc<AsyncFn>),
}

impl EventCallback {
    /// A synchronous callback that borrows the event.
    pub fn borrowed(f: impl Fn(&AnyEvent) -> Outcome + Send + Sync + 'static) -> Self {
        EventCallback::Borrowed(Arc::new(f))
    }

    /// A synchronous callback that takes the shared event.
    pub fn shared(f: impl Fn(&Arc<AnyEvent>) -> Outcome + Send + Sync + 'static) -> Self {
        EventCallback::Shared(Arc::new(f))
    }

    /// An asynchronous callback.
    pub fn asynchronous(
        f: impl Fn(Arc<AnyEvent>) -> BoxFuture<'static, Outcome> + Send + Sync + 'static,
    ) -> Self {
        EventCallback::Async(Arc::new(f))
    }

    pub(crate) fn is_async(&self) -> bool {
        matches!(self, EventCallback::Async(_))
    }

    /// Whether running it needs the event on the heap (`Arc`), not just borrowed.
    pub(crate) fn needs_shared(&self) -> bool {
        !matches!(self, EventCallback::Borrowed(_))
    }
}

impl fmt::Debug for EventCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventCallback::Borrowed(_) => "sync",
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

    /// A success callback for a handler whose `Ok` type is `T` (used by the macros,
    /// which check the type at compile time).
    pub fn typed<T: Send + 'static>(call: fn(T)) -> Self {
        SuccessCallback::new(Some(TypeInfo::of::<T>()), move |value: OkValue| {
            if let Ok(v) = value.downcast::<T>() {
                call(*v);
            }
        })
    }
}

/// A failure callback, erased. Not public API.
pub(crate) type FailureCallback = Arc<dyn Fn(&anyhow::Error) + Send + Sync>;

/// A linker's default success callback: gets every `Ok` value that has no
/// success callback of its own.
pub(crate) type DefaultSuccess = Arc<dyn Fn(&dyn Any) + Send + Sync>;
