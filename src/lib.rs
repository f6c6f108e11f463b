//! Event-driven programming for Rust: typed events, handlers declared with
//! attributes and linked at build time, and emitters whose processing service
//! (inline, tokio tasks, a thread pool, ...) is chosen where they are built.
//!
//! This is the Rust take on Python's [Pyventus](https://mdapena.github.io/pyventus):
//! an [`EventLinker`] links events to their subscribers, an [`EventEmitter`]
//! emits events, and a [`ProcessingService`] decides where the subscribers run.
//!
//! # Hello, World!
//!
//! ```rust,standalone_crate
//! use pyventus::{EventEmitter, TokioProcessingService, on};
//!
//! #[on("MyEvent")]
//! fn event_callback() {
//!     println!("Hello, World!");
//! }
//!
//! let event_emitter = EventEmitter::new(TokioProcessingService::default());
//! event_emitter.emit_named("MyEvent", ())?;
//! # Ok::<(), pyventus::Error>(())
//! ```
//!
//! Handlers declared with [`on`], [`once`], [`on_success`] and [`on_failure`] are
//! registered at link time; the same subscriptions can be made at runtime on any
//! [`EventLinker`].
//!
//! # Typed events
//!
//! ```
//! use pyventus::{Event, EventEmitter, EventLinker, TokioProcessingService};
//! use std::sync::Arc;
//!
//! #[derive(Debug, Clone, Event)]
//! struct OrderCreated {
//!     order_id: u64,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pyventus::Error> {
//! let linker = EventLinker::new();
//! linker.on::<OrderCreated>().subscribe(|e: &OrderCreated| println!("audit {}", e.order_id))?;
//! linker
//!     .on::<OrderCreated>()
//!     .on_failure(|err: &anyhow::Error| eprintln!("email failed: {err:#}"))
//!     .subscribe_async(|e: Arc<OrderCreated>| async move {
//!         println!("emailing about order {}", e.order_id);
//!         Ok::<(), anyhow::Error>(())
//!     })?;
//!
//! let tokio = TokioProcessingService::default();
//! let emitter = EventEmitter::builder().processor(tokio.clone()).linker(linker).build();
//! emitter.emit(OrderCreated { order_id: 42 })?;
//! tokio.wait_for_tasks().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The [`guide`] walks through each concept: events, declarative handlers,
//! linkers, emitters and processing services, the subscriber workflow, testing,
//! the axum and Redis integrations, and how it is all built.

#![cfg_attr(docsrs, feature(doc_cfg))]

// The facade's items, by name (as axum and tracing re-export theirs): what
// joins pyventus's interface is decided here, not by what another crate makes
// `pub`.
#[doc(hidden)]
pub use pyventus_core::marker;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use pyventus_core::metrics;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use pyventus_core::remote;
#[cfg(any(feature = "axum", feature = "serde"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "axum", feature = "redis", feature = "amqp")))
)]
pub use pyventus_core::shutdown_signal;
pub use pyventus_core::{
    Answer, AnyEvent, AsyncHandler, BlockingThreads, CollectBuilder, Completion, CurrentEmission,
    DeliveryContext, EmitKey, Error, Event, EventEmission, EventEmitter, EventEmitterBuilder,
    EventKey, EventLinker, EventLinkerBuilder, EventObject, EventStream, EventSubscriber,
    ExecutorProcessingService, FailureKind, FromDelivery, GuardedSubscription, Handler,
    HandlerOutput, HandlerPanic, InlineProcessingService, Lagged, Linker, NamedKey,
    ProcessingService, ProcessorSource, Provided, Request, RequestBuilder, RequestError, RunReport,
    State, SubscriberFailure, Subscription, SubscriptionGuard, SuccessHandler, Unfinished,
    VerifyError, current_emission, debug_from_env, kind, named_key, resilience, runtime, verify,
    wait_for_all, wait_for_all_blocking,
};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use pyventus_core::{TokioProcessingService, TokioProcessingServiceBuilder};
#[doc(inline)]
pub use pyventus_macros::{Event, Linker, Request, on, on_failure, on_success, once, respond};

/// [`anyhow`](https://docs.rs/anyhow), the error type of handlers and failure
/// callbacks: re-exported so that `use pyventus::anyhow;` is all a handler
/// returning `anyhow::Result` needs.
pub use anyhow;

pub mod guide;
pub mod testing;

