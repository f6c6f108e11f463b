//! Writes the seed corpus of each fuzz target into `fuzz/seeds/<target>/`:
//! well-formed inputs (envelopes of each event, as each broker carries them)
//! and a few malformed ones, from which the fuzzer mutates. Run from `fuzz/`:
//! `cargo run --example seeds`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use lapin::BasicProperties;
use lapin::protocol::basic::gen_properties;
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use pyventus::remote::Envelope;
use pyventus_fuzz::NAMES;

/// Payloads of the fuzz crate's events, well-formed and not.
const PAYLOADS: [(&str, &str); 9] = [
    (
        "OrderPlaced",
        r#"{"order_id":7,"lines":[{"sku":"a-1","quantity":2}],"note":null,"total":12.5}"#,
    ),
    ("OrderPlaced", r#"{"order_id":-1,"lines":[]}"#),
    ("Payment", r#"{"kind":"Card","last4":"4242","amount":1999}"#),
    (
        "Payment",
        r#"{"kind":"Transfer","iban":"FR76","reference":"x"}"#,
    ),
    ("order.cancelled", r#"[7,"too late",true]"#),
    ("Ping", "null"),
    (
        "Tree",
        r#"{"label":"r","children":[{"label":"c","children":[],"tags":{"t":1}}],"tags":{"n":null}}"#,
    ),
    ("NoSuchEvent", "{}"),
    ("Tree", r#"{"label":"#),
];

fn envelopes() -> Vec<Envelope> {
    PAYLOADS
        .iter()
        .map(|(event, payload)| {
            let mut envelope = Envelope::new(*event, *payload);
            envelope.id = "00000000-0000-4000-8000-000000000000".to_owned();
            envelope.emitted_at = 1_700_000_000_000;
            envelope
        })
        .chain(std::iter::once({
            let mut traced = Envelope::new("Ping", "null");
            traced.handlers = vec!["shop::audit".to_owned(), "shop::email".to_owned()];
            traced.context = BTreeMap::from([(
                "traceparent".to_owned(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            )]);
            traced
        }))
        .collect()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    fs::create_dir_all(&dir).expect("creates the seed folder");
    fs::write(dir.join(name), bytes).expect("writes a seed");
}

/// A RESP bulk string.
fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// An `XREADGROUP` reply (RESP2) of one stream holding these entries.
fn xreadgroup(entries: &[(String, Vec<(String, Vec<u8>)>)]) -> Vec<u8> {
    let mut out = b"*1\r\n*2\r\n".to_vec();
    bulk(&mut out, b"pyventus:{orders}:stream");
    out.extend_from_slice(format!("*{}\r\n", entries.len()).as_bytes());
    for (id, fields) in entries {
        out.extend_from_slice(b"*2\r\n");
        bulk(&mut out, id.as_bytes());
        out.extend_from_slice(format!("*{}\r\n", fields.len() * 2).as_bytes());
        for (name, value) in fields {
            bulk(&mut out, name.as_bytes());
            bulk(&mut out, value);
        }
    }
    out
}

/// An envelope's stream fields, as `pyventus-redis` writes them.
fn stream_fields(envelope: &Envelope) -> Vec<(String, Vec<u8>)> {
    let mut fields = vec![
        ("v".to_owned(), envelope.v.to_string().into_bytes()),
        ("id".to_owned(), envelope.id.clone().into_bytes()),
        ("event".to_owned(), envelope.event.clone().into_bytes()),
        ("payload".to_owned(), envelope.payload.clone().into_bytes()),
        (
            "emitted_at".to_owned(),
            envelope.emitted_at.to_string().into_bytes(),
        ),
    ];
    if !envelope.handlers.is_empty() {
        fields.push((
            "handlers".to_owned(),
            envelope.handlers.join(",").into_bytes(),
        ));
    }
    for (name, value) in &envelope.context {
        fields.push((format!("context:{name}"), value.clone().into_bytes()));
    }
    fields
}

fn redis_seeds(envelopes: &[Envelope]) {
    for (i, envelope) in envelopes.iter().enumerate() {
        let reply = xreadgroup(&[(format!("{i}-0"), stream_fields(envelope))]);
        write("redis_reply", &format!("envelope-{i}"), &reply);
    }
    let mut broken = stream_fields(&envelopes[0]);
    broken[0].1 = b"2".to_vec();
    broken.push(("\u{fffd}".to_owned(), vec![0xff, 0x00]));
    let entries = [
        ("1-0".to_owned(), broken),
        ("2-0".to_owned(), Vec::new()),
        (
            "3-0".to_owned(),
            vec![("payload".to_owned(), vec![0xc3, 0x28])],
        ),
    ];
    write("redis_reply", "malformed", &xreadgroup(&entries));
    // RESP3: a map of streams, an entry's fields as a map; and a timeout.
    write(
        "redis_reply",
        "resp3",
        b"%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n%1\r\n$1\r\nv\r\n$1\r\n1\r\n",
    );
    write("redis_reply", "nil", b"_\r\n");
}

/// A message's properties as lapin writes them.
fn amqp_properties(properties: &BasicProperties) -> Vec<u8> {
    cookie_factory::gen_simple(gen_properties(properties), Vec::new()).expect("writes properties")
}

/// The input of `amqp_message`: the properties' length, them, the body.
fn amqp_input(properties: &BasicProperties, body: &[u8]) -> Vec<u8> {
    let properties = amqp_properties(properties);
    let length = u16::try_from(properties.len()).expect("properties fit");
    let mut out = length.to_be_bytes().to_vec();
    out.extend_from_slice(&properties);
    out.extend_from_slice(body);
    out
}

/// An envelope's message properties, as `pyventus-amqp` writes them.
fn message_properties(envelope: &Envelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-pyventus-v".into(), AMQPValue::LongUInt(envelope.v));
    headers.insert(
        "x-pyventus-emitted-at".into(),
        AMQPValue::LongLongInt(i64::try_from(envelope.emitted_at).unwrap_or(i64::MAX)),
    );
    if !envelope.handlers.is_empty() {
        let ids: Vec<AMQPValue> = envelope
            .handlers
            .iter()
            .map(|id| AMQPValue::LongString(id.as_str().into()))
            .collect();
        headers.insert(
            "x-pyventus-handlers".into(),
            AMQPValue::FieldArray(FieldArray::from(ids)),
        );
    }
    for (name, value) in &envelope.context {
        headers.insert(
            name.as_str().into(),
            AMQPValue::LongString(value.as_str().into()),
        );
    }
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_message_id(envelope.id.as_str().into())
        .with_type(envelope.event.as_str().into())
        .with_timestamp(envelope.emitted_at / 1000)
        .with_app_id("pyventus".into())
        .with_headers(headers)
}

fn amqp_seeds(envelopes: &[Envelope]) {
    for (i, envelope) in envelopes.iter().enumerate() {
        let properties = message_properties(envelope);
        write(
            "amqp_message",
            &format!("envelope-{i}"),
            &amqp_input(&properties, envelope.payload.as_bytes()),
        );
    }
    let mut redelivered = FieldTable::default();
    redelivered.insert("x-pyventus-v".into(), AMQPValue::ShortShortUInt(1));
    redelivered.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id("m".into())
        .with_type("Ping".into())
        .with_timestamp(1)
        .with_headers(redelivered);
    write(
        "amqp_message",
        "redelivered",
        &amqp_input(&properties, b"null"),
    );
    write(
        "amqp_message",
        "no-properties",
        &amqp_input(&BasicProperties::default(), &[0xff]),
    );
}

fn payload_seeds() {
    for (i, (event, payload)) in PAYLOADS.iter().enumerate() {
        let choice = NAMES
            .iter()
            .position(|n| n == event)
            .expect("a named event");
        let mut input = vec![u8::try_from(choice).expect("few names")];
        input.extend_from_slice(payload.as_bytes());
        write("event_payload", &format!("payload-{i}"), &input);
    }
    // Deep nesting: serde_json's recursion limit, not the stack, stops it.
    let deep = format!(
        "\u{4}{}",
        r#"{"label":"x","tags":{},"children":["#.repeat(200)
    );
    write("event_payload", "deep", deep.as_bytes());
    let valid = serde_json::json!({"order_id": u64::MAX, "lines": [], "total": 1e308});
    write(
        "event_payload",
        "limits",
        format!("\u{0}{valid}").as_bytes(),
    );
}

fn main() {
    let envelopes = envelopes();
    redis_seeds(&envelopes);
    amqp_seeds(&envelopes);
    payload_seeds();
}
