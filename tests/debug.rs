//! Logging: levels and targets decide what is shown (`pyventus=debug` shows
//! subscribe, remove, emit and execute); debug mode, per linker and per
//! emitter and defaulting to `PYVENTUS_DEBUG`, raises those to `INFO`.

mod common;

use common::{Logs, emitter};
use pyventus::{Event, EventEmitter, EventLinker, InlineProcessingService};

#[derive(Debug, Clone, Event)]
struct Ping;

#[test]
fn a_debug_linker_logs_subscriptions_and_removals() {
    let (logs, _guard) = Logs::capture();
    let linker = EventLinker::builder().name("users").debug(true).build();
    let sub = linker.on::<Ping>().subscribe(|| {}).unwrap();
    linker.remove_subscriber(&sub);
    let text = logs.text();
    assert!(
        text.contains(" INFO") && text.contains("subscribed"),
        "debug mode logs at INFO: {text}"
    );
    assert!(text.contains("linker=users"), "{text}");
    assert!(text.contains("removed subscriber"), "{text}");
}

#[test]
fn a_debug_emitter_logs_each_emission_and_execution() {
    let (logs, _guard) = Logs::capture();
    let linker = EventLinker::builder().debug(false).build();
    linker.on::<Ping>().subscribe(|| {}).unwrap();
    let emitter = EventEmitter::builder()
        .processor(InlineProcessingService::default())
        .linker(linker)
        .debug(true)
        .build();
    emitter.emit(Ping).unwrap();
    let text = logs.text();
    assert!(
        text.contains("emitting") && text.contains("subscribers=1"),
        "{text}"
    );
    assert!(text.contains("emission="), "{text}");
    assert!(text.contains("executing subscriber"), "{text}");
    assert!(
        text.contains("pyventus.delivery{event=\"Ping\""),
        "each delivery runs in a span: {text}"
    );
    assert!(
        !text.contains(" INFO pyventus: subscribed"),
        "the linker is not in debug mode: {text}"
    );
}

#[test]
fn without_debug_mode_nothing_above_debug_is_logged_on_success() {
    let (logs, _guard) = Logs::capture();
    let linker = EventLinker::builder().debug(false).build();
    linker.on::<Ping>().subscribe(|| {}).unwrap();
    let emitter = EventEmitter::builder().linker(linker).debug(false).build();
    emitter.emit(Ping).unwrap();
    let text = logs.text();
    for level in [" INFO", " WARN", " ERROR"] {
        assert!(!text.contains(level), "{text}");
    }
}

#[test]
fn a_debug_filter_alone_shows_subscriptions_emissions_and_deliveries() {
    // This capture records every level, as `RUST_LOG=pyventus=debug` would:
    // no debug mode is needed for pyventus's debug events to show.
    let (logs, _guard) = Logs::capture();
    let linker = EventLinker::builder().name("orders").debug(false).build();
    linker
        .on::<Ping>()
        .subscribe(|| tracing::info!("in the handler"))
        .unwrap();
    emitter(&linker, InlineProcessingService::default())
        .emit(Ping)
        .unwrap();
    let text = logs.text();
    assert!(text.contains("DEBUG pyventus: subscribed"), "{text}");
    assert!(text.contains("DEBUG pyventus: emitting"), "{text}");
    assert!(
        text.contains("pyventus.delivery{event=\"Ping\" handler=\"<runtime>\""),
        "the handler's own log carries its delivery's span: {text}"
    );
}

#[test]
fn pyventus_debug_in_the_environment_turns_debug_on_by_default() {
    const CHILD: &str = "PYVENTUS_TEST_DEBUG_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let linker = EventLinker::new();
        assert!(linker.is_debug());
        assert!(emitter(&linker, InlineProcessingService::default()).is_debug());
        assert!(
            !EventLinker::builder().debug(false).build().is_debug(),
            "an explicit flag wins"
        );
        return;
    }
    // The variable is read once per process: check it in a fresh one.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pyventus_debug_in_the_environment_turns_debug_on_by_default",
            "--quiet",
        ])
        .env(CHILD, "1")
        .env("PYVENTUS_DEBUG", "true")
        .status()
        .unwrap();
    assert!(status.success());
}
