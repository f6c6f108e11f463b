//! A Redis reply, byte for byte, as a worker reads it: no bytes make it
//! panic, every entry it cannot run has a reason for its dead letter, and
//! what it writes back (an envelope's fields, a dead letter) reads the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pyventus_fuzz::{check_reason, decode};

fuzz_target!(|bytes: &[u8]| {
    let Some(entries) = pyventus_redis::fuzzing::read_reply(bytes) else {
        return;
    };
    for read in entries {
        match read {
            Ok(envelope) => decode(&envelope),
            Err(reason) => check_reason(&reason),
        }
    }
});
