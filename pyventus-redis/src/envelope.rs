//! The envelope as a stream entry's fields: written and read here only.

use pyventus_core::remote::{Envelope, EnvelopeError};

use crate::entry::Entry;

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

/// The size of an entry with these fields, in bytes (names and values).
pub(crate) fn size(fields: &[(&str, String)]) -> usize {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_entry(fields: Vec<(&'static str, String)>) -> Entry {
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
