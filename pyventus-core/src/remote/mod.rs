//! What a backend needs to carry emissions to other processes: the codecs of
//! event types (JSON, for every type that derives `Event`, `Serialize` and
//! `Deserialize`) and the [`Envelope`] an emission travels in.
//!
//! A distributed processing service turns each emission into an envelope with
//! [`Envelope::of`] and ships it; a worker [`decode`]s the envelope's event,
//! resolves its subscribers with
//! [`EventEmission::resolve`](crate::EventEmission::resolve), runs them and acts
//! on the [`RunReport`](crate::RunReport). See `docs/architecture.md`.
//!
//! With the `opentelemetry` feature, [`trace`] carries the emitting span's
//! trace context in the envelope, so that a worker's delivery span continues
//! the emitter's trace.

mod codec;
mod envelope;
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub mod trace;
mod worker_metrics;

#[doc(hidden)]
pub use codec::{Codec, CodecRegistration, Probe, ViaNothing, ViaSerde};
pub use codec::{DecodeError, decode, encode};
pub use envelope::{ENVELOPE_VERSION, Envelope, EnvelopeError};
pub use worker_metrics::{Running, WorkerMetrics};
