//! `DeadLetter`: one message that failed its last allowed delivery, and its
//! format (the headers a worker adds when it dead-letters a message), written
//! and read here only.
//!
//! A worker dead-letters a message by publishing it, byte for byte, to the
//! queue's dead-letter exchange with these headers added, then acknowledging
//! it. A message the broker dead-lettered itself (its worker died on each of
//! its deliveries, so none reached the point of recording a reason) carries the
//! broker's `x-death` instead, which is read as its reason.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use pyventus_core::remote::{Envelope, EnvelopeError};

use crate::envelope;

const REASON: &str = "x-pyventus-reason";
const DELIVERIES: &str = "x-pyventus-deliveries";
const FAILED_AT: &str = "x-pyventus-failed-at";
const LETTER: &str = "x-pyventus-letter";
/// Headers the broker adds when it dead-letters a message.
const BROKER_DEATH: [&str; 7] = [
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];
/// The longest reason kept in a header (a handler's error can be long).
const MAX_REASON: usize = 4096;

/// The properties of a message's dead letter: its own, with the reason, the
/// delivery count, the time and its letter id added, and the broker's stale
/// delivery count removed.
pub(crate) fn letter_properties(
    original: &BasicProperties,
    body: &[u8],
    reason: &str,
    deliveries: u64,
) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    let mut kept: FieldTable = headers
        .inner()
        .iter()
        .filter(|(name, _)| name.as_str() != envelope::DELIVERY_COUNT)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into();
    kept.insert(
        REASON.into(),
        AMQPValue::LongString(truncate(reason).into()),
    );
    kept.insert(
        DELIVERIES.into(),
        AMQPValue::LongLongInt(i64::try_from(deliveries).unwrap_or(i64::MAX)),
    );
    kept.insert(FAILED_AT.into(), AMQPValue::LongLongInt(now_millis()));
    kept.insert(
        LETTER.into(),
        AMQPValue::LongString(letter_id(original, body).into()),
    );
    headers = kept;
    original.clone().with_headers(headers)
}

/// The properties a dead letter is replayed with: its message's own, as it was
/// first published (dead-letter and broker headers removed).
pub(crate) fn replay_properties(letter: &BasicProperties) -> BasicProperties {
    let Some(headers) = letter.headers() else {
        return letter.clone();
    };
    let ours = [
        REASON,
        DELIVERIES,
        FAILED_AT,
        LETTER,
        envelope::DELIVERY_COUNT,
    ];
    let kept: std::collections::BTreeMap<_, _> = headers
        .inner()
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !ours.contains(&name) && !BROKER_DEATH.contains(&name)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    letter.clone().with_headers(kept.into())
}

/// One dead letter, as [`DeadLetters::list`](crate::DeadLetters::list) returns it (see its example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id among the dead letters (for [`DeadLetters::replay`](crate::DeadLetters::replay) and
    /// [`DeadLetters::remove`](crate::DeadLetters::remove)): its message's id (an envelope's id; a hash of
    /// the body for a message without one). Two letters with one id are one
    /// message dead-lettered twice (a worker lost between publishing the
    /// letter and acknowledging the message): [`DeadLetters::replay_all`](crate::DeadLetters::replay_all)
    /// replays it once; [`DeadLetters::replay`](crate::DeadLetters::replay) and [`DeadLetters::remove`](crate::DeadLetters::remove)
    /// take the first.
    pub id: String,
    /// Why its last delivery failed.
    pub reason: String,
    /// How many deliveries it had (0 if the broker dead-lettered it: see
    /// `reason`).
    pub deliveries: u64,
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub failed_at: u64,
    /// The envelope it carries, or what is wrong with it (that may be why it
    /// is here).
    pub envelope: Result<Envelope, EnvelopeError>,
    /// The message's body, byte for byte.
    pub body: Vec<u8>,
}

impl DeadLetter {
    /// The event's name, if the message had one.
    pub fn event(&self) -> &str {
        self.envelope
            .as_ref()
            .map_or("<none>", |envelope| envelope.event.as_str())
    }

