//! The workflow of one subscriber: its `Ok` value goes to the success callback,
//! its error or panic to the failure callback (or the linker's defaults), and
//! every failure is logged at error level.

mod common;

use std::any::Any;
use std::sync::Arc;

use common::{Logs, Record, inline};
use pyventus::{AnyEvent, Error, Event, EventKey, EventLinker, HandlerPanic};

#[derive(Debug, Clone, Event)]
struct Ping {
    n: u64,
}

/// A tiny error type, so tests can downcast a failure to what the handler returned.
#[derive(Debug)]
struct Oops;

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oops")
    }
}

impl std::error::Error for Oops {}

#[test]
fn the_ok_value_goes_to_the_success_callback() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (ok, failed) = (record.clone(), record.clone());
    linker
        .on::<Ping>()
        .on_success(move |n: u64| ok.push(format!("ok {n}")))
        .on_failure(move |_: &anyhow::Error| failed.push("failed"))
        .subscribe(|e: &Ping| e.n * 2)
        .unwrap();
    inline(&linker).emit(Ping { n: 21 }).unwrap();
    assert_eq!(record.take(), ["ok 42"]);
}

#[test]
fn an_error_goes_to_the_failure_callback_and_is_logged_once_as_handled() {
    let linker = EventLinker::new();
    let record = Record::default();
    let (ok, failed) = (record.clone(), record.clone());
    linker
        .on::<Ping>()
        .on_success(move || ok.push("ok"))
        .on_failure(move |err: &anyhow::Error| {
            failed.push(format!("failed: {err} ({})", err.is::<Oops>()));
        })
        .subscribe(|_: &Ping| -> Result<(), Oops> { Err(Oops) })
        .unwrap();

    let (logs, _guard) = Logs::capture();
    inline(&linker).emit(Ping { n: 1 }).unwrap();
    assert_eq!(record.take(), ["failed: oops (true)"]);
    let text = logs.text();
    // Handled by its callback: logged once, at the linker's level for handled
    // failures (`DEBUG` by default), not as an error.
    assert_eq!(text.matches("oops").count(), 1, "{text}");
    assert!(
        text.contains("DEBUG") && text.contains("event callback failed (handled): oops"),
        "{text}"
    );
    assert!(!text.contains("ERROR"), "{text}");
    assert!(text.contains("event=\"Ping\""), "{text}");
}

#[test]
fn a_failure_is_logged_even_without_a_failure_callback() {
    let linker = EventLinker::new();
    linker
        .on::<Ping>()
        .subscribe(|_: &Ping| -> anyhow::Result<()> { anyhow::bail!("nobody listens") })
        .unwrap();
    let (logs, _guard) = Logs::capture();
    inline(&linker).emit(Ping { n: 1 }).unwrap();
    assert!(logs.text().contains("ERROR"), "{}", logs.text());
    assert!(logs.text().contains("nobody listens"), "{}", logs.text());
}

#[test]
fn a_panic_goes_to_the_failure_callback_and_the_others_still_run() {
    let linker = EventLinker::new();
    let record = Record::default();
    let failed = record.clone();
    linker
        .on::<Ping>()
        .on_failure(move |err: &anyhow::Error| {
            let panic = err.downcast_ref::<HandlerPanic>().expect("a HandlerPanic");
            failed.push(format!("caught: {}", panic.message()));
        })
        .subscribe(|e: &Ping| -> () { panic!("bad ping {}", e.n) })
        .unwrap();
    let after = record.clone();
    linker
        .on::<Ping>()
        .subscribe(move |_: &Ping| after.push("next ran"))
        .unwrap();

    inline(&linker).emit(Ping { n: 3 }).unwrap();
    assert_eq!(record.take(), ["caught: bad ping 3", "next ran"]);
}

#[test]
fn a_panic_amid_plain_handlers_reaches_its_own_failure_callback_only() {
    // Three unit handlers, each with its own failure callback: the lane runs
    // them as plain calls and must find whose call panicked.
    let linker = EventLinker::new();
    let record = Record::default();
    for i in 0..3 {
        let (failed, ran) = (record.clone(), record.clone());
        linker
            .on::<Ping>()
            .on_failure(move |_: &anyhow::Error| failed.push(format!("failure {i}")))
            .subscribe(move |e: &Ping| {
                assert!(i != 1, "handler 1 panics on ping {}", e.n);
                ran.push(format!("ran {i}"));
            })
            .unwrap();
    }
    let emitter = inline(&linker);
    for n in 0..2 {
        emitter.emit(Ping { n }).unwrap();
        assert_eq!(record.take(), ["ran 0", "failure 1", "ran 2"], "emit {n}");
    }
}

#[test]
fn the_linkers_defaults_serve_subscribers_without_callbacks_of_their_own() {
    let record = Record::default();
    let (ok, failed) = (record.clone(), record.clone());
    let linker = EventLinker::builder()
        .default_success(move |value: &dyn Any| {
            ok.push(format!("default ok {:?}", value.downcast_ref::<u64>()));
        })
        .default_failure(move |err: &anyhow::Error| failed.push(format!("default failed: {err}")))
        .build();
    let own = record.clone();
    linker.on::<Ping>().subscribe(|e: &Ping| e.n).unwrap();
    linker
        .on::<Ping>()
        .subscribe(|_: &Ping| -> anyhow::Result<u64> { anyhow::bail!("no") })
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(move |n: u64| own.push(format!("own ok {n}")))
        .subscribe(|e: &Ping| e.n + 1)
        .unwrap();

    inline(&linker).emit(Ping { n: 7 }).unwrap();
    assert_eq!(
        record.take(),
        ["default ok Some(7)", "default failed: no", "own ok 8"]
    );
}