/// The names most programs use: `use pyventus::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "tokio")]
    pub use pyventus_core::TokioProcessingService;
    pub use pyventus_core::{
        AnyEvent, Error, Event, EventEmitter, EventKey, EventLinker, EventSubscriber,
        ExecutorProcessingService, InlineProcessingService, Linker, ProcessingService, State,
    };
    pub use pyventus_macros::{Event, Linker, on, on_failure, on_success, once};
}

#[cfg(feature = "amqp")]
#[cfg_attr(docsrs, doc(cfg(feature = "amqp")))]
#[doc(inline)]
pub use pyventus_amqp as amqp;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[doc(inline)]
pub use pyventus_axum as axum;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[doc(inline)]
pub use pyventus_postgres as postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use pyventus_redis as redis;

/// Not public API. Used by the code the macros generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::__pyventus_answer_codec as answer_codec;
    pub use crate::__pyventus_crosses_process as crosses_process;
    pub use crate::__pyventus_event_codec as event_codec;
    pub use pyventus_core::__private::{
        AnswerCodec, AnyFn, AsHandlerOutput, AsValue, AsyncFn, AsyncInFn, BuiltFn, Declared,
        DeclaredResponder, EventCallback, EventKeys, HandlerInfo, IgnoreFn, KeySpec, LaneCache,
        LaneSlot, Namespace, NoArgFn, NotAHandler, Outcome, OutputProbe, RefFn, Registration,
        SharedFn, StateNeed, SuccessFn, SuccessValue, TakesEvent, UnitRefFn, ViaHandlerOutput,
        ViaResult, ViaValue, any_callback, any_callback_in, anyhow, async_responder, boxed,
        inventory, middleware_layer, namespace, namespace_linker, outcome, payload_mismatch,
        read_unit, shared_callback, shared_callback_in, shared_event, success_value,
        sync_responder, typed_callback, typed_callback_in,
    };
    #[cfg(feature = "serde")]
    pub use pyventus_core::__private::{
        Codec, CodecRegistration, CrossesProcess, Probe, ViaNothing, ViaSerde, answer_codec,
        infallible_answer_codec,
    };
}

/// Registers an event type's codec (JSON, when it derives `Serialize` and
/// `Deserialize`), so that it can cross a process. Not public API: written by
/// `#[derive(Event)]`.
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __pyventus_event_codec {
    ($ty:ty) => {
        const _: () = {
            #[allow(unused_imports)]
            use $crate::__private::{ViaNothing as _, ViaSerde as _};

            fn __pyventus_codec() -> ::core::option::Option<$crate::__private::Codec> {
                (&&$crate::__private::Probe::<$ty>::new()).codec()
            }

            $crate::__private::inventory::submit! {
                $crate::__private::CodecRegistration { codec: __pyventus_codec }
            }
        };
    };
}

/// Without a backend that carries events to other processes, events stay in
/// their process: nothing to register.
#[cfg(not(feature = "serde"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __pyventus_event_codec {
    ($ty:ty) => {};
}

/// The answer codec of a request declared `#[request(..., remote)]` (JSON),
/// so that a worker in another process can answer it. Not public API:
/// written by `#[derive(Request)]`.
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __pyventus_answer_codec {
    (infallible $ty:ty) => {
        ::core::option::Option::Some($crate::__private::infallible_answer_codec::<$ty>())
    };
    ($ty:ty) => {
        ::core::option::Option::Some($crate::__private::answer_codec::<$ty>())
    };
}

/// Without a backend that carries requests to other processes, requests are
/// answered in their process: no codec.
#[cfg(not(feature = "serde"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __pyventus_answer_codec {
    ($($request:tt)*) => {
        ::core::option::Option::None
    };
}

/// Checks that a type can cross a process (serde), at the user's type. Not
/// public API: written by `#[derive(Request)]` for a `remote` request.
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __pyventus_crosses_process {
    ($ty:ty) => {{
        fn __pyventus_crosses<T: $crate::__private::CrossesProcess>() {}
        __pyventus_crosses::<$ty>();
    }};
}

/// Without serde, nothing crosses a process: a `remote` request is an error.
#[cfg(not(feature = "serde"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __pyventus_crosses_process {
    ($ty:ty) => {
        ::core::compile_error!(
            "a `remote` request needs pyventus's `serde` feature (on with `redis`); \
             enable it, or drop `remote` from `#[request(...)]`"
        );
    };
}

/// The README, compiled as a doctest so its snippets stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct Readme;
