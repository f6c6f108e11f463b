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

#![cfg_attr(docsrs, feature(doc_cfg))]

mod any_event;
mod context;
mod declared;
mod emission;
mod emitter;
mod erased;
mod error;
mod event;
mod handler;
mod in_flight;
#[cfg(all(test, shuttle))]
mod interleavings;
mod key;
mod lane;
mod lifecycle;
mod link_time;
mod linker;
mod list;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod named_key;
mod namespace;
mod output;
mod probe;
mod processing;
mod record;
mod registry;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod remote;
mod report;
pub mod runtime;
mod snapshot;
mod subscriber;
mod subscription;
mod sync;
pub mod testing;
mod trace;
mod trie;
mod workflow;

pub use any_event::{AnyEvent, EventObject};
pub use context::{CurrentEmission, current_emission};
pub use emission::{Completion, EventEmission};
pub use emitter::{EventEmitter, EventEmitterBuilder};
pub use error::{Error, HandlerPanic, ProcessorSource};
pub use event::Event;
#[doc(hidden)]
pub use handler::marker;
pub use handler::{AsyncHandler, Handler, SuccessHandler, kind};
pub use key::EventKey;
pub use lifecycle::{Unfinished, wait_for_all, wait_for_all_blocking};
pub use link_time::{VerifyError, verify};
pub use linker::{EventLinker, EventLinkerBuilder};
pub use named_key::{EmitKey, NamedKey};
pub use namespace::Linker;
pub use output::HandlerOutput;
pub use processing::{ExecutorProcessingService, InlineProcessingService, ProcessingService};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use processing::{TokioProcessingService, TokioProcessingServiceBuilder};
pub use report::{FailureKind, RunReport, SubscriberFailure};
pub use subscriber::EventSubscriber;
pub use subscription::Subscription;

/// Not public API. Used by the code the `pyventus` macros generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::declared::*;
    pub use crate::erased::EventCallback;
    pub use crate::lane::LaneSlot;
    pub use crate::link_time::{KeySpec, Namespace, Registration};
    pub use crate::namespace::{namespace, namespace_linker};
    pub use crate::probe::*;
    pub use crate::workflow::{Delivery, OkValue, Outcome, Run, SuccessCallback, ok};
    pub use {anyhow, inventory};

    #[cfg(feature = "serde")]
    pub use crate::remote::{Codec, CodecRegistration, Probe, ViaNothing, ViaSerde};
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
