//! The workflow of one subscriber: run the event callback; its `Ok` value goes to
//! the success callback (or the linker's default), its error or panic to the
//! failure callback (or the linker's default), and every failure is logged at
//! error level. Nothing a callback does, panics included, escapes this module.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::FutureExt;

use crate::callback::{Delivery, EventCallback, OkValue, Outcome, boxed_value, unbox};
use crate::handler::HandlerOutput;
use crate::linker::LinkerShared;
use crate::subscriber::SubscriberInner;
use crate::{AnyEvent, HandlerPanic};

/// Where a subscriber runs: its linker (for the default callbacks) and, for
/// logging, the emission.
pub(crate) struct RunContext<'a> {
    pub(crate) linker: &'a LinkerShared,
    /// The emission's id; `None` on the inline fast path, which builds no emission.
    pub(crate) emission: Option<u64>,
    pub(crate) debug: bool,
    /// Whether the linker has a default success callback, read once per emission.
    has_default_success: bool,
    /// Where failures are also recorded, for a caller that must know (a worker).
    pub(crate) failures: Option<&'a FailureLog>,
}

/// The failures of one emission, for whoever must decide on them (a worker
/// acknowledges an entry only if none of its handlers failed).
#[derive(Default)]
pub(crate) struct FailureLog {
    count: std::sync::atomic::AtomicUsize,
    first: std::sync::Mutex<Option<String>>,
}

impl FailureLog {
    fn record(&self, handler: &str, err: &anyhow::Error) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert_with(|| format!("handler `{handler}` failed: {err:#}"));
    }

    /// How many subscribers failed, and the first failure.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn summary(&self) -> Option<(usize, String)> {
        let count = self.count.load(std::sync::atomic::Ordering::SeqCst);
        let first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (count > 0).then(|| (count, first.clone().unwrap_or_default()))
    }
}

impl<'a> RunContext<'a> {
    pub(crate) fn new(linker: &'a LinkerShared, emission: Option<u64>, debug: bool) -> Self {
        RunContext {
            failures: None,
            linker,
            emission,
            debug,
            has_default_success: linker.default_success.is_some(),
        }
    }
}

/// One subscriber running in one emission: what a callback reports its outcome
/// to. Two pointers, passed in registers.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Run<'a> {
    sub: &'a SubscriberInner,
    pub(crate) delivery: &'a Delivery<'a>,
}

impl<'a> Run<'a> {
    #[inline]
    pub(crate) fn new(sub: &'a SubscriberInner, delivery: &'a Delivery<'a>) -> Self {
        Run { sub, delivery }
    }

    /// Runs a handler call and settles its outcome.
    #[inline]
    pub(crate) fn deliver<R: HandlerOutput>(self, call: impl FnOnce() -> R) {
        match catch_unwind(AssertUnwindSafe(|| call().into_result())) {
            Ok(Ok(value)) => self.succeed(value),
            Ok(Err(err)) => self.fail(&err),
            Err(panic) => self.fail(&panic_error(&*panic)),
        }
    }

    /// Hands an `Ok` value on. Without a success callback to take it (the common
    /// case) this is two checks; the value is never boxed.
    #[inline]
    fn succeed<T: Send + 'static>(self, value: T) {
        if self.sub.success.is_some() || self.delivery.cx.has_default_success {
            self.succeed_boxed(boxed_value(value));
        }
    }

    fn succeed_boxed(self, value: Option<OkValue>) {
        if let Some(success) = &self.sub.success {
            self.contain("success callback", || (success.call)(unbox(value)));
        } else if let Some(default) = &self.delivery.cx.linker.default_success {
            self.contain("default success callback", || match &value {
                Some(value) => default(&**value),
                None => default(&()),
            });
        }
    }

    fn settle(self, outcome: Outcome) {
        match outcome {
            Ok(value) => self.succeed_boxed(value),
            Err(err) => self.fail(&err),
        }
    }

    /// Logs a failure and hands it to the failure callback (or the default).
    #[cold]
    #[inline(never)]
    pub(crate) fn fail(self, err: &anyhow::Error) {
        tracing::error!(
            target: "pyventus",
            event = self.delivery.event.name(),
            subscriber = self.sub.id,
            handler = self.sub.handler_id.unwrap_or("<runtime>"),
            emission = ?self.delivery.cx.emission,
            "event callback failed: {err:#}"
        );
        if let Some(log) = self.delivery.cx.failures {
            log.record(self.sub.handler_id.unwrap_or("<runtime>"), err);
        }
        let failure =
            self.sub
                .failure
                .as_ref()
                .or(self.delivery.cx.linker.default_failure.as_ref());
        if let Some(failure) = failure {
            self.contain("failure callback", || failure(err));
        }
    }

    fn contain(self, what: &str, f: impl FnOnce()) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
            tracing::error!(
                target: "pyventus",
                subscriber = self.sub.id,
                emission = ?self.delivery.cx.emission,
                "{what} panicked: {}",
                HandlerPanic::from_payload(&*panic).message()
            );
        }
    }
}

/// Runs a synchronous subscriber to completion.
#[inline]
pub(crate) fn run_sync(sub: &SubscriberInner, delivery: &Delivery<'_>) {
    let run = Run { sub, delivery };
    if delivery.cx.debug {
        trace_start(sub, delivery.event, delivery.cx);
    }
    match &sub.callback {
        EventCallback::Typed(f, _) | EventCallback::Borrowed(f) => f(run),
        EventCallback::Shared(f) if delivery.shared.is_some() => f(run),
        // The emitter only borrows when every subscriber can run on a borrow, and
        // only calls this for synchronous ones; reaching here is a bug in pyventus.
        EventCallback::Shared(_) | EventCallback::Async(_) => run.fail(&anyhow::anyhow!(
            "pyventus internal error: subscriber {} was run on the wrong path",
            sub.id
        )),
    }
}

/// Runs an asynchronous subscriber to completion.
pub(crate) async fn run_async(
    sub: Arc<SubscriberInner>,
    event: Arc<AnyEvent>,
    linker: Arc<LinkerShared>,
    emission: u64,
    debug: bool,
    failures: Option<Arc<FailureLog>>,
) {
    let mut cx = RunContext::new(&linker, Some(emission), debug);
    cx.failures = failures.as_deref();
    let delivery = Delivery::of_shared(&event, &cx);
    let EventCallback::Async(f) = &sub.callback else {
        run_sync(&sub, &delivery);
        return;
    };
    if debug {
        trace_start(&sub, &*event, &cx);
    }
    let run = Run {
        sub: &sub,
        delivery: &delivery,
    };
    let outcome = match catch_unwind(AssertUnwindSafe(|| f(event.clone()))) {
        Ok(fut) => AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panic_error(&*panic))),
        Err(panic) => Err(panic_error(&*panic)),
    };
    run.settle(outcome);
}

fn panic_error(payload: &(dyn Any + Send)) -> anyhow::Error {
    anyhow::Error::new(HandlerPanic::from_payload(payload))
}

#[cold]
fn trace_start(sub: &SubscriberInner, event: &AnyEvent, cx: &RunContext<'_>) {
    tracing::debug!(
        target: "pyventus",
        event = event.name(),
        subscriber = sub.id,
        handler = sub.handler_id.unwrap_or("<runtime>"),
        emission = ?cx.emission,
        linker = %cx.linker.name,
        "executing subscriber"
    );
}
