//! Not public API: what the fuzz targets in `fuzz/` drive, built only when
//! cargo-fuzz builds this crate (`cfg(fuzzing)`).

use pyventus_core::remote::Envelope;

use crate::dead_letter::{self, DeadLetter};
use crate::entry::{self, Entry};
use crate::envelope;

/// What a worker makes of one entry of a reply: its envelope, or the reason
/// its dead letter gives.
pub type Read = Result<Envelope, String>;

/// Reads `bytes`, a reply of Redis (RESP), as a worker reads an
/// `XREADGROUP` reply and the dead letters read theirs, checking on the way
/// that what is written back (an envelope's fields, a dead letter) reads the
/// same. `None` when the bytes are not a reply at all (the `redis` crate's
/// parser says so).
///
/// # Panics
///
/// When a written form does not read back as it was.
pub fn read_reply(bytes: &[u8]) -> Option<Vec<Read>> {
    let value = redis::parse_redis_value(bytes).ok()?;
    let entries = match entry::read_group(value.clone()) {
        Ok(entries) => entries,
        Err(err) => return Some(vec![Err(err.to_string())]),
    };
    // The dead letters and the retries read plain lists of entries.
    drop(entry::entries(value, "XRANGE"));
    Some(
        entries
            .into_iter()
            .map(|read| match read {
                Ok(entry) => read_entry(&entry),
                Err(unreadable) => Err(format!("unreadable entry {}", unreadable.id)),
            })
            .collect(),
    )
}

/// One entry as a worker reads it; its dead letter read back.
fn read_entry(entry: &Entry) -> Read {
    let read = envelope::from_entry(entry).map_err(|err| err.to_string());
    if let Ok(envelope) = &read {
        let fields = envelope::to_fields(envelope)
            .into_iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.into_bytes()))
            .collect();
        let written = Entry {
            id: entry.id.clone(),
            fields,
        };
        assert_eq!(
            envelope::from_entry(&written).as_ref(),
            Ok(envelope),
            "an envelope's fields read back as another envelope"
        );
    }
    let reason = match &read {
        Ok(_) => "handled".to_owned(),
        Err(reason) => reason.clone(),
    };
    let mut letter = Vec::new();
    dead_letter::write(&entry.id, &entry.fields, &reason, 3, 7, |k, v| {
        letter.push((k.to_vec(), v.to_vec()));
    });
    let letter = DeadLetter::from_entry(Entry {
        id: "1-0".to_owned(),
        fields: letter,
    });
    assert_eq!(
        letter.fields, entry.fields,
        "a dead letter lost its entry's fields"
    );
    assert_eq!(letter.entry, entry.id);
    let kept: String = letter.reason.chars().take(64).collect();
    assert!(
        reason.starts_with(&kept),
        "a dead letter's reason is not the failure's"
    );
    read
}
