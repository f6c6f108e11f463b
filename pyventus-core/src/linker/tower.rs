//! A `tower::Service` as an event's handler, so that tower's own middleware
//! (its timeout, rate and concurrency limits, load shedding, retries, or any
//! `tower::Layer`) wraps a pyventus handler as it wraps an HTTP one. The
//! other kind of middleware, pyventus's own [`Middleware`](crate::resilience::Middleware),
//! fits every handler (sync ones too) and sees each attempt of a policy.

use std::sync::{Arc, Mutex, PoisonError};

use tower_service::Service;

use crate::handler::kind::Typed;

use crate::{Error, Event, EventSubscriber, Subscription};

/// The error type tower's middleware returns (`tower::BoxError`).
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
impl<E: Event> Subscription<'_, Typed<E>> {
    /// Subscribes a [`tower_service::Service`] of the event as an
    /// asynchronous handler (feature `tower`): each delivery waits for the
    /// service to be ready (`poll_ready`), then calls a clone of it with the
    /// shared event. Build it with `tower::ServiceBuilder` to put tower's
    /// layers around a handler; its response goes to the success callback,
    /// its error (a layer's too: a timeout, a shed load) to the failure
    /// callback, as the `tower::BoxError` tower's layers return (so
    /// `err.downcast_ref::<tower::BoxError>()` and then, as behind axum's
    /// `HandleErrorLayer`, `.is::<tower::timeout::error::Elapsed>()`).
    ///
    /// A service is cloned for each delivery, as tower's servers do: state
    /// its layers keep (a concurrency limit's semaphore, a rate limit's
    /// budget) is shared between the clones.
    ///
    /// # Errors
    ///
    /// As [`subscribe_async`](Self::subscribe_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// use pyventus_core::{Event, EventEmitter, EventLinker, TokioProcessingService};
    /// use tower::{ServiceBuilder, service_fn};
    ///
    /// #[derive(Debug, Clone)]
    /// struct OrderPlaced(u64);
    /// impl Event for OrderPlaced {
    ///     const NAME: &'static str = "OrderPlaced";
    /// }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), pyventus_core::Error> {
    /// let linker = EventLinker::new();
    /// let charge = service_fn(|order: Arc<OrderPlaced>| async move {
    ///     Ok::<u64, tower::BoxError>(order.0 * 100)
    /// });
    /// linker
    ///     .on::<OrderPlaced>()
    ///     .on_success(|cents: u64| println!("charged {cents}"))
    ///     .subscribe_service(
    ///         ServiceBuilder::new()
    ///             .timeout(Duration::from_secs(2))
    ///             .concurrency_limit(8)
    ///             .service(charge),
    ///     )?;
    /// let tokio = TokioProcessingService::default();
    /// let emitter = EventEmitter::builder().processor(tokio.clone()).linker(linker).build();
    /// emitter.emit(OrderPlaced(7))?;
    /// tokio.wait_for_tasks().await?;
    /// # Ok(()) }
    /// ```
    pub fn subscribe_service<S>(self, service: S) -> Result<EventSubscriber, Error>
    where
        S: Service<Arc<E>> + Clone + Send + 'static,
        S::Response: Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        // A handler is shared between threads; a service need only be
        // `Send`: each delivery clones it under a lock held for the clone.
        let service = Mutex::new(service);
        self.subscribe_async(move |event: Arc<E>| {
            let mut service = service
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            async move {
                std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(to_anyhow)?;
                service.call(event).await.map_err(to_anyhow)
            }
        })
    }
}

/// A tower error as a handler's: the `tower::BoxError` itself, which a
/// failure callback downcasts to, then to its own type.
fn to_anyhow(error: impl Into<BoxError>) -> anyhow::Error {
    anyhow::Error::from_boxed(error.into())
}