#[test]
fn a_success_callback_must_take_the_handlers_ok_type() {
    let linker = EventLinker::new();
    let err = linker
        .on::<Ping>()
        .on_success(|_: String| {})
        .subscribe(|e: &Ping| e.n)
        .unwrap_err();
    assert_eq!(
        err,
        Error::SuccessType {
            expected: "alloc::string::String",
            found: "u64"
        }
    );
    assert!(linker.is_empty());
}

#[test]
fn panicking_callbacks_are_contained_and_logged() {
    let linker = EventLinker::new();
    linker
        .on::<Ping>()
        .on_success(|| panic!("success callback blew up"))
        .subscribe(|_: &Ping| {})
        .unwrap();
    linker
        .on::<Ping>()
        .on_failure(|_: &anyhow::Error| panic!("failure callback blew up"))
        .subscribe(|_: &Ping| -> anyhow::Result<()> { anyhow::bail!("first") })
        .unwrap();
    let (logs, _guard) = Logs::capture();
    inline(&linker).emit(Ping { n: 0 }).unwrap();
    let text = logs.text();
    assert!(
        text.contains("success callback panicked: success callback blew up"),
        "{text}"
    );
    assert!(
        text.contains("failure callback panicked: failure callback blew up"),
        "{text}"
    );
}

#[test]
fn every_parameter_and_return_form_runs() {
    let linker = EventLinker::new();
    let record = Record::default();
    let r = |tag: &'static str| {
        let record = record.clone();
        move |n: u64| record.push(format!("{tag} {n}"))
    };
    linker
        .on::<Ping>()
        .on_success(r("ref"))
        .subscribe(|e: &Ping| e.n)
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("value"))
        .subscribe(|e: Ping| e.n)
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("arc"))
        .subscribe(|e: Arc<Ping>| e.n)
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("any"))
        .subscribe(|e: &AnyEvent| e.downcast_ref::<Ping>().map_or(0, |p| p.n))
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("nothing"))
        .subscribe(|| 0_u64)
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("result"))
        .subscribe(|e: &Ping| Ok::<_, anyhow::Error>(e.n))
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("async arc"))
        .subscribe_async(|e: Arc<Ping>| async move { e.n })
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("async value"))
        .subscribe_async(|e: Ping| async move { Ok::<_, Oops>(e.n) })
        .unwrap();
    linker
        .on::<Ping>()
        .on_success(r("async any"))
        .subscribe_async(
            |e: Arc<AnyEvent>| async move { e.downcast_ref::<Ping>().map_or(0, |p| p.n) },
        )
        .unwrap();

    inline(&linker).emit(Ping { n: 5 }).unwrap();
    let mut ran = record.take();
    ran.sort();
    assert_eq!(
        ran,
        [
            "any 5",
            "arc 5",
            "async any 5",
            "async arc 5",
            "async value 5",
            "nothing 0",
            "ref 5",
            "result 5",
            "value 5"
        ]
    );
}

#[test]
fn a_named_subscriber_expecting_another_payload_fails_clearly() {
    let linker = EventLinker::new();
    let record = Record::default();
    let failed = record.clone();
    linker
        .on_named("Greet")
        .on_failure(move |err: &anyhow::Error| failed.push(err.to_string()))
        .subscribe(|_: &u32| {})
        .unwrap();
    inline(&linker)
        .emit_named("Greet", "hi".to_string())
        .unwrap();
    assert_eq!(
        record.take(),
        ["event `Greet` carries a `alloc::string::String`, but `u32` was expected"]
    );
}

#[test]
fn a_payload_of_the_wrong_type_for_a_typed_event_is_refused_at_emit() {
    let linker = EventLinker::new();
    let record = Record::default();
    let ran = record.clone();
    linker
        .on::<Ping>()
        .subscribe(move |_: &Ping| ran.push("ran"))
        .unwrap();
    let err = inline(&linker).emit_named("Ping", 5_u64).unwrap_err();
    assert!(
        matches!(err, Error::PayloadType { found: "u64", .. }),
        "{err:?}"
    );
    inline(&linker).emit_named("Ping", Ping { n: 1 }).unwrap();
    assert_eq!(
        record.take(),
        ["ran"],
        "the right payload under the name is the event itself"
    );
}

#[test]
fn an_empty_name_is_an_error_at_emit_and_a_key_spelled_like_the_global_event_too() {
    let emitter = inline(&EventLinker::new());
    assert_eq!(
        emitter.emit_named("", ()).unwrap_err(),
        Error::EmptyEventName
    );
    // `"..."` as a name emits the global event (see tests/events.rs); a
    // named key spelled so is not the global event's key, and stays refused.
    assert_eq!(
        emitter.emit_to(&EventKey::named("..."), ()).unwrap_err(),
        Error::ReservedEventName
    );
}
