//! The runtime of [pyventus](https://docs.rs/pyventus): events, the event linker,
//! subscribers, emitters and processing services.
//!
//! Most users depend on the `pyventus` facade, which re-exports this crate and
//! adds the declarative macros (`#[derive(Event)]`, `#[on]`, `#[once]`, ...).
//!
//! - [`Event`], [`EventKey`], [`AnyEvent`]: what is emitted and how it is keyed.
//! - [`EventLinker`]: the registry linking events to [`EventSubscriber`]s.
//! - [`EventEmitter`]: emits events through a [`ProcessingService`]:
//!   [`InlineProcessingService`], [`TokioProcessingService`],
//!   [`ExecutorProcessingService`], or one of your own.
//! - [`wait_for_all`]: waits for every emission of the process before shutdown.
//!
//! # Examples
//!
//! ```
//! use pyventus_core::{EventEmitter, EventLinker, InlineProcessingService};
//!
//! let linker = EventLinker::new();
//! linker.on_named("MyEvent").subscribe(|| println!("Hello, World!"))?;
//!
//! let emitter = EventEmitter::builder()
//!     .processor(InlineProcessingService::default())
//!     .linker(linker)
//!     .build();
//! emitter.emit_named("MyEvent", ())?;
//! # Ok::<(), pyventus_core::Error>(())
//! ```

mod context;
mod emission;
mod emitter;
mod erased;
mod error;
mod event;
mod handler;
mod in_flight;
mod key;
mod lifecycle;
mod link_time;
mod linker;
mod namespace;
mod output;
mod processing;
mod record;
mod registry;
#[cfg(feature = "serde")]
pub mod remote;
mod report;
pub mod runtime;
mod subscriber;
mod subscription;
mod workflow;

pub use context::{CurrentEmission, current_emission};
pub use emission::{Completion, EventEmission};
pub use emitter::{EventEmitter, EventEmitterBuilder};
pub use error::{Error, HandlerPanic, ProcessorSource};
pub use event::{AnyEvent, Event, EventObject};
#[doc(hidden)]
pub use handler::marker;
pub use handler::{AsyncHandler, Handler, SuccessHandler, kind};
pub use key::EventKey;
pub use lifecycle::{Unfinished, wait_for_all, wait_for_all_blocking};
pub use linker::{EventLinker, EventLinkerBuilder};
pub use namespace::Linker;
pub use output::HandlerOutput;
pub use processing::{ExecutorProcessingService, InlineProcessingService, ProcessingService};
#[cfg(feature = "tokio")]
pub use processing::{TokioProcessingService, TokioProcessingServiceBuilder};
pub use report::{FailureKind, RunReport, SubscriberFailure};
pub use subscriber::EventSubscriber;
pub use subscription::Subscription;

/// Not public API. Used by the code the `pyventus` macros generate.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;
    use std::sync::Arc;

    use futures::FutureExt;

    pub use crate::erased::EventCallback;
    pub use crate::link_time::{Namespace, Registration};
    pub use crate::namespace::{namespace, namespace_linker};
    pub use crate::workflow::{Delivery, OkValue, Outcome, Run, SuccessCallback, ok};
    pub use {anyhow, inventory};

    #[cfg(feature = "serde")]
    pub use crate::remote::{Codec, CodecRegistration, Probe, ViaNothing, ViaSerde};

    use crate::{AnyEvent, HandlerOutput, SuccessHandler};

    /// What `#[on]` tells `#[on_success(handler)]` about a handler.
    pub trait HandlerInfo {
        /// The handler's stable id.
        const ID: &'static str;
        /// What the handler hands its success callback.
        type Ok;
    }

    /// The callback of a handler taking `&E` (a typed event or a named payload).
    pub fn typed_callback<E, R>(handler: impl Fn(&E) -> R + Send + Sync + 'static) -> EventCallback
    where
        E: std::any::Any + Send + Sync,
        R: HandlerOutput,
    {
        EventCallback::from_ref(handler)
    }

    /// The callback of a handler taking `Arc<E>`.
    pub fn shared_callback<E, R>(
        handler: impl Fn(Arc<E>) -> R + Send + Sync + 'static,
    ) -> EventCallback
    where
        E: std::any::Any + Send + Sync,
        R: HandlerOutput,
    {
        EventCallback::from_shared(handler)
    }

    /// The callback of a handler taking `&AnyEvent` or nothing.
    pub fn any_callback<R: HandlerOutput>(
        handler: impl Fn(&AnyEvent) -> R + Send + Sync + 'static,
    ) -> EventCallback {
        EventCallback::from_any(handler)
    }

    /// The shared event as `Arc<E>`, if it is an `E`.
    pub fn shared_event<E: std::any::Any + Send + Sync>(event: &Arc<AnyEvent>) -> Option<Arc<E>> {
        AnyEvent::downcast_arc(event)
    }

    /// The callback of an `async fn` handler: the generated closure owns the
    /// event and borrows from it inside its future.
    pub fn async_fn_callback<F, Fut>(handler: F) -> EventCallback
    where
        F: Fn(Arc<AnyEvent>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        EventCallback::asynchronous(move |event| handler(event).boxed())
    }

    /// The outcome of an `async fn` handler's result.
    pub fn outcome<R: HandlerOutput>(result: R) -> Outcome {
        result.into_result().and_then(ok)
    }

    /// The failure of a handler whose event does not carry the payload it takes.
    pub fn payload_mismatch<T>(event: &AnyEvent) -> anyhow::Error {
        crate::erased::mismatch::<T>(event)
    }

    /// A success callback taking the handler's `Ok` value `T`, or nothing.
    pub fn success_callback<T, M, F: SuccessHandler<T, M>>(callback: F) -> SuccessCallback {
        callback.into_success()
    }
}

/// Whether `PYVENTUS_DEBUG` asks for debug logging (`1`, `true`, `yes`, `on`),
/// read once per process: the default of every linker's and emitter's debug
/// mode, and of integrations that have one.
///
/// # Examples
///
/// ```
/// // Unset in this test, so debug mode is off by default.
/// assert!(!pyventus_core::debug_from_env() || std::env::var("PYVENTUS_DEBUG").is_ok());
/// ```
pub fn debug_from_env() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| {
        std::env::var("PYVENTUS_DEBUG").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    })
}
