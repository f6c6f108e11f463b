//! The workflow of one subscriber: run the event callback; its `Ok` value goes to
//! the success callback (or the linker's default), its error or panic to the
//! failure callback (or the linker's default), and every failure is logged at
//! error level. Nothing a callback does, panics included, escapes this module.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::FutureExt;

use crate::callback::{EventCallback, Outcome};
use crate::linker::LinkerShared;
use crate::subscriber::SubscriberInner;
use crate::{AnyEvent, HandlerPanic};

/// The event as a subscriber gets it: borrowed from the emitter's caller (inline
/// fast path) or shared by an emission.
#[derive(Clone, Copy)]
pub(crate) enum EventRef<'a> {
    Borrowed(&'a AnyEvent),
    Shared(&'a Arc<AnyEvent>),
}

impl EventRef<'_> {
    fn get(&self) -> &AnyEvent {
        match self {
            EventRef::Borrowed(e) => *e,
            EventRef::Shared(e) => &***e,
        }
    }
}

/// Where a subscriber runs: its linker (for the default callbacks) and, for
/// logging, the emission.
pub(crate) struct RunContext<'a> {
    pub(crate) linker: &'a LinkerShared,
    pub(crate) emission: u64,
    pub(crate) debug: bool,
}

/// Runs a synchronous subscriber to completion.
#[inline]
pub(crate) fn run_sync(sub: &SubscriberInner, event: EventRef<'_>, cx: &RunContext<'_>) {
    if cx.debug {
        trace_start(sub, event.get(), cx);
    }
    let outcome = match (&sub.callback, event) {
        (EventCallback::Borrowed(f), ev) => contain_call(|| f(ev.get())),
        (EventCallback::Shared(f), EventRef::Shared(ev)) => contain_call(|| f(ev)),
        // The emitter only borrows when every subscriber can run on a borrow, and
        // only calls this for synchronous ones; reaching here is a bug in pyventus.
        (EventCallback::Shared(_) | EventCallback::Async(_), _) => Err(anyhow::anyhow!(
            "pyventus internal error: subscriber {} was run on the wrong path",
            sub.id
        )),
    };
    finish(sub, event.get(), outcome, cx);
}

/// Runs an asynchronous subscriber to completion.
pub(crate) async fn run_async(
    sub: Arc<SubscriberInner>,
    event: Arc<AnyEvent>,
    linker: Arc<LinkerShared>,
    emission: u64,
    debug: bool,
) {
    let cx = RunContext {
        linker: &linker,
        emission,
        debug,
    };
    if debug {
        trace_start(&sub, &*event, &cx);
    }
    let EventCallback::Async(f) = &sub.callback else {
        run_sync(&sub, EventRef::Shared(&event), &cx);
        return;
    };
    let outcome = match catch_unwind(AssertUnwindSafe(|| f(event.clone()))) {
        Ok(fut) => AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panic_error(&*panic))),
        Err(panic) => Err(panic_error(&*panic)),
    };
    finish(&sub, &*event, outcome, &cx);
}

#[inline]
fn contain_call(f: impl FnOnce() -> Outcome) -> Outcome {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| Err(panic_error(&*panic)))
}

fn panic_error(payload: &(dyn Any + Send)) -> anyhow::Error {
    anyhow::Error::new(HandlerPanic::from_payload(payload))
}

#[inline]
fn finish(sub: &SubscriberInner, event: &AnyEvent, outcome: Outcome, cx: &RunContext<'_>) {
    match outcome {
        Ok(value) => {
            if let Some(success) = &sub.success {
                contain_callback(sub, event, "success callback", || (success.call)(value));
            } else if let Some(default) = &cx.linker.default_success {
                contain_callback(sub, event, "default success callback", || default(&*value));
            }
        }
        Err(err) => fail(sub, event, &err, cx),
    }
}

#[cold]
fn fail(sub: &SubscriberInner, event: &AnyEvent, err: &anyhow::Error, cx: &RunContext<'_>) {
    tracing::error!(
        target: "pyventus",
        event = event.name(),
        subscriber = sub.id,
        handler = sub.handler_id.unwrap_or("<runtime>"),
        emission = cx.emission,
        "event callback failed: {err:#}"
    );
    if let Some(failure) = sub.failure.as_ref().or(cx.linker.default_failure.as_ref()) {
        contain_callback(sub, event, "failure callback", || failure(err));
    }
}

fn contain_callback(sub: &SubscriberInner, event: &AnyEvent, what: &str, f: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        tracing::error!(
            target: "pyventus",
            event = event.name(),
            subscriber = sub.id,
            "{what} panicked: {}",
            HandlerPanic::from_payload(&*panic).message()
        );
    }
}

#[cold]
fn trace_start(sub: &SubscriberInner, event: &AnyEvent, cx: &RunContext<'_>) {
    tracing::debug!(
        target: "pyventus",
        event = event.name(),
        subscriber = sub.id,
        handler = sub.handler_id.unwrap_or("<runtime>"),
        emission = cx.emission,
        linker = %cx.linker.name,
        "executing subscriber"
    );
}
