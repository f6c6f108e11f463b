//! The envelope as an AMQP message (its body, properties and headers): written
//! and read here only.
//!
//! | envelope | message |
//! | --- | --- |
//! | `payload` | the body (JSON, UTF-8), `content_type` `application/json` |
//! | `id` | `message_id` (a short string: at most 255 bytes) |
//! | `event` | `type` (a short string: at most 255 bytes) |
//! | `v` | header `x-pyventus-v` |
//! | `emitted_at` | header `x-pyventus-emitted-at` (milliseconds); `timestamp` (seconds) |
//! | `handlers` | header `x-pyventus-handlers` (an array of strings), left out when empty |
//! | `context` | one text header each, under its own name (`traceparent`, `tracestate`) |
//!
//! Propagation headers keep their own names, as OpenTelemetry's messaging
//! conventions have them on RabbitMQ, so any instrumented consumer reads them.
//! On reading, every text header whose name does not start with `x-` is one
//! (`x-` is for the broker's and pyventus's own); on writing, a name that
//! starts with `x-`, or is longer than a header name can be, is left out.
//!
//! An envelope whose id or event name is longer than a short string can be is
//! refused ([`Error::FieldTooLong`]) rather than cut: a cut name would name no
//! handler, and a cut id would no longer be the envelope's.
//!
//! Messages are persistent (`delivery_mode` 2). The broker adds
//! `x-delivery-count` to a redelivered message (a quorum queue's count of its
//! returns), which gives the attempt.

use std::collections::BTreeMap;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use pyventus_core::remote::{Envelope, EnvelopeError};

use crate::Error;

/// The content type of an envelope's body.
pub(crate) const CONTENT_TYPE: &str = "application/json";
const VERSION: &str = "x-pyventus-v";
const EMITTED_AT: &str = "x-pyventus-emitted-at";
const HANDLERS: &str = "x-pyventus-handlers";
/// Set by a quorum queue on a redelivered message: how many times it returned.
pub(crate) const DELIVERY_COUNT: &str = "x-delivery-count";
/// `delivery_mode` of a message the broker writes to disk.
const PERSISTENT: u8 = 2;

/// The properties of an envelope's message; its body is [`body`].
///
/// # Errors
///
/// [`Error::FieldTooLong`] if its id or event name does not fit its property.
pub(crate) fn properties(envelope: &Envelope) -> Result<BasicProperties, Error> {
    let message_id = short("envelope id", &envelope.id)?;
    let event = short("event name", &envelope.event)?;
    let mut headers = FieldTable::default();
    headers.insert(VERSION.into(), AMQPValue::LongUInt(envelope.v));
    headers.insert(
        EMITTED_AT.into(),
        AMQPValue::LongLongInt(i64::try_from(envelope.emitted_at).unwrap_or(i64::MAX)),
    );
    if !envelope.handlers.is_empty() {
        let ids: Vec<AMQPValue> = envelope
            .handlers
            .iter()
            .map(|id| AMQPValue::LongString(id.as_str().into()))
            .collect();
        headers.insert(
            HANDLERS.into(),
            AMQPValue::FieldArray(FieldArray::from(ids)),
        );
    }
    for (name, value) in &envelope.context {
        if is_context(name) && name.len() <= lapin::types::MAX_SHORT_STRING_LENGTH {
            headers.insert(
                name.as_str().into(),
                AMQPValue::LongString(value.as_str().into()),
            );
        }
    }
    Ok(BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(message_id)
        .with_type(event)
        .with_timestamp(envelope.emitted_at / 1000)
        .with_app_id("pyventus".into())
        .with_headers(headers))
}

/// Whether a header of this name is a propagation header: any name but the
/// broker's and pyventus's own (`x-...`).
fn is_context(name: &str) -> bool {
    !name
        .get(..2)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("x-"))
}

/// The propagation headers of a message: its text headers that are not the
/// broker's or pyventus's own. One that is not text is left out: a broken
/// trace header never fails a delivery.
pub(crate) fn context_of(properties: &BasicProperties) -> BTreeMap<String, String> {
    let Some(headers) = properties.headers().as_ref() else {
        return BTreeMap::new();
    };
    headers
        .inner()
        .iter()
        .filter(|(name, _)| is_context(name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), text(value)?)))
        .collect()
}

/// The body of an envelope's message: its payload.
pub(crate) fn body(envelope: &Envelope) -> &[u8] {
    envelope.payload.as_bytes()
}

