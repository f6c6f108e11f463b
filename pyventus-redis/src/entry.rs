//! A stream entry as Redis keeps it, its id and its fields byte for byte, and
//! the reading of the replies that carry entries.
//!
//! Replies are read from raw [`redis::Value`]s one entry at a time: an entry
//! whose fields are not text (a field name that is not UTF-8, binary data)
//! is still an entry, which the worker dead-letters as it is, while the rest
//! of its batch runs.

use redis::Value;

use crate::Error;

/// One stream entry: its id and its fields, in order, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The value of the first field named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        field(&self.fields, name)
    }

    /// Its size: every field's name and value, in bytes.
    pub(crate) fn size(&self) -> usize {
        self.fields.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// The value of the first field named `name` among `fields`.
pub(crate) fn field<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// An entry whose id could be read but not its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub(crate) id: String,
}

/// One entry of a reply.
pub(crate) type Read = Result<Entry, Unreadable>;

/// The entries of a reply that is a list of entries (`XRANGE`, `XCLAIM`, and
/// the inner lists of `XREADGROUP` and `XAUTOCLAIM`). Entries without even an
/// id are left out (nothing can be done with them), and logged.
pub(crate) fn entries(value: Value, command: &'static str) -> Result<Vec<Read>, Error> {
    let Value::Array(items) = value else {
        return match value {
            Value::Nil => Ok(Vec::new()),
            _ => Err(Error::UnexpectedReply { command }),
        };
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match entry(item) {
            Some(read) => out.push(read),
            None => tracing::warn!(
                target: "pyventus",
                command,
                "Redis returned an entry without an id; it was skipped"
            ),
        }
    }
    Ok(out)
}

/// `[id, [name, value, ...]]`, or `None` without an id.
fn entry(item: Value) -> Option<Read> {
    let Value::Array(parts) = item else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = text(parts.next()?)?;
    let fields = match parts.next() {
        Some(Value::Array(flat)) => pairs(flat),
        Some(Value::Map(map)) => map
            .into_iter()
            .map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
            .collect(),
        _ => None,
    };
    Some(
        fields
            .map(|fields| Entry {
                id: id.clone(),
                fields,
            })
            .ok_or(Unreadable { id }),
    )
}

fn pairs(flat: Vec<Value>) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if !flat.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        out.push((bytes(k)?, bytes(v)?));
    }
    Some(out)
}

/// A string's bytes, whatever they are.
pub(crate) fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A string that must be text (an entry id, a cursor).
pub(crate) fn text(value: Value) -> Option<String> {
    String::from_utf8(bytes(value)?).ok()
}

/// The entries of an `XREADGROUP` reply: nil when the block timed out,
/// `[[stream, entries]]` (RESP2) or `{stream: entries}` (RESP3).
pub(crate) fn read_group(value: Value) -> Result<Vec<Read>, Error> {
    const COMMAND: &str = "XREADGROUP";
    let streams: Vec<Value> = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.swap_remove(1)),
                _ => Err(Error::UnexpectedReply { command: COMMAND }),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(map) => map.into_iter().map(|(_, entries)| entries).collect(),
        _ => return Err(Error::UnexpectedReply { command: COMMAND }),
    };
    let mut out = Vec::new();
    for stream in streams {
        out.extend(entries(stream, COMMAND)?);
    }
    Ok(out)
}

/// An integer reply (a count), or the error naming `command`.
pub(crate) fn int(value: &Value, command: &'static str) -> Result<u64, Error> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| Error::UnexpectedReply { command }),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::UnexpectedReply { command }),
        _ => Err(Error::UnexpectedReply { command }),
    }
}

/// A list of texts (entry ids).
pub(crate) fn texts(value: Value, command: &'static str) -> Result<Vec<String>, Error> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| text(item).ok_or(Error::UnexpectedReply { command }))
            .collect(),
        _ => Err(Error::UnexpectedReply { command }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(bytes: &[u8]) -> Value {
        Value::BulkString(bytes.to_vec())
    }

    fn raw_entry(id: &str, fields: &[&[u8]]) -> Value {
        Value::Array(vec![
            bulk(id.as_bytes()),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn a_field_name_that_is_not_text_spoils_only_its_own_entry() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"pyventus:{q}:stream"),
            Value::Array(vec![
                raw_entry("1-0", &[b"v", b"1"]),
                raw_entry("2-0", &[b"\xff\xfe", b"\x00binary"]),
                Value::Array(vec![bulk(b"3-0"), Value::Int(7)]),
                raw_entry("4-0", &[b"v", b"1"]),
            ]),
        ])]);
        let read = read_group(reply).unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read[0].as_ref().unwrap().get("v"), Some(&b"1"[..]));
        let binary = read[1].as_ref().unwrap();
        assert_eq!(
            binary.fields,
            [(b"\xff\xfe".to_vec(), b"\x00binary".to_vec())]
        );
        assert_eq!(binary.size(), 9);
        assert_eq!(read[2], Err(Unreadable { id: "3-0".into() }));
        assert_eq!(read[3].as_ref().unwrap().id, "4-0");
    }

    #[test]
    fn a_read_that_timed_out_has_no_entries_and_a_strange_reply_is_an_error() {
        assert!(read_group(Value::Nil).unwrap().is_empty());
        assert!(matches!(
            read_group(Value::Int(1)),
            Err(Error::UnexpectedReply {
                command: "XREADGROUP"
            })
        ));
    }

    #[test]
    fn resp3_maps_are_read_too() {
        let reply = Value::Map(vec![(
            bulk(b"s"),
            Value::Array(vec![Value::Array(vec![
                bulk(b"5-1"),
                Value::Map(vec![(bulk(b"k"), bulk(b"v"))]),
            ])]),
        )]);
        let read = read_group(reply).unwrap();
        assert_eq!(read[0].as_ref().unwrap().get("k"), Some(&b"v"[..]));
    }
}
