//! Not public API: what the fuzz targets in `fuzz/` drive, built only when
//! cargo-fuzz builds this crate (`cfg(fuzzing)`).

use lapin::protocol::basic::parse_properties;
use pyventus_core::remote::Envelope;

use crate::envelope;

/// Reads a message as a worker reads a delivery: `properties` are the
/// content header's property bytes as the broker sends them (parsed by
/// `amq-protocol`, as lapin parses them), `body` its body. The envelope, or
/// the reason its dead letter gives; `None` when the properties do not parse
/// (lapin would close the channel, not deliver).
///
/// # Panics
///
/// When an envelope's message does not read back as that envelope.
pub fn read_message(properties: &[u8], body: &[u8]) -> Option<Result<Envelope, String>> {
    let (_, properties) = parse_properties(properties).ok()?;
    let attempt = envelope::attempt(&properties);
    assert!(attempt >= 1, "a delivery's attempt starts at 1");
    drop(envelope::context_of(&properties));
    let read = envelope::from_message(&properties, body).map_err(|err| err.to_string());
    if let Ok(envelope) = &read {
        // What a process writes: its own envelopes, whose event name and id
        // fit a short string (longer ones are refused at emit) and whose time
        // fits the header's signed integer.
        if envelope.event.len() <= 255
            && envelope.id.len() <= 255
            && i64::try_from(envelope.emitted_at).is_ok()
        {
            let written = envelope::properties(envelope)
                .expect("an envelope whose name and id fit a short string is written");
            let back = envelope::from_message(&written, envelope::body(envelope));
            assert_eq!(
                back.as_ref(),
                Ok(envelope),
                "an envelope's message read back as another"
            );
        }
    }
    Some(read)
}