/// The envelope a message carries, or what is wrong with it.
pub(crate) fn from_message(
    properties: &BasicProperties,
    body: &[u8],
) -> Result<Envelope, EnvelopeError> {
    if properties.content_type().as_ref().map(ShortString::as_str) != Some(CONTENT_TYPE) {
        return Err(EnvelopeError::Invalid {
            field: "content_type",
            expected: "`application/json`",
        });
    }
    let empty = FieldTable::default();
    let headers = properties.headers().as_ref().unwrap_or(&empty).inner();
    let v = headers
        .get(VERSION)
        .ok_or(EnvelopeError::Missing(VERSION))?;
    let v = integer(v)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(EnvelopeError::Invalid {
            field: VERSION,
            expected: "a version number",
        })?;
    Envelope::check_version(v)?;
    let id = properties
        .message_id()
        .as_ref()
        .ok_or(EnvelopeError::Missing("message_id"))?;
    let event = properties
        .kind()
        .as_ref()
        .ok_or(EnvelopeError::Missing("type"))?;
    let emitted_at =
        match headers.get(EMITTED_AT) {
            Some(value) => integer(value).and_then(|ms| u64::try_from(ms).ok()).ok_or(
                EnvelopeError::Invalid {
                    field: EMITTED_AT,
                    expected: "a number of milliseconds",
                },
            )?,
            None => properties
                .timestamp()
                .map(|seconds| seconds.saturating_mul(1000))
                .ok_or(EnvelopeError::Missing(EMITTED_AT))?,
        };
    let handlers = match headers.get(HANDLERS) {
        None => Vec::new(),
        Some(value) => text_array(value).ok_or(EnvelopeError::Invalid {
            field: HANDLERS,
            expected: "an array of handler ids",
        })?,
    };
    let payload = std::str::from_utf8(body).map_err(|_| EnvelopeError::Invalid {
        field: "body",
        expected: "UTF-8 text",
    })?;
    Ok(Envelope {
        v,
        id: id.as_str().to_owned(),
        event: event.as_str().to_owned(),
        payload: payload.to_owned(),
        emitted_at,
        handlers,
        context: context_of(properties),
    })
}

/// Which delivery of its message this is: the broker's count of its returns,
/// plus one.
pub(crate) fn attempt(properties: &BasicProperties) -> u64 {
    properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(DELIVERY_COUNT))
        .and_then(integer)
        .and_then(|count| u64::try_from(count).ok())
        .map_or(1, |count| count.saturating_add(1))
}

/// An integer header, whatever width the publisher chose.
pub(crate) fn integer(value: &AMQPValue) -> Option<i128> {
    Some(match *value {
        AMQPValue::ShortShortInt(n) => n.into(),
        AMQPValue::ShortShortUInt(n) => n.into(),
        AMQPValue::ShortInt(n) => n.into(),
        AMQPValue::ShortUInt(n) => n.into(),
        AMQPValue::LongInt(n) => n.into(),
        AMQPValue::LongUInt(n) => n.into(),
        AMQPValue::LongLongInt(n) => n.into(),
        AMQPValue::Timestamp(n) => n.into(),
        _ => return None,
    })
}

/// A text header (long or short string, UTF-8).
pub(crate) fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_owned),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn text_array(value: &AMQPValue) -> Option<Vec<String>> {
    match value {
        AMQPValue::FieldArray(items) => items.as_slice().iter().map(text).collect(),
        _ => None,
    }
}

