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

#[cfg(feature = "axum")]
pub mod axum;
mod callback;
mod declared;
mod emission;
mod emitter;
mod error;
mod event;
mod handler;
mod key;
mod linker;
mod namespace;
mod processing;
#[cfg(feature = "redis")]
pub mod redis;
mod registration;
mod registry;
mod runtime;
mod subscribe;
mod subscriber;
mod workflow;

pub use emission::EventEmission;
pub use emitter::{EventEmitter, EventEmitterBuilder};
pub use error::{Error, HandlerPanic};
pub use event::{AnyEvent, Event, EventObject};
#[doc(hidden)]
pub use handler::marker;
pub use handler::{AsyncHandler, Handler, HandlerOutput, SuccessHandler, kind};
pub use key::EventKey;
pub use linker::{EventLinker, EventLinkerBuilder};
pub use namespace::Linker;
pub use processing::{ExecutorProcessingService, InlineProcessingService, ProcessingService};
#[cfg(feature = "tokio")]
pub use processing::{TokioProcessingService, TokioProcessingServiceBuilder};
pub use subscribe::Subscription;
pub use subscriber::EventSubscriber;

/// Not public API. Used by the code the `pyventus` macros generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::callback::{Delivery, EventCallback, OkValue, Outcome, SuccessCallback, ok};
    pub use crate::declared::*;
    pub use crate::namespace::{namespace, namespace_linker};
    pub use crate::registration::{Namespace, Registration};
    pub use crate::workflow::Run;
    pub use {anyhow, inventory};

    #[cfg(feature = "redis")]
    pub use crate::redis::{Codec, CodecRegistration, Probe, ViaNothing, ViaSerde};
}

/// Whether `PYVENTUS_DEBUG` asks for debug logging (`1`, `true`, `yes`, `on`),
/// read once per process.
pub(crate) fn debug_from_env() -> bool {
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
