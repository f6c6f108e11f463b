//! Responders: `linker.respond::<R>(f)` and `respond_async`, and the callbacks
//! `#[respond]` registers.
//!
//! A responder is a subscriber of its request's type whose callback reads the
//! reply its emission carries, calls the function (its panic caught) and
//! hands the answer over. It is always guarded: once it is unsubscribed no
//! run of it starts, and a request waiting for it learns so at once. Its
//! errors and panics are the requester's, not failure callbacks'.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::FutureExt;

use crate::handler::declared::DeclaredResponder;
use crate::registry::callback::EventCallback;
use crate::registry::record::{Responder, SubscriberParts};
use crate::request::Request;
use crate::request::reply::{Reply, answer, settle};
use crate::{AnyEvent, Error, EventKey, EventLinker, EventSubscriber};

/// The callback of a synchronous responder.
fn sync_callback<R: Request>(
    f: impl Fn(&R) -> Result<R::Response, R::Error> + Send + Sync + 'static,
) -> EventCallback {
    EventCallback::from_ref(move |request: &R| {
        let reply = Reply::<R>::current();
        let call = catch_unwind(AssertUnwindSafe(|| f(request)));
        settle::<R>(reply, answer::<R>(call));
    })
}

/// The callback of an asynchronous responder.
fn async_callback<R, F, Fut>(f: F) -> EventCallback
where
    R: Request,
    F: Fn(Arc<R>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Response, R::Error>> + Send + 'static,
{
    EventCallback::asynchronous(move |event: Arc<AnyEvent>| {
        // Read while the emission is current: the future runs later.
        let reply = Reply::<R>::current();
        let Some(request) = AnyEvent::downcast_arc::<R>(&event) else {
            let err = crate::registry::callback::mismatch::<R>(&*event);
            return futures::future::ready(Err(err)).boxed();
        };
        let started = catch_unwind(AssertUnwindSafe(|| f(request)));
        async move {
            let call = match started {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            settle::<R>(reply, answer::<R>(call));
            Ok(None)
        }
        .boxed()
    })
}

/// Subscribes a responder's callback to `R` on `linker`.
fn subscribe<R: Request>(
    linker: &EventLinker,
    callback: EventCallback,
) -> Result<EventSubscriber, Error> {
    linker.subscribe_parts(
        &[EventKey::of::<R>()],
        SubscriberParts::responder(callback, None, kind::<R>()),
    )
}

/// Whether `R` takes one responder or several.
fn kind<R: Request>() -> Responder {
    if R::MANY_RESPONDERS {
        Responder::OneOf
    } else {
        Responder::Only
    }
}

/// The responder of a function declared with `#[respond]` that takes `&R`.
/// Not public API.
#[doc(hidden)]
pub fn sync_responder<R: Request>(f: fn(&R) -> Result<R::Response, R::Error>) -> DeclaredResponder {
    DeclaredResponder::new(
        EventKey::of::<R>(),
        R::MANY_RESPONDERS,
        sync_callback::<R>(f),
    )
}

/// The responder of an `async fn` declared with `#[respond]` that takes
/// `Arc<R>`. Not public API.
#[doc(hidden)]
pub fn async_responder<R, Fut>(f: fn(Arc<R>) -> Fut) -> DeclaredResponder
where
    R: Request,
    Fut: Future<Output = Result<R::Response, R::Error>> + Send + 'static,
{
    DeclaredResponder::new(
        EventKey::of::<R>(),
        R::MANY_RESPONDERS,
        async_callback::<R, _, _>(f),
    )
}

/// Responders, subscribed at runtime.
impl EventLinker {
    /// Subscribes `responder` as the responder of the request `R`: its `Ok`
    /// value answers [`EventEmitter::request`](crate::EventEmitter::request),
    /// its `Err` (or its panic) fails it. Once it is unsubscribed no run of
    /// it starts, and a request waiting for one fails with
    /// [`RequestError::Unsubscribed`](crate::RequestError::Unsubscribed).
    ///
    /// # Errors
    ///
    /// [`Error::TwoResponders`] when `R` already has a responder here (unless
    /// `R` is declared `many`); the errors of subscribing.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{Error, Event, EventLinker, Request};
    ///
    /// #[derive(Debug)]
    /// struct Double(u32);
    /// impl Event for Double {
    ///     const NAME: &'static str = "Double";
    /// }
    /// impl Request for Double {
    ///     type Response = u32;
    ///     type Error = std::convert::Infallible;
    /// }
    ///
    /// let linker = EventLinker::new();
    /// let responder = linker.respond(|d: &Double| Ok(d.0 * 2))?;
    /// let err = linker.respond(|d: &Double| Ok(d.0 * 3)).unwrap_err();
    /// assert!(matches!(err, Error::TwoResponders { .. }));
    /// assert!(responder.unsubscribe());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn respond<R: Request>(
        &self,
        responder: impl Fn(&R) -> Result<R::Response, R::Error> + Send + Sync + 'static,
    ) -> Result<EventSubscriber, Error> {
        subscribe::<R>(self, sync_callback::<R>(responder))
    }

    /// Subscribes an asynchronous responder of the request `R`: a closure
    /// taking `Arc<R>` and returning a future of its answer. As
    /// [`respond`](Self::respond) otherwise.
    ///
    /// # Errors
    ///
    /// As [`respond`](Self::respond).
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{Event, EventEmitter, EventLinker, Request, TokioProcessingService};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// struct Lookup(u32);
    /// impl Event for Lookup {
    ///     const NAME: &'static str = "Lookup";
    /// }
    /// impl Request for Lookup {
    ///     type Response = String;
    ///     type Error = std::io::Error;
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let linker = EventLinker::new();
    /// linker.respond_async(|l: Arc<Lookup>| async move {
    ///     tokio::time::sleep(Duration::from_millis(1)).await;
    ///     Ok(format!("user {}", l.0))
    /// })?;
    /// let emitter = EventEmitter::builder()
    ///     .processor(TokioProcessingService::default())
    ///     .linker(linker)
    ///     .build();
    /// let name = emitter.request(Lookup(7)).timeout(Duration::from_secs(1)).await?;
    /// assert_eq!(name, "user 7");
    /// # Ok(()) }
    /// ```
    pub fn respond_async<R, F, Fut>(&self, responder: F) -> Result<EventSubscriber, Error>
    where
        R: Request,
        F: Fn(Arc<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R::Response, R::Error>> + Send + 'static,
    {
        subscribe::<R>(self, async_callback::<R, F, Fut>(responder))
    }
}
