//! The testing kit: `Recorder`, `assert_emitted!` and `assert_not_emitted!`,
//! passing and failing, with the failure messages a user reads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use pyventus::testing::Recorder;
use pyventus::{Event, EventLinker, Linker, assert_emitted, assert_not_emitted, on, once};

#[derive(Debug, Clone, PartialEq, Event)]
struct OrderCreated {
    id: u64,
    total: u32,
}

#[derive(Debug, Clone, PartialEq, Event)]
struct Refunded(u64);

/// The panic message of `f`.
fn failure(f: impl FnOnce()) -> String {
    let panic = catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion should fail");
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn recorded() -> Recorder {
    let recorder = Recorder::new();
    let emitter = recorder.emitter();
    emitter.emit(OrderCreated { id: 42, total: 10 }).unwrap();
    emitter.emit(OrderCreated { id: 43, total: 20 }).unwrap();
    emitter.emit(Refunded(42)).unwrap();
    emitter.emit_named("Audit", "ok".to_string()).unwrap();
    recorder
}

#[test]
fn every_form_of_assert_emitted_passes_on_what_was_emitted() {
    let recorder = recorded();
    assert_emitted!(recorder, OrderCreated);
    assert_emitted!(recorder, OrderCreated, times = 2);
    assert_emitted!(recorder, OrderCreated { id: 42, .. });
    assert_emitted!(recorder, OrderCreated { total: 20, .. }, times = 1);
    assert_emitted!(recorder, Refunded, |r| r.0 == 42);
    assert_emitted!(recorder, "Audit");
    assert_emitted!(recorder, "Audit", times = 1);
    assert_not_emitted!(recorder, OrderCreated { id: 7, .. });
    assert_not_emitted!(recorder, Refunded, |r| r.0 == 43);
    assert_not_emitted!(recorder, "Shipped");
}

#[test]
fn a_failed_assert_emitted_says_what_it_wanted_and_what_was_emitted() {
    let recorder = recorded();
    let message = failure(|| assert_emitted!(recorder, OrderCreated { id: 7, .. }));
    assert!(
        message.starts_with(
            "assert_emitted! failed: expected at least one emission matching `OrderCreated { id: 7, .. }`, found 0; 4 emission(s):"
        ),
        "{message}"
    );
    assert!(
        message.contains("OrderCreated { id: 42, total: 10 }"),
        "{message}"
    );
    assert!(message.contains("Refunded(42)"), "{message}");

    let message = failure(|| assert_emitted!(recorder, OrderCreated, times = 3));
    assert!(
        message.contains("expected exactly 3 emission(s) matching `OrderCreated`, found 2"),
        "{message}"
    );
}

#[test]
fn a_failed_assert_not_emitted_names_the_match() {
    let recorder = recorded();
    let message = failure(|| assert_not_emitted!(recorder, Refunded));
    assert!(
        message.starts_with(
            "assert_not_emitted! failed: expected no emission matching `Refunded`, found 1;"
        ),
        "{message}"
    );
    let empty = Recorder::new();
    let message = failure(|| assert_emitted!(empty, "Audit"));
    assert!(
        message.ends_with("found 0; nothing was emitted"),
        "{message}"
    );
}

#[test]
fn the_recorder_keeps_order_counts_and_payloads_and_clears() {
    let recorder = recorded();
    assert_eq!(
        recorder.names(),
        ["OrderCreated", "OrderCreated", "Refunded", "Audit"]
    );
    assert_eq!(recorder.count::<OrderCreated>(), 2);
    assert_eq!(recorder.events_of::<Refunded>(), [Refunded(42)]);
    assert_eq!(recorder.events_of::<String>(), ["ok".to_string()]);
    recorder.clear();
    assert!(recorder.is_empty());
}

// A namespace's declared handlers, run inline by a passthrough recorder.

#[derive(Linker)]
struct Shop;

static CONFIRMED: AtomicU32 = AtomicU32::new(0);

#[on(OrderCreated, linker = Shop)]
fn confirm(order: &OrderCreated) {
    CONFIRMED.fetch_add(u32::try_from(order.id).unwrap_or(0), Ordering::SeqCst);
}

#[test]
fn a_passthrough_recorder_runs_a_namespaces_declared_handlers_inline() {
    let recorder = Recorder::passthrough();
    let emitter = recorder.emitter_on(Shop::linker());
    emitter.emit(OrderCreated { id: 5, total: 1 }).unwrap();
    assert_eq!(
        CONFIRMED.load(Ordering::SeqCst),
        5,
        "ran before emit returned"
    );
    assert_emitted!(recorder, OrderCreated { id: 5, .. });
    assert_eq!(
        recorder.events()[0].handler_ids(),
        ["testing::confirm"],
        "and which handlers it went to"
    );
}

#[test]
fn a_recording_only_recorder_runs_nothing_and_claims_no_one_time_subscriber() {
    let linker = EventLinker::new();
    let ran = Arc::new(AtomicU32::new(0));
    let counter = ran.clone();
    let once = linker
        .once::<Refunded>()
        .subscribe(move |_: &Refunded| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let recorder = Recorder::new();
    recorder
        .emitter_on(linker.clone())
        .emit(Refunded(1))
        .unwrap();
    assert_emitted!(recorder, Refunded);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(
        once.is_subscribed(),
        "the one-time subscriber is still there"
    );
}

// A passthrough recorder's own emitter: the global namespace, copied per emitter.

#[derive(Debug, Clone, Event)]
struct Welcomed;

static WELCOMES: AtomicU32 = AtomicU32::new(0);

#[once(Welcomed)]
fn first_welcome() {
    WELCOMES.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_passthrough_emitter_runs_the_global_handlers_on_a_copy_of_its_own() {
    let before = WELCOMES.load(Ordering::SeqCst);
    for _ in 0..2 {
        let recorder = Recorder::passthrough();
        let emitter = recorder.emitter();
        emitter.emit(Welcomed).unwrap();
        emitter.emit(Welcomed).unwrap();
        assert_eq!(
            recorder.events()[0].handler_ids(),
            ["testing::first_welcome"]
        );
    }
    // Each copy's `#[once]` ran once: the global linker's own is still fresh.
    assert_eq!(WELCOMES.load(Ordering::SeqCst) - before, 2);
    assert!(!pyventus::EventLinker::global().is_empty());
}

#[test]
fn a_handler_failure_fails_a_passthrough_test_unless_failures_are_allowed() {
    let failing = || {
        let linker = EventLinker::new();
        linker
            .on_named("Charge")
            .subscribe(|| -> Result<(), std::io::Error> {
                Err(std::io::Error::other("card declined"))
            })
            .unwrap();
        linker
            .on_named("Charge")
            .subscribe(|| -> Result<(), std::io::Error> { panic!("gateway down") })
            .unwrap();
        linker
    };
    let recorder = Recorder::passthrough();
    let emitter = recorder.emitter_on(failing());
    let failed = catch_unwind(AssertUnwindSafe(|| emitter.emit_named("Charge", ())))
        .expect_err("the failure fails the test");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("allow_failures"), "{message}");

    let recorder = Recorder::passthrough().allow_failures();
    recorder
        .emitter_on(failing())
        .emit_named("Charge", ())
        .unwrap();
    let failures = recorder.failures();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures.iter().any(|f| f.contains("card declined")));
    assert!(failures.iter().any(|f| f.contains("gateway down")));
    let events = recorder.events();
    assert_eq!(events[0].report().map(pyventus::RunReport::ran), Some(2));
}
