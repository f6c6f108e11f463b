//! What a backend needs to carry emissions to other processes: the codecs of
//! event types (JSON, for every type that derives `Event`, `Serialize` and
//! `Deserialize`) and the [`Envelope`] an emission travels in.
//!
//! A distributed processing service turns each emission into an envelope with
//! [`Envelope::of`] and ships it. A worker runs what every worker does between
//! receiving a message and settling it, whatever its broker, through this
//! module:
//!
//! - [`Inbound::run`] takes the message's [`Envelope`], [`decode`]s its event,
//!   resolves its subscribers in the worker's linker, keeps the handlers it
//!   targets, runs them under their deadline in the span [`delivery_span`]
//!   made, and answers with the [`DeliveryFailure`] if it failed;
//! - the worker then acknowledges, retries (after a [`Backoff`]) or
//!   dead-letters by that failure ([`DeliveryFailure::is_permanent`],
//!   [`DeliveryFailure::label`]), records [`WorkerMetrics`] and keeps its
//!   [`Health`] in a [`HealthWatch`] for probes.
//!
//! A backend crate is then only its transport: connect, publish, receive,
//! acknowledge, retry, dead-letter, topology. See `docs/architecture.md`.
//!
//! With the `opentelemetry` feature, [`trace`] carries the emitting span's
//! trace context in the envelope, so that a worker's delivery span continues
//! the emitter's trace.

mod codec;
mod envelope;
mod failure;
mod health;
mod inbound;
mod requests;
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub mod trace;
mod worker_metrics;

pub use crate::resilience::{Backoff, InvalidBackoff};
pub use crate::signal::{ShutdownNow, deadline, run_until_signal, shutdown_signal};
#[doc(hidden)]
pub use codec::{Codec, CodecRegistration, Probe, ViaNothing, ViaSerde};
pub use codec::{DecodeError, decode, encode};
pub(crate) use envelope::millis;
pub use envelope::{ENVELOPE_VERSION, Envelope, EnvelopeError};
pub use failure::DeliveryFailure;
pub use health::{Health, HealthWatch};
pub use inbound::{Inbound, attached, attached_in_worker, delivery_span};
pub use requests::{REPLY_BY, REPLY_TO, RemoteRequests, ReplySender};
pub use worker_metrics::{Running, WorkerMetrics};
