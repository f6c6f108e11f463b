//! One dead letter, and its format in the dead-letter stream: written and read
//! here only.
//!
//! A letter's fields (format 2) are `format` (`2`), `reason`, `deliveries`,
//! `failed_at` (milliseconds since the Unix epoch), `entry` (the id it had in
//! the queue's stream), then each of the entry's own fields, byte for byte and
//! in their order, under its name prefixed with `field:`. The prefix keeps an
//! entry's fields apart from the letter's whatever they are called. Letters
//! written before format 2 (no `format` field) held the entry's fields
//! unprefixed, as text; they are read too.

use std::borrow::Cow;

use crate::entry::{Entry, field};

/// The format version written in `format`.
const FORMAT: &str = "2";
/// The prefix of an entry's own fields in its letter.
const PREFIX: &[u8] = b"field:";
/// The longest reason a letter keeps, in bytes.
const MAX_REASON: usize = 8 * 1024;

/// One dead letter, as [`DeadLetters::list`](crate::DeadLetters::list)
/// returns it: why the entry failed, and the entry itself, byte for byte.
///
/// # Examples
///
/// ```no_run
/// use pyventus_redis::DeadLetters;
///
/// # #[tokio::main] async fn main() -> Result<(), pyventus_redis::Error> {
/// let dead = DeadLetters::connect("redis://127.0.0.1:6379", "orders").await?;
/// for letter in dead.list(10).await? {
///     let payload = letter.payload().map(String::from_utf8_lossy);
///     println!("{} failed {} times: {} ({payload:?})", letter.event(), letter.deliveries, letter.reason);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// Why its last delivery failed.
    pub reason: String,
    /// How many deliveries it had.
    pub deliveries: u64,
    /// When it was moved here, in milliseconds since the Unix epoch.
    pub failed_at: u64,
    /// The id it had in the queue's stream.
    pub entry: String,
    /// The entry's fields as they were, byte for byte and in order (`v`, `id`,
    /// `event`, `payload`, `emitted_at`; possibly malformed or binary: that may
    /// be why it is here). A replay enqueues exactly these.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl DeadLetter {
    /// The value of the entry's field `name`, as bytes.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        field(&self.fields, name)
    }

    /// The value of the entry's field `name`, as text (bytes that are not
    /// UTF-8 shown as `�`).
    pub fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.field(name).map(String::from_utf8_lossy)
    }

    /// The event's name, or `<none>` if the entry had none.
    pub fn event(&self) -> Cow<'_, str> {
        self.text("event").unwrap_or(Cow::Borrowed("<none>"))
    }

    /// The envelope's id (the same across redeliveries and replays), if any.
    pub fn envelope_id(&self) -> Option<Cow<'_, str>> {
        self.text("id")
    }

    /// The payload, byte for byte, if any.
    pub fn payload(&self) -> Option<&[u8]> {
        self.field("payload")
    }

    /// Reads a letter from its entry in the dead-letter stream.
    pub(crate) fn from_entry(letter: Entry) -> Self {
        let is_v2 = letter.get("format") == Some(FORMAT.as_bytes());
        let meta = |name: &str| {
            letter
                .get(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let (reason, deliveries, failed_at, entry) = (
            meta("reason"),
            meta("deliveries").parse().unwrap_or(0),
            meta("failed_at").parse().unwrap_or(0),
            meta("entry"),
        );
        let fields = letter
            .fields
            .into_iter()
            .filter_map(|(name, value)| {
                if is_v2 {
                    name.strip_prefix(PREFIX).map(|name| (name.to_vec(), value))
                } else {
                    let is_meta = ["reason", "deliveries", "failed_at", "entry"]
                        .iter()
                        .any(|m| name == m.as_bytes());
                    (!is_meta).then_some((name, value))
                }
            })
            .collect();
        DeadLetter {
            id: letter.id,
            reason,
            deliveries,
            failed_at,
            entry,
            fields,
        }
    }
}

/// Writes the letter of `entry` field by field through `push`.
pub(crate) fn write(
    entry_id: &str,
    fields: &[(Vec<u8>, Vec<u8>)],
    reason: &str,
    deliveries: u64,
    failed_at: u64,
    mut push: impl FnMut(&[u8], &[u8]),
) {
    push(b"format", FORMAT.as_bytes());
    push(b"reason", crate::truncated(reason, MAX_REASON).as_bytes());
    push(b"deliveries", deliveries.to_string().as_bytes());
    push(b"failed_at", failed_at.to_string().as_bytes());
    push(b"entry", entry_id.as_bytes());
    let mut name = Vec::new();
    for (field, value) in fields {
        name.clear();
        name.extend_from_slice(PREFIX);
        name.extend_from_slice(field);
        push(&name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(entry_id: &str, fields: &[(Vec<u8>, Vec<u8>)], reason: &str) -> Entry {
        let mut out = Vec::new();
        write(entry_id, fields, reason, 3, 1_700_000_000_000, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
        });
        Entry {
            id: "9-0".to_owned(),
            fields: out,
        }
    }

    #[test]
    fn a_letter_keeps_its_entry_byte_for_byte_whatever_its_fields_are_called() {
        let fields = vec![
            (b"event".to_vec(), b"Doomed".to_vec()),
            (b"payload".to_vec(), vec![0xff, 0x00, 0xfe]),
            (
                b"reason".to_vec(),
                b"an entry field named like the letter's".to_vec(),
            ),
            (vec![0xc3, 0x28], b"not UTF-8".to_vec()),
        ];
        let letter = DeadLetter::from_entry(written("5-1", &fields, "it failed"));
        assert_eq!(letter.fields, fields);
        assert_eq!(letter.reason, "it failed");
        assert_eq!(
            (letter.deliveries, letter.failed_at),
            (3, 1_700_000_000_000)
        );
        assert_eq!(letter.entry, "5-1");
        assert_eq!(letter.event(), "Doomed");
        assert_eq!(letter.payload(), Some(&[0xff, 0x00, 0xfe][..]));
    }

    #[test]
    fn a_long_reason_is_cut() {
        let letter = DeadLetter::from_entry(written("1-0", &[], &"x".repeat(100_000)));
        assert!(letter.reason.len() < 9 * 1024, "{}", letter.reason.len());
        assert_eq!(letter.event(), "<none>");
    }

    #[test]
    fn letters_of_the_first_format_are_read() {
        let legacy = Entry {
            id: "2-0".to_owned(),
            fields: [
                ("event", "Doomed"),
                ("payload", "{}"),
                ("reason", "boom"),
                ("deliveries", "5"),
                ("failed_at", "7"),
                ("entry", "1-0"),
            ]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        };
        let letter = DeadLetter::from_entry(legacy);
        assert_eq!((letter.reason.as_str(), letter.deliveries), ("boom", 5));
        assert_eq!(letter.fields.len(), 2);
        assert_eq!(letter.text("payload").as_deref(), Some("{}"));
    }
}
