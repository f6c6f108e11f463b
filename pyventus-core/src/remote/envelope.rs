//! The envelope an emission travels in between processes.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, EventEmission};

/// The version of the envelope format this crate writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// One emission on its way to a worker, whatever the broker: its id, its
/// event's name and JSON payload, when it was emitted, and the link-time
/// handlers it targets. Each backend maps it to its broker's form (a stream
/// entry's fields, a message's body and properties) in one place.
///
/// | field | meaning |
/// | --- | --- |
/// | `v` | the format's version, [`ENVELOPE_VERSION`] (`1`) |
/// | `id` | the emission's id, a UUID: the same across redeliveries, for deduplication |
/// | `event` | the event's name (`Event::NAME`) |
/// | `payload` | the event, as JSON (serde) |
/// | `emitted_at` | when it was emitted, in milliseconds since the Unix epoch |
/// | `handlers` | the ids of the handlers to run; empty: every handler of the event |
/// | `context` | propagation headers, name to value: the W3C `traceparent` and `tracestate` of the emitting span when it was traced (see `remote::trace`, feature `opentelemetry`); empty otherwise |
///
/// A backend carries `context` whether or not it was built with the
/// `opentelemetry` feature, so a process without it loses nothing on the way
/// between two that have it. Envelopes written before it existed read as
/// having none.
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::Envelope;
///
/// let envelope = Envelope::new("OrderPlaced", r#"{"order_id":7}"#);
/// assert_eq!(envelope.v, 1);
/// assert_eq!(envelope.id.len(), 36);
/// assert!(envelope.handlers.is_empty()); // every handler of the event
/// assert!(envelope.context.is_empty()); // not traced
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The format's version.
    pub v: u32,
    /// The emission's id (a UUID).
    pub id: String,
    /// The event's name.
    pub event: String,
    /// The event, as JSON.
    pub payload: String,
    /// Milliseconds since the Unix epoch.
    pub emitted_at: u64,
    /// The ids of the link-time handlers to run (`module::path::function`);
    /// empty for every handler the worker has for the event.
    pub handlers: Vec<String>,
    /// Propagation headers (`traceparent`, `tracestate`), by name; empty when
    /// the emission was not traced.
    pub context: BTreeMap<String, String>,
}

impl Envelope {
    /// A new envelope for `event` with this JSON payload, emitted now, for every
    /// handler of the event.
    pub fn new(event: impl Into<String>, payload: impl Into<String>) -> Self {
        Envelope {
            v: ENVELOPE_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            event: event.into(),
            payload: payload.into(),
            emitted_at: millis(SystemTime::now()),
            handlers: Vec::new(),
            context: BTreeMap::new(),
        }
    }

    /// The envelope of an emission, targeting the link-time handlers this
    /// process knows for it (every handler of the event, if it knows none), or
    /// why it cannot cross a process. Its `context` is empty: a backend built
    /// with the `opentelemetry` feature adds the emitting span's with
    /// `remote::trace::inject_current`.
    ///
    /// # Errors
    ///
    /// [`Error::RuntimeSubscriberRemote`] if a closure subscribed at runtime
    /// would receive it (a worker cannot run it); [`Error::NotSerializable`] or
    /// [`Error::Encode`] if the event cannot be serialized.
    pub fn of(emission: &EventEmission) -> Result<Self, Error> {
        if emission.has_runtime_subscribers() {
            return Err(Error::RuntimeSubscriberRemote {
                event: emission.event_name().to_owned(),
            });
        }
        let payload = super::encode(&**emission.event())?;
        let mut handlers: Vec<String> = emission.handler_ids().map(str::to_owned).collect();
        handlers.dedup();
        Ok(Envelope {
            emitted_at: millis(emission.emitted_at()),
            handlers,
            ..Envelope::new(emission.event_name(), payload)
        })
    }

    /// Checks the version of an envelope read from a broker.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::Version`] if it is not [`ENVELOPE_VERSION`].
    pub fn check_version(v: u32) -> Result<(), EnvelopeError> {
        if v == ENVELOPE_VERSION {
            Ok(())
        } else {
            Err(EnvelopeError::Version { found: v })
        }
    }
}

/// What is wrong with an envelope read from a broker. Backends parse their
/// broker's form of an envelope into [`Envelope`] and report this on failure,
/// so the reason a worker dead-letters it reads the same on every broker.
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::{Envelope, EnvelopeError};
///
/// let err = Envelope::check_version(9).unwrap_err();
/// assert!(matches!(err, EnvelopeError::Version { found: 9 }));
/// assert_eq!(err.to_string(), "unsupported envelope version 9; this process reads version 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A field is missing.
    #[error("malformed envelope: no `{0}` field")]
    Missing(&'static str),
    /// A field is not what it should be.
    #[error("malformed envelope: `{field}` is not {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What it should be (`"a number"`, `"UTF-8 text"`).
        expected: &'static str,
    },
    /// A version this process does not read.
    #[error("unsupported envelope version {found}; this process reads version {ENVELOPE_VERSION}")]
    Version {
        /// The envelope's version.
        found: u32,
    },
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
