//! A RabbitMQ message, as the broker sends its properties and body, as a
//! worker reads it: no bytes make it panic, every message it cannot run has
//! a reason for its dead letter, and an envelope's message reads back as it.
//!
//! The input: two bytes giving the length of the properties, the
//! properties (a content header's property flags and values), the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pyventus_fuzz::{check_reason, decode};

fuzz_target!(|bytes: &[u8]| {
    let [high, low, rest @ ..] = bytes else {
        return;
    };
    let split = usize::from(u16::from_be_bytes([*high, *low])).min(rest.len());
    let (properties, body) = rest.split_at(split);
    match pyventus_amqp::fuzzing::read_message(properties, body) {
        None => {}
        Some(Ok(envelope)) => decode(&envelope),
        Some(Err(reason)) => check_reason(&reason),
    }
});
