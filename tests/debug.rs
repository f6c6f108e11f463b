//! Debug mode: per linker and per emitter, defaulting to `PYVENTUS_DEBUG`, logging
//! subscribe, remove, emit and execute through `tracing`.

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
        text.contains("DEBUG") && text.contains("subscribed"),
        "{text}"
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
        !text.contains("subscribed"),
        "the linker is not in debug mode: {text}"
    );
}

#[test]
fn without_debug_nothing_is_logged_on_success() {
    let (logs, _guard) = Logs::capture();
    let linker = EventLinker::builder().debug(false).build();
    linker.on::<Ping>().subscribe(|| {}).unwrap();
    let emitter = EventEmitter::builder().linker(linker).debug(false).build();
    emitter.emit(Ping).unwrap();
    assert_eq!(logs.text(), "");
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