/// A short string property, or the refusal of a value too long for one.
fn short(field: &'static str, value: &str) -> Result<ShortString, Error> {
    if value.len() > lapin::types::MAX_SHORT_STRING_LENGTH {
        return Err(Error::FieldTooLong {
            field,
            value: value.to_owned(),
        });
    }
    Ok(value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_of(properties: &BasicProperties) -> FieldTable {
        properties.headers().clone().unwrap_or_default()
    }

    #[test]
    fn an_envelope_survives_its_message() {
        let mut envelope = Envelope::new("OrderPlaced", r#"{"order_id":7}"#);
        envelope.handlers = vec!["shop::audit".to_owned(), "shop::email".to_owned()];
        let properties = properties(&envelope).unwrap();
        assert_eq!(*properties.delivery_mode(), Some(2));
        let back = from_message(&properties, body(&envelope)).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn an_envelope_for_every_handler_has_no_handlers_header() {
        let envelope = Envelope::new("E", "{}");
        let headers = headers_of(&properties(&envelope).unwrap());
        assert!(!headers.contains_key(HANDLERS));
        let back = from_message(&properties(&envelope).unwrap(), b"{}").unwrap();
        assert!(back.handlers.is_empty());
    }

    #[test]
    fn propagation_headers_survive_their_message_under_their_own_names() {
        let mut envelope = Envelope::new("OrderPlaced", "{}");
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        envelope
            .context
            .insert("traceparent".to_owned(), traceparent.to_owned());
        envelope
            .context
            .insert("tracestate".to_owned(), "vendor=1".to_owned());
        let properties = properties(&envelope).unwrap();
        let headers = headers_of(&properties);
        assert_eq!(
            headers.inner().get("traceparent"),
            Some(&AMQPValue::LongString(traceparent.into()))
        );
        let back = from_message(&properties, body(&envelope)).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(context_of(&properties), envelope.context);
    }

    #[test]
    fn the_brokers_and_pyventuss_own_headers_are_not_propagation_headers() {
        let mut envelope = Envelope::new("E", "{}");
        // Would be taken for the broker's, or clash with pyventus's own.
        envelope
            .context
            .insert("X-Pyventus-V".to_owned(), "7".to_owned());
        envelope
            .context
            .insert("x".repeat(300), "too long".to_owned());
        let properties = properties(&envelope).unwrap();
        let mut headers = headers_of(&properties);
        assert_eq!(headers.inner().get(VERSION), Some(&AMQPValue::LongUInt(1)));
        // A header that is not text (the broker's count, a publisher's number)
        // is not one either.
        headers.insert("attempts".into(), AMQPValue::LongLongInt(2));
        headers.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(2));
        let back = from_message(&properties.with_headers(headers), b"{}").unwrap();
        assert!(back.context.is_empty(), "{:?}", back.context);
        assert_eq!(back.v, 1);
    }

    #[test]
    fn a_message_without_propagation_headers_has_an_empty_context() {
        let envelope = Envelope::new("E", "{}");
        assert!(
            from_message(&properties(&envelope).unwrap(), b"{}")
                .unwrap()
                .context
                .is_empty()
        );
        assert!(context_of(&BasicProperties::default()).is_empty());
    }

    #[test]
    fn malformed_messages_say_what_is_wrong() {
        let envelope = Envelope::new("E", "{}");
        let good = properties(&envelope).unwrap();
        assert_eq!(
            from_message(&BasicProperties::default(), b"{}"),
            Err(EnvelopeError::Invalid {
                field: "content_type",
                expected: "`application/json`"
            })
        );
        let mut headers = headers_of(&good);
        headers.insert(VERSION.into(), AMQPValue::LongUInt(2));
        assert_eq!(
            from_message(&good.clone().with_headers(headers), b"{}"),
            Err(EnvelopeError::Version { found: 2 })
        );
        let no_id = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_headers(headers_of(&good));
        assert_eq!(
            from_message(&no_id, b"{}"),
            Err(EnvelopeError::Missing("message_id"))
        );
        assert!(matches!(
            from_message(&good, &[0xff, 0xfe]),
            Err(EnvelopeError::Invalid { field: "body", .. })
        ));
    }

    #[test]
    fn an_id_or_event_name_too_long_for_a_short_string_is_refused_not_cut() {
        let longest = "e".repeat(255);
        let envelope = Envelope::new(longest.as_str(), "{}");
        let back = from_message(&properties(&envelope).unwrap(), b"{}").unwrap();
        assert_eq!(back.event, longest, "255 bytes fit whole");

        let too_long = Envelope::new("é".repeat(128).as_str(), "{}"); // 256 bytes
        let err = properties(&too_long).unwrap_err();
        assert!(
            matches!(&err, Error::FieldTooLong { field: "event name", value } if *value == too_long.event),
            "{err}"
        );
        assert!(err.to_string().contains("256 bytes"), "{err}");
        let mut long_id = Envelope::new("E", "{}");
        long_id.id = "i".repeat(300);
        assert!(matches!(
            properties(&long_id),
            Err(Error::FieldTooLong {
                field: "envelope id",
                ..
            })
        ));
    }

    #[test]
    fn the_attempt_is_the_broker_count_plus_one() {
        assert_eq!(attempt(&BasicProperties::default()), 1);
        let mut headers = FieldTable::default();
        headers.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(2));
        assert_eq!(
            attempt(&BasicProperties::default().with_headers(headers)),
            3
        );
    }
}
