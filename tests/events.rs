//! Events: typed events (structs, enums, generics, errors), named events with
//! payloads, and the global event with its `AnyEvent` view.

mod common;

use common::{Record, inline};
use pyventus::{AnyEvent, Event, EventKey, EventLinker};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[derive(Debug, Clone, PartialEq, Event)]
enum Payment {
    Authorized { amount: u64 },
    Declined,
}

#[derive(Debug, Clone, Event)]
#[event(name = "wrapped")]
struct Wrapped<T> {
    inner: T,
}

/// Errors are events too.
#[derive(Debug, Event)]
struct SmtpError {
    code: u16,
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SMTP error {}", self.code)
    }
}

impl std::error::Error for SmtpError {}

#[test]
fn enums_generics_and_errors_are_events() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (a, b, c) = (record.clone(), record.clone(), record.clone());
    linker
        .on::<Payment>()
        .subscribe(move |p: &Payment| a.push(format!("{p:?}")))
        .unwrap();
    linker
        .on::<Wrapped<u8>>()
        .subscribe(move |w: &Wrapped<u8>| b.push(format!("wrapped {}", w.inner)))
        .unwrap();
    linker
        .on::<SmtpError>()
        .subscribe(move |e: &SmtpError| c.push(e.to_string()))
        .unwrap();

    let emitter = inline(&linker);
    emitter.emit(Payment::Authorized { amount: 5 }).unwrap();
    emitter.emit(Payment::Declined).unwrap();
    emitter.emit(Wrapped { inner: 3_u8 }).unwrap();
    emitter.emit(SmtpError { code: 421 }).unwrap();
    assert_eq!(
        record.take(),
        [
            "Authorized { amount: 5 }",
            "Declined",
            "wrapped 3",
            "SMTP error 421"
        ]
    );
    assert_eq!(<Wrapped<u8>>::NAME, "wrapped");
}

#[test]
fn two_instantiations_of_a_generic_event_are_two_types_under_one_name() {
    let linker = EventLinker::new();
    linker.on::<Wrapped<u8>>().subscribe(|| {}).unwrap();
    assert!(matches!(
        linker.on::<Wrapped<u16>>().subscribe(|| {}),
        Err(pyventus::Error::NameConflict { .. })
    ));
}

#[test]
fn global_subscribers_receive_every_event_after_its_own_subscribers() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (own, global) = (record.clone(), record.clone());
    linker
        .on_any()
        .subscribe(move |e: &AnyEvent| global.push(format!("global {}: {e:?}", e.name())))
        .unwrap();
    linker
        .on::<OrderCreated>()
        .subscribe(move |e: &OrderCreated| own.push(format!("own {}", e.order_id)))
        .unwrap();

    let emitter = inline(&linker);
    emitter.emit(OrderCreated { order_id: 1 }).unwrap();
    emitter.emit_named("Greet", "Pyventus".to_string()).unwrap();
    emitter.emit_named("Ping", ()).unwrap();
    assert_eq!(
        record.take(),
        [
            "own 1",
            "global OrderCreated: OrderCreated { order_id: 1 }",
            "global Greet: Greet(alloc::string::String)",
            "global Ping: Ping",
        ]
    );
}

#[test]
fn a_subscriber_of_an_event_and_of_the_global_event_runs_once_per_emission() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on_keys([EventKey::of::<OrderCreated>(), EventKey::any()])
        .subscribe(move |e: &AnyEvent| r.push(e.name().to_owned()))
        .unwrap();
    let emitter = inline(&linker);
    emitter.emit(OrderCreated { order_id: 1 }).unwrap();
    emitter.emit_named("Other", ()).unwrap();
    assert_eq!(record.take(), ["OrderCreated", "Other"]);
}

#[test]
fn any_event_downcasts_to_the_event_or_the_named_payload() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on_any()
        .subscribe(move |e: &AnyEvent| {
            let order = e.downcast_ref::<OrderCreated>().map(|o| o.order_id);
            let text = e.downcast_ref::<String>().cloned();
            r.push(format!("{order:?} {text:?} {}", e.is::<OrderCreated>()));
        })
        .unwrap();
    let emitter = inline(&linker);
    emitter.emit(OrderCreated { order_id: 8 }).unwrap();
    emitter
        .emit_named(String::from("Dynamic"), "text".to_string())
        .unwrap();
    assert_eq!(
        record.take(),
        ["Some(8) None true", "None Some(\"text\") false"]
    );
}

#[test]
fn a_named_event_reaches_typed_subscribers_when_its_payload_is_the_event() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (typed, named) = (record.clone(), record.clone());
    linker
        .on::<OrderCreated>()
        .subscribe(move |e: &OrderCreated| typed.push(format!("typed {}", e.order_id)))
        .unwrap();
    linker
        .on_named("OrderCreated")
        .subscribe(move |e: &OrderCreated| named.push(format!("named {}", e.order_id)))
        .unwrap();
    let emitter = inline(&linker);
    emitter.emit(OrderCreated { order_id: 2 }).unwrap();
    emitter
        .emit_named("OrderCreated", OrderCreated { order_id: 3 })
        .unwrap();
    assert_eq!(record.take(), ["typed 2", "named 2", "typed 3", "named 3"]);
}

