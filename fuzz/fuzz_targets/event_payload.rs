//! An event's name and JSON payload, as a worker decodes them: no payload
//! makes decoding panic, each one it cannot decode has a reason, and what it
//! decodes encodes to a payload that decodes to the same.
//!
//! The input: one byte choosing the event's name among those the fuzz crate
//! declares (and names none declares), the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pyventus::remote::Envelope;
use pyventus_fuzz::{NAMES, decode};

fuzz_target!(|bytes: &[u8]| {
    let [choice, payload @ ..] = bytes else {
        return;
    };
    let name = NAMES[usize::from(*choice) % NAMES.len()];
    let payload = String::from_utf8_lossy(payload);
    decode(&Envelope::new(name, payload));
});
