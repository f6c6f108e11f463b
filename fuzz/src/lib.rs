//! What the fuzz targets share: events of the shapes workers decode (structs,
//! enums, tuples, options, maps, recursion), and the checks every decoded
//! envelope goes through.

use std::collections::BTreeMap;

use pyventus::Event;
use pyventus::remote::{Envelope, decode as decode_event, encode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Event, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: u64,
    pub lines: Vec<Line>,
    pub note: Option<String>,
    pub total: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Event, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Payment {
    Card {
        last4: String,
        amount: i64,
    },
    Cash,
    Transfer {
        iban: String,
        reference: Option<String>,
    },
}

#[derive(Debug, Event, Serialize, Deserialize)]
#[event(name = "order.cancelled")]
pub struct Cancelled(pub u64, pub String, pub bool);

#[derive(Debug, Event, Serialize, Deserialize)]
pub struct Ping;

#[derive(Debug, Event, Serialize, Deserialize)]
pub struct Tree {
    pub label: String,
    pub children: Vec<Tree>,
    pub tags: BTreeMap<String, Option<i128>>,
}

/// The names an input may pick: the events above, and two no type claims.
pub const NAMES: [&str; 7] = [
    "OrderPlaced",
    "Payment",
    "order.cancelled",
    "Ping",
    "Tree",
    "NoSuchEvent",
    "",
];

/// Decodes the envelope's event as a worker does. An event it decodes
/// encodes to a payload that decodes to the same; one it cannot decode has
/// a reason for its dead letter.
///
/// # Panics
///
/// When either does not hold.
pub fn decode(envelope: &Envelope) {
    match decode_event(&envelope.event, &envelope.payload) {
        Ok(event) => {
            let json = encode(&*event).expect("a decoded event encodes");
            let again = decode_event(&envelope.event, &json).expect("an encoded event decodes");
            let json_again = encode(&*again).expect("a decoded event encodes");
            assert_eq!(json, json_again, "an event changed on its way through JSON");
        }
        Err(err) => check_reason(&err.to_string()),
    }
}

/// A dead letter's reason: something to read.
///
/// # Panics
///
/// When it is empty.
pub fn check_reason(reason: &str) {
    assert!(!reason.trim().is_empty(), "a failure without a reason");
}