#[test]
fn named_events_carry_any_payload_or_none() {
    struct NotDebug(u8);
    let linker = EventLinker::new();
    let record = Record::default();
    let (a, b, c) = (record.clone(), record.clone(), record.clone());
    linker
        .on_named("Raw")
        .subscribe(move |p: &NotDebug| a.push(p.0.to_string()))
        .unwrap();
    linker
        .on_named("Empty")
        .subscribe(move || b.push("empty"))
        .unwrap();
    linker
        .on_named("Empty")
        .subscribe(move |e: &AnyEvent| c.push(format!("{e:?}")))
        .unwrap();
    let emitter = inline(&linker);
    emitter.emit_named("Raw", NotDebug(9)).unwrap();
    emitter.emit_named("Empty", ()).unwrap();
    assert_eq!(record.take(), ["9", "empty", "Empty"]);
}

#[test]
fn an_event_with_no_subscribers_is_fine() {
    let emitter = inline(&EventLinker::new());
    emitter.emit(OrderCreated { order_id: 1 }).unwrap();
    emitter.emit_named("Nobody", 1_u8).unwrap();
}

/// A hand-written `Event` that claims the global event's name.
#[derive(Debug)]
struct Impostor;

impl Event for Impostor {
    const NAME: &'static str = "...";
}

#[test]
fn an_event_type_named_like_the_global_event_is_refused_at_emit() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on_any()
        .subscribe(move |e: &AnyEvent| r.push(e.name().to_owned()))
        .unwrap();
    let emitter = inline(&linker);
    assert_eq!(
        emitter.emit(Impostor).unwrap_err(),
        pyventus::Error::ReservedEventName
    );
    assert_eq!(
        pyventus::runtime::block_on(emitter.emit_and_wait(Impostor)).unwrap_err(),
        pyventus::Error::ReservedEventName
    );
    assert!(
        record.take().is_empty(),
        "nothing reached the global subscribers"
    );
}

#[test]
fn emitting_the_global_event_itself_runs_only_its_subscribers() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (global, own) = (record.clone(), record.clone());
    linker
        .on_any()
        .subscribe(move |e: &AnyEvent| global.push(format!("global {}", e.name())))
        .unwrap();
    linker
        .on::<OrderCreated>()
        .subscribe(move || own.push("own"))
        .unwrap();
    inline(&linker).emit_global().unwrap();
    assert_eq!(record.take(), ["global ..."]);
}

/// Pyventus's `emit(..., "str", 0)`: the global event emitted with arguments
/// delivers them to every global subscriber, and to no one else.
#[test]
fn emitting_the_global_event_by_name_carries_a_payload_to_its_subscribers() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (global, async_global, own) = (record.clone(), record.clone(), record.clone());
    linker
        .on_any()
        .subscribe(move |e: &AnyEvent| {
            let (text, n) = e.downcast_ref::<(&str, i32)>().expect("the payload");
            global.push(format!("{} {text} {n}", e.name()));
        })
        .unwrap();
    linker
        .on_any()
        .subscribe_async(move |e: std::sync::Arc<AnyEvent>| {
            let record = async_global.clone();
            async move {
                let payload = e.downcast_ref::<(&str, i32)>().copied();
                record.push(format!("async {payload:?}"));
            }
        })
        .unwrap();
    linker
        .on_named("str")
        .subscribe(move || own.push("not a global subscriber"))
        .unwrap();
    let emitter = inline(&linker);
    emitter.emit_named("...", ("str", 0)).unwrap();
    assert_eq!(
        record.take(),
        ["... str 0", "async Some((\"str\", 0))"],
        "each global subscriber once, with the payload"
    );
    emitter.emit_to(&EventKey::any(), ("key", 1)).unwrap();
    pyventus::runtime::block_on(emitter.emit_named_and_wait("...", ("wait", 2))).unwrap();
    assert_eq!(
        record.take(),
        [
            "... key 1",
            "async Some((\"key\", 1))",
            "... wait 2",
            "async Some((\"wait\", 2))"
        ]
    );
}

/// The same through the fast path's caches: an inline emitter with only
/// synchronous global subscribers, emitting again and again.
#[test]
fn the_global_event_by_name_reaches_plain_global_subscribers_on_every_emit() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = record.clone();
    linker
        .on_any()
        .subscribe(move |e: &AnyEvent| r.push(format!("{:?}", e.downcast_ref::<u32>())))
        .unwrap();
    let emitter = common::inline_fast(&linker);
    for n in 0..3_u32 {
        emitter.emit_named("...", n).unwrap();
    }
    emitter.emit_global().unwrap();
    assert_eq!(record.take(), ["Some(0)", "Some(1)", "Some(2)", "None"]);
}

// --- A float crosses a process bit for bit: what the emitter encodes is
// what the worker decodes.

#[cfg(feature = "redis")]
#[derive(Debug, Clone, Event, serde::Serialize, serde::Deserialize)]
struct Priced {
    total: f64,
}

#[cfg(feature = "redis")]
#[test]
fn a_float_crosses_the_codec_bit_for_bit() {
    use pyventus::remote::{decode, encode};
    // 1.3e32 to the last bit: serde_json's default parsing of "1.3e32", its
    // shortest form, lands one bit below (found by the amqp_message fuzzer).
    for total in [f64::from_bits(0x4699_a352_9e87_0f1e), 0.1, 1e-300, f64::MAX] {
        let json = encode(&Priced { total }).unwrap();
        let decoded = decode("Priced", &json).unwrap();
        let got = decoded.downcast_ref::<Priced>().unwrap().total;
        assert_eq!(got.to_bits(), total.to_bits(), "{total:e} sent as {json}");
    }
}
