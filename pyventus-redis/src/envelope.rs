//! The envelope as a stream entry's fields: written and read here only.

use std::collections::HashMap;

use pyventus_core::remote::{Envelope, EnvelopeError};
use redis::Value;

/// The stream entry's fields of an envelope; `handlers` is a comma-separated
/// list, left out when the envelope targets every handler.
pub(crate) fn to_fields(envelope: &Envelope) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("v", envelope.v.to_string()),
        ("id", envelope.id.clone()),
        ("event", envelope.event.clone()),
        ("payload", envelope.payload.clone()),
        ("emitted_at", envelope.emitted_at.to_string()),
    ];
    if !envelope.handlers.is_empty() {
        fields.push(("handlers", envelope.handlers.join(",")));
    }
    fields
}

/// The envelope in a stream entry's fields, or what is wrong with them.
pub(crate) fn from_fields(fields: &HashMap<String, Value>) -> Result<Envelope, EnvelopeError> {
    let text = |name: &'static str| -> Result<String, EnvelopeError> {
        match fields.get(name) {
            Some(value) => {
                redis::from_redis_value(value.clone()).map_err(|_| EnvelopeError::Invalid {
                    field: name,
                    expected: "UTF-8 text",
                })
            }
            None => Err(EnvelopeError::Missing(name)),
        }
    };
    let number = |name: &'static str| -> Result<u64, EnvelopeError> {
        text(name)?.parse().map_err(|_| EnvelopeError::Invalid {
            field: name,
            expected: "a number",
        })
    };
    let v = u32::try_from(number("v")?).map_err(|_| EnvelopeError::Invalid {
        field: "v",
        expected: "a version number",
    })?;
    Envelope::check_version(v)?;
    let handlers = match fields.get("handlers") {
        Some(_) => text("handlers")?
            .split(',')
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    Ok(Envelope {
        v,
        id: text("id")?,
        event: text("event")?,
        payload: text("payload")?,
        emitted_at: number("emitted_at")?,
        handlers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_values(fields: Vec<(&'static str, String)>) -> HashMap<String, Value> {
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::BulkString(v.into_bytes())))
            .collect()
    }

    #[test]
    fn an_envelope_survives_its_fields() {
        let mut envelope = Envelope::new("OrderPlaced", r#"{"order_id":7}"#);
        envelope.handlers = vec!["shop::audit".to_owned(), "shop::email".to_owned()];
        let back = from_fields(&as_values(to_fields(&envelope))).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn malformed_fields_say_what_is_wrong() {
        let mut fields = as_values(to_fields(&Envelope::new("E", "{}")));
        fields.remove("payload");
        assert_eq!(from_fields(&fields), Err(EnvelopeError::Missing("payload")));
        fields.insert("payload".into(), Value::BulkString(b"{}".to_vec()));
        fields.insert("v".into(), Value::BulkString(b"2".to_vec()));
        assert_eq!(
            from_fields(&fields),
            Err(EnvelopeError::Version { found: 2 })
        );
    }
}
