//! The envelope as a stream entry's fields: written and read here only.
//!
//! `v`, `id`, `event`, `payload` and `emitted_at` under their own names;
//! `handlers` as a comma-separated list, left out when the envelope targets
//! every handler; each propagation header of `context` (`traceparent`,
//! `tracestate`) under its name prefixed with `context:`, which no field of
//! the envelope's own has.

use std::borrow::Cow;
use std::collections::BTreeMap;

use pyventus_core::remote::{Envelope, EnvelopeError};

use crate::entry::Entry;

/// The prefix of a propagation header's field.
const CONTEXT: &str = "context:";

/// A field of an entry to write: its name and value.
pub(crate) type Field = (Cow<'static, str>, String);

/// The stream entry's fields of an envelope.
pub(crate) fn to_fields(envelope: &Envelope) -> Vec<Field> {
    let mut fields: Vec<Field> = vec![
        ("v".into(), envelope.v.to_string()),
        ("id".into(), envelope.id.clone()),
        ("event".into(), envelope.event.clone()),
        ("payload".into(), envelope.payload.clone()),
        ("emitted_at".into(), envelope.emitted_at.to_string()),
    ];
    if !envelope.handlers.is_empty() {
        fields.push(("handlers".into(), envelope.handlers.join(",")));
    }
    for (name, value) in &envelope.context {
        fields.push((format!("{CONTEXT}{name}").into(), value.clone()));
    }
    fields
}

/// The propagation headers of an entry: its `context:` fields that are text
/// (others are ignored: a broken trace header never fails a delivery).
pub(crate) fn context_of(entry: &Entry) -> BTreeMap<String, String> {
    let mut context = BTreeMap::new();
    for (name, value) in &entry.fields {
        let Some(name) = name.strip_prefix(CONTEXT.as_bytes()) else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) {
            // The first of two fields of one name wins, as for every field.
            context
                .entry(name.to_owned())
                .or_insert_with(|| value.to_owned());
        }
    }
    context
}

/// The size of an entry with these fields, in bytes (names and values).
pub(crate) fn size(fields: &[Field]) -> usize {
    fields.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// The envelope in a stream entry, or what is wrong with it. Fields it does not
/// know are ignored, whatever their names.
pub(crate) fn from_entry(entry: &Entry) -> Result<Envelope, EnvelopeError> {
    let text = |name: &'static str| -> Result<String, EnvelopeError> {
        let value = entry.get(name).ok_or(EnvelopeError::Missing(name))?;
        String::from_utf8(value.to_vec()).map_err(|_| EnvelopeError::Invalid {
            field: name,
            expected: "UTF-8 text",
        })
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
    let handlers = match entry.get("handlers") {
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
        context: context_of(entry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_entry(fields: Vec<Field>) -> Entry {
        Entry {
            id: "1-0".to_owned(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
                .collect(),
        }
    }

    #[test]
    fn an_envelope_survives_its_fields() {
        let mut envelope = Envelope::new("OrderPlaced", r#"{"order_id":7}"#);
        envelope.handlers = vec!["shop::audit".to_owned(), "shop::email".to_owned()];
        let fields = to_fields(&envelope);
        assert_eq!(size(&fields), as_entry(fields.clone()).size());
        let back = from_entry(&as_entry(fields)).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn propagation_headers_survive_their_fields_apart_from_the_envelopes_own() {
        let mut envelope = Envelope::new("OrderPlaced", "{}");
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        envelope
            .context
            .insert("traceparent".to_owned(), traceparent.to_owned());
        envelope
            .context
            .insert("tracestate".to_owned(), "vendor=1".to_owned());
        // A header named like one of the envelope's fields stays apart from it.
        envelope
            .context
            .insert("id".to_owned(), "not-the-id".to_owned());
        let fields = to_fields(&envelope);
        assert!(fields.contains(&("context:traceparent".into(), traceparent.to_owned())));
        let back = from_entry(&as_entry(fields)).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.id, envelope.id);
    }

    #[test]
    fn an_entry_without_propagation_headers_has_an_empty_context() {
        let mut entry = as_entry(to_fields(&Envelope::new("E", "{}")));
        assert!(from_entry(&entry).unwrap().context.is_empty());
        // One that is not text is left out; the delivery goes on.
        entry
            .fields
            .push((b"context:traceparent".to_vec(), vec![0xff, 0x00]));
        entry
            .fields
            .push((b"context:tracestate".to_vec(), b"a=1".to_vec()));
        let envelope = from_entry(&entry).unwrap();
        assert_eq!(
            envelope.context,
            BTreeMap::from([("tracestate".to_owned(), "a=1".to_owned())])
        );
    }

    #[test]
    fn malformed_fields_say_what_is_wrong() {
        let mut entry = as_entry(to_fields(&Envelope::new("E", "{}")));
        entry.fields.retain(|(k, _)| k != b"payload");
        assert_eq!(from_entry(&entry), Err(EnvelopeError::Missing("payload")));
        entry.fields.push((b"payload".to_vec(), vec![0xff, 0x00]));
        assert_eq!(
            from_entry(&entry),
            Err(EnvelopeError::Invalid {
                field: "payload",
                expected: "UTF-8 text"
            })
        );
        entry.fields.retain(|(k, _)| k != b"v");
        entry.fields.insert(0, (b"v".to_vec(), b"2".to_vec()));
        assert_eq!(from_entry(&entry), Err(EnvelopeError::Version { found: 2 }));
    }

    #[test]
    fn a_field_it_does_not_know_is_ignored_whatever_its_name() {
        let mut entry = as_entry(to_fields(&Envelope::new("E", "{}")));
        entry.fields.push((vec![0xff, 0xfe], b"extra".to_vec()));
        assert_eq!(from_entry(&entry).unwrap().event, "E");
    }
}