    pub(crate) fn from_message(properties: &BasicProperties, body: Vec<u8>) -> Self {
        let empty = FieldTable::default();
        let headers = properties.headers().as_ref().unwrap_or(&empty).inner();
        let text = |name: &str| headers.get(name).and_then(envelope::text);
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(envelope::integer)
                .and_then(|n| u64::try_from(n).ok())
        };
        let death = broker_death(headers.get("x-death"));
        let id = id_of(properties, &body);
        let reason = text(REASON).unwrap_or_else(|| match &death {
            Some((reason, _)) if reason == "delivery_limit" => {
                "dead-lettered by the broker at its delivery limit: no delivery was settled (the worker crashed, lost its connection or hit its shutdown timeout on each)".to_owned()
            }
            Some((reason, _)) => format!("dead-lettered by the broker: {reason}"),
            None => "unknown".to_owned(),
        });
        DeadLetter {
            id,
            reason,
            deliveries: number(DELIVERIES).unwrap_or(0),
            failed_at: number(FAILED_AT)
                .or_else(|| death.map(|(_, seconds)| seconds.saturating_mul(1000)))
                .unwrap_or(0),
            envelope: envelope::from_message(properties, &body),
            body,
        }
    }
}

/// A message's letter id: its `message_id` (an envelope's id), or a hash of its
/// body if it has none. The same for every letter of one message, whoever
/// wrote it (a worker, or the broker at its delivery limit), so a message
/// dead-lettered twice is seen as such, and replayed once.
fn letter_id(properties: &BasicProperties, body: &[u8]) -> String {
    match properties.message_id() {
        Some(id) => id.to_string(),
        None => format!("body-{:016x}", fnv1a(body)),
    }
}

/// The id of a dead letter: the one its worker wrote, or its message's (the
/// broker writes none).
pub(crate) fn id_of(properties: &BasicProperties, body: &[u8]) -> String {
    properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(LETTER))
        .and_then(envelope::text)
        .unwrap_or_else(|| letter_id(properties, body))
}

/// The reason and time (seconds) of the broker's latest dead-lettering.
fn broker_death(x_death: Option<&AMQPValue>) -> Option<(String, u64)> {
    let AMQPValue::FieldArray(deaths) = x_death? else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    let reason = latest.inner().get("reason").and_then(envelope::text)?;
    let time = match latest.inner().get("time") {
        Some(AMQPValue::Timestamp(seconds)) => *seconds,
        _ => 0,
    };
    Some((reason, time))
}

fn truncate(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stable id for a message that has none (FNV-1a: the same in every process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_reads_back_what_was_written() {
        let envelope = Envelope::new("Doomed", r#"{"id":7}"#);
        let mut original = envelope::properties(&envelope).unwrap();
        let mut headers = original.headers().clone().unwrap_or_default();
        headers.insert(envelope::DELIVERY_COUNT.into(), AMQPValue::LongLongInt(2));
        original = original.with_headers(headers);

        let body = envelope.payload.as_bytes();
        let letter_props = letter_properties(&original, body, "handler `x` failed: no", 3);
        let letter = DeadLetter::from_message(&letter_props, envelope.payload.clone().into_bytes());
        assert_eq!(letter.reason, "handler `x` failed: no");
        assert_eq!(letter.deliveries, 3);
        assert!(letter.failed_at > 0);
        assert_eq!(letter.event(), "Doomed");
        assert_eq!(letter.envelope.as_ref().unwrap(), &envelope);
        assert_eq!(letter.id, envelope.id, "the letter id is its envelope's");
        // Dead-lettered again (a repeat): the same letter id.
        let again = letter_properties(&original, body, "handler `x` failed: again", 3);
        assert_eq!(
            DeadLetter::from_message(&again, body.to_vec()).id,
            letter.id
        );

        // Replayed as first published: no dead-letter or delivery-count header.
        assert_eq!(
            replay_properties(&letter_props),
            envelope::properties(&envelope).unwrap()
        );
    }

    #[test]
    fn a_letter_the_broker_wrote_has_its_reason() {
        let mut death = FieldTable::default();
        death.insert(
            "reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        death.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        let properties = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_headers(headers);
        let letter = DeadLetter::from_message(&properties, b"raw".to_vec());
        assert_eq!(letter.id, "m-1");
        assert!(
            letter.reason.contains("delivery limit"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.failed_at, 1_700_000_000_000);
        assert!(letter.envelope.is_err());
        assert_eq!(letter.event(), "<none>");
    }

    #[test]
    fn a_message_without_ids_gets_a_stable_one() {
        let a = DeadLetter::from_message(&BasicProperties::default(), b"x".to_vec());
        let b = DeadLetter::from_message(&BasicProperties::default(), b"x".to_vec());
        assert_eq!(a.id, b.id);
        assert!(a.id.starts_with("body-"));
    }

    #[test]
    fn long_reasons_are_cut_on_a_character() {
        let reason = "é".repeat(MAX_REASON);
        assert!(truncate(&reason).len() <= MAX_REASON);
        assert!(truncate(&reason).chars().all(|c| c == 'é'));
    }
}
