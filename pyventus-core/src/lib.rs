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
//! - [`Request`]: an event that asks for an answer,
//!   [`EventEmitter::request`] and [`EventEmitter::collect`] to ask it.
//! - [`SubscriptionGuard`], [`EventStream`]: subscriptions that end when
//!   dropped, and events as a `futures::Stream`.
//! - [`wait_for_all`]: waits for every emission of the process before shutdown.
//!
//! # Glossary
//!
//! - *Event*: a typed event (a type deriving [`Event`]), a named event (a name
//!   and a payload), or the *global event* `...` ([`EventKey::any`]), whose
//!   subscribers receive every event. The linker `#[on]` registers into by
//!   default is the *default linker*, [`EventLinker::global`].
//! - *Subscriber*: one subscription's callback, with its success and failure
//!   callbacks; *handler*: one declared with `#[on]`.
//! - *Emission*: one emitted event with the subscribers it runs
//!   ([`EventEmission`]); *delivery*: one subscriber's run of it, or a worker's
//!   run of one broker message (both in a `pyventus.delivery` span).
//! - *Settle*: decide what a finished run means: its outcome to the callbacks,
//!   or a message acknowledged, retried or dead-lettered.
//!
//! `docs/architecture.md` maps the crate's folders, one per concept.
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

#![cfg_attr(docsrs, feature(doc_cfg))]

mod emission;
mod emitter;
mod error;
mod event;
mod handler;
#[cfg(all(test, shuttle))]
mod interleavings;
mod lifecycle;
mod linker;
mod observe;
mod processing;
mod registry;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod remote;
mod report;
mod request;
pub mod resilience;
pub mod runtime;
#[cfg(feature = "signal")]
mod signal;
mod sync;
pub mod testing;
mod workflow;

/// [`anyhow`](https://docs.rs/anyhow), the error type of handlers, failure
/// callbacks and [`FromDelivery`]: re-exported, as the facade does, so that a
/// backend implementing an extractor names it through this crate.
pub use anyhow;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use observe::metrics;

pub use emission::{BlockingThreads, Completion, EventEmission};
pub use emitter::{EventEmitter, EventEmitterBuilder};
pub use error::{Error, HandlerPanic, ProcessorSource};
pub use event::Event;
pub use event::any_event::{AnyEvent, EventObject};
pub use event::key::EventKey;
pub use event::named_key::{EmitKey, NamedKey};
#[doc(hidden)]
pub use handler::marker;
pub use handler::{AsyncHandler, Handler, SuccessHandler, kind};
pub use lifecycle::context::{CurrentEmission, current_emission};
pub use lifecycle::{Unfinished, wait_for_all, wait_for_all_blocking};
pub use linker::guard::{GuardedSubscription, SubscriptionGuard};
pub use linker::link_time::{VerifyError, verify};
pub use linker::namespace::Linker;
pub use linker::stream::{EventStream, Lagged};
pub use linker::subscriber::EventSubscriber;
pub use linker::subscription::Subscription;
pub use linker::{EventLinker, EventLinkerBuilder, Provided};
pub use processing::{ExecutorProcessingService, InlineProcessingService, ProcessingService};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use processing::{TokioProcessingService, TokioProcessingServiceBuilder};
pub use report::{FailureKind, RunReport, SubscriberFailure};
pub use request::ask::RequestBuilder;
pub use request::collect::CollectBuilder;
pub use request::{Answer, Request, RequestError};
#[cfg(feature = "signal")]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub use signal::{ShutdownNow, deadline, run_until_signal, shutdown_signal};
pub use workflow::extract::{DeliveryContext, FromDelivery, State};
pub use workflow::output::HandlerOutput;

/// Not public API. Used by the code the `pyventus` macros generate.
#[doc(hidden)]
pub mod __private {
    // What `#[derive(Event)]`, `#[derive(Linker)]`, `#[on]`, `#[once]`,
    // `#[on_success]`, `#[on_failure]` and `named_key!` write, by name: nothing
    // joins this interface by being made `pub` elsewhere.
    pub use crate::event::slot::{LaneCache, LaneSlot};
    pub use crate::handler::declared::DeclaredResponder;
    pub use crate::handler::declared::{
        AnyFn, AsyncFn, AsyncInFn, BuiltFn, Declared, HandlerInfo, IgnoreFn, NoArgFn, NotAHandler,
        RefFn, SharedFn, SuccessFn, TakesEvent, UnitRefFn, any_callback, any_callback_in, boxed,
        outcome, payload_mismatch, read_unit, shared_callback, shared_callback_in, shared_event,
        typed_callback, typed_callback_in,
    };
    pub use crate::linker::link_time::{EventKeys, KeySpec, Namespace, Registration};
    pub use crate::linker::namespace::{middleware_layer, namespace, namespace_linker};
    pub use crate::registry::callback::EventCallback;
    pub use crate::request::remote::AnswerCodec;
    pub use crate::request::responder::{async_responder, sync_responder};
    pub use crate::workflow::extract::StateNeed;
    // Named in diagnostics, where a user reads them as `pyventus::__private::...`.
    pub use crate::handler::probe::{AsHandlerOutput, AsValue, SuccessValue};
    pub use crate::handler::probe::{
        OutputProbe, ViaHandlerOutput, ViaResult, ViaValue, success_value,
    };
    pub use crate::workflow::Outcome;
    pub use {anyhow, inventory};

    #[cfg(feature = "serde")]
    pub use crate::remote::{Codec, CodecRegistration, Probe, ViaNothing, ViaSerde};
    #[cfg(feature = "serde")]
    pub use crate::request::remote::{CrossesProcess, answer_codec, infallible_answer_codec};
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
