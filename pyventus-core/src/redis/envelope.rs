use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::Value;

use crate::{Error, EventEmission};

/// The version of the envelope format this crate writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// One emission on its way to a worker: a stream entry with these fields.
///
/// | field | meaning |
/// | --- | --- |
/// | `v` | the format's version, [`ENVELOPE_VERSION`] (`1`) |
/// | `id` | the emission's id, a UUID: the same across redeliveries |
/// | `event` | the event's name (`Event::NAME`) |
/// | `payload` | the event, as JSON (serde) |
/// | `emitted_at` | when it was emitted, in milliseconds since the Unix epoch |
///
/// Dead letters carry the same fields, plus `reason`, `deliveries`,
/// `failed_at` and `entry` (the id it had in the stream).
///
/// # Examples
///
/// ```
/// use pyventus_core::redis::Envelope;
///
/// let envelope = Envelope::new("OrderPlaced", r#"{"order_id":7}"#);
/// assert_eq!(envelope.v, 1);
/// assert_eq!(envelope.id.len(), 36);
/// let fields = envelope.to_fields();
/// assert_eq!(fields[2], ("event", "OrderPlaced".to_string()));
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
}

impl Envelope {
    /// A new envelope for `event` with this JSON payload, emitted now.
    pub fn new(event: impl Into<String>, payload: impl Into<String>) -> Self {
        Envelope {
            v: ENVELOPE_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            event: event.into(),
            payload: payload.into(),
            emitted_at: millis(SystemTime::now()),
        }
    }

    /// The envelope of an emission, or why its event cannot cross a process.
    pub(crate) fn of(emission: &EventEmission) -> Result<Self, Error> {
        let payload = super::codec::encode(&**emission.event())?;
        Ok(Envelope {
            emitted_at: millis(emission.emitted_at()),
            ..Envelope::new(emission.event_name(), payload)
        })
    }

    /// The stream entry's fields.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("v", self.v.to_string()),
            ("id", self.id.clone()),
            ("event", self.event.clone()),
            ("payload", self.payload.clone()),
            ("emitted_at", self.emitted_at.to_string()),
        ]
    }

    /// The envelope in a stream entry's fields, or what is wrong with them.
    pub(crate) fn from_fields(fields: &HashMap<String, Value>) -> Result<Self, String> {
        let text = |name: &str| -> Result<String, String> {
            match fields.get(name) {
                Some(value) => redis::from_redis_value(value.clone())
                    .map_err(|err| format!("field `{name}`: {err}")),
                None => Err(format!("malformed envelope: no `{name}` field")),
            }
        };
        let v: u32 = text("v")?
            .parse()
            .map_err(|_| "malformed envelope: `v` is not a number".to_owned())?;
        if v != ENVELOPE_VERSION {
            return Err(format!(
                "unsupported envelope version {v}; this worker reads version {ENVELOPE_VERSION}"
            ));
        }
        Ok(Envelope {
            v,
            id: text("id")?,
            event: text("event")?,
            payload: text("payload")?,
            emitted_at: text("emitted_at")?
                .parse()
                .map_err(|_| "malformed envelope: `emitted_at` is not a number".to_owned())?,
        })
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
