//! tracing: every delivery runs in a `pyventus.delivery` span with the event,
//! the handler and the emission, whose parent is the span current where the
//! event was emitted, on every processing service; a failure is logged once,
//! at `ERROR` when nothing handled it, at the linker's chosen level when a
//! callback did.

mod common;

use std::sync::Arc;

use common::{Logs, emitter};
use pyventus::{
    Event, EventLinker, ExecutorProcessingService, InlineProcessingService, TokioProcessingService,
};

#[derive(Debug, Clone, Event)]
struct Traced(u32);

/// A linker whose one handler logs, sync or async.
fn linker(asynchronous: bool) -> EventLinker {
    let linker = EventLinker::builder().debug(false).build();
    if asynchronous {
        linker
            .on::<Traced>()
            .subscribe_async(|e: Arc<Traced>| async move {
                tokio::task::yield_now().await;
                tracing::info!(n = e.0, "handled");
            })
            .unwrap();
    } else {
        linker
            .on::<Traced>()
            .subscribe(|e: &Traced| tracing::info!(n = e.0, "handled"))
            .unwrap();
    }
    linker
}

/// The line the handler logged.
fn handled_line(text: &str) -> &str {
    text.lines()
        .find(|line| line.contains("handled"))
        .unwrap_or_else(|| panic!("the handler did not log: {text}"))
}

fn assert_in_request_span(text: &str) {
    let line = handled_line(text);
    assert!(
        line.contains("request{id=7}:pyventus.delivery{event=\"Traced\" handler=\"<runtime>\""),
        "the delivery span is the request span's child: {line}"
    );
}

#[test]
fn an_inline_delivery_runs_in_a_span_under_the_emitters() {
    let (logs, _guard) = Logs::capture();
    let emitter = emitter(&linker(false), InlineProcessingService::new());
    tracing::info_span!("request", id = 7).in_scope(|| emitter.emit(Traced(1)).unwrap());
    assert_in_request_span(&logs.text());
}

#[tokio::test(flavor = "current_thread")]
async fn a_tokio_task_keeps_the_emitters_span_for_sync_and_async_handlers() {
    let (logs, _guard) = Logs::capture();
    for asynchronous in [false, true] {
        let tokio = TokioProcessingService::default();
        let emitter = emitter(&linker(asynchronous), tokio.clone());
        tracing::info_span!("request", id = 7).in_scope(|| emitter.emit(Traced(2)).unwrap());
        tokio.wait_for_tasks().await.unwrap();
        let text = logs.text();
        assert_in_request_span(&text);
        assert!(
            handled_line(&text).contains("emission="),
            "a task's delivery names its emission: {text}"
        );
    }
}

#[test]
fn an_executor_thread_keeps_the_emitters_span() {
    let (logs, _guard) = Logs::capture();
    let _pool_threads = logs.capture_threads("pyventus-executor-");
    let pool = ExecutorProcessingService::with_threads(1);
    let emitter = emitter(&linker(false), pool.clone());
    tracing::info_span!("request", id = 7).in_scope(|| emitter.emit(Traced(3)).unwrap());
    pool.wait_for_tasks().unwrap();
    assert_in_request_span(&logs.text());
}

#[test]
fn an_unhandled_failure_is_one_error_and_a_handled_one_is_logged_once_at_the_chosen_level() {
    let (logs, _guard) = Logs::capture();
    let unhandled = EventLinker::builder().debug(false).build();
    unhandled
        .on::<Traced>()
        .subscribe(|_: &Traced| -> anyhow::Result<()> { anyhow::bail!("card declined") })
        .unwrap();
    emitter(&unhandled, InlineProcessingService::new())
        .emit(Traced(4))
        .unwrap();
    let text = logs.text();
    assert_eq!(text.matches("card declined").count(), 1, "{text}");
    assert!(text.contains("ERROR"), "{text}");

    let (logs, _guard) = Logs::capture();
    let handled = EventLinker::builder()
        .debug(false)
        .default_failure(|_: &anyhow::Error| {})
        .handled_failures(Some(tracing::Level::WARN))
        .build();
    handled
        .on::<Traced>()
        .subscribe(|_: &Traced| -> anyhow::Result<()> { anyhow::bail!("card declined") })
        .unwrap();
    emitter(&handled, InlineProcessingService::new())
        .emit(Traced(5))
        .unwrap();
    let text = logs.text();
    assert_eq!(text.matches("card declined").count(), 1, "{text}");
    assert!(text.contains(" WARN") && !text.contains("ERROR"), "{text}");

    let (logs, _guard) = Logs::capture();
    let silent = EventLinker::builder()
        .debug(false)
        .default_failure(|_: &anyhow::Error| {})
        .handled_failures(None)
        .build();
    silent
        .on::<Traced>()
        .subscribe(|_: &Traced| -> anyhow::Result<()> { anyhow::bail!("card declined") })
        .unwrap();
    emitter(&silent, InlineProcessingService::new())
        .emit(Traced(6))
        .unwrap();
    assert!(!logs.text().contains("card declined"), "{}", logs.text());
}
