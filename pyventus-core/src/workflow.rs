//! The workflow of one subscriber: run the event callback; its `Ok` value goes to
//! the success callback (or the linker's default), its error or panic to the
//! failure callback (or the linker's default) and is logged. Nothing a callback
//! does, panics included, escapes this module: the outcome comes back as a value.

use std::any::{Any, TypeId};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::key::TypeInfo;
use crate::output::HandlerOutput;
use crate::{AnyEvent, HandlerPanic};

/// A handler's `Ok` value, boxed for the success callback.
pub type OkValue = Box<dyn Any + Send>;

/// What an async event callback resolves to: its `Ok` value (`None` for `()`,
/// which then costs nothing), or its error.
pub type Outcome = Result<Option<OkValue>, anyhow::Error>;

/// How one subscriber's run ended: `Err` carries the failure its callbacks
/// already saw, for whoever must act on it (a worker deciding to retry).
pub(crate) type Settled = Result<(), anyhow::Error>;

/// The outcome of a handler that returned `value`.
#[inline]
pub fn ok<T: Send + 'static>(value: T) -> Outcome {
    Ok(boxed_value(value))
}

#[inline]
fn boxed_value<T: Send + 'static>(value: T) -> Option<OkValue> {
    if TypeId::of::<T>() == TypeId::of::<()>() {
        None
    } else {
        Some(Box::new(value))
    }
}

/// The `Ok` value as the success callbacks take it.
fn unbox(value: Option<OkValue>) -> OkValue {
    value.unwrap_or_else(|| Box::new(()))
}

/// A success callback, erased, with the `Ok` type it expects (`None`: it ignores
/// the value). Not public API.
#[doc(hidden)]
#[derive(Clone)]
pub struct SuccessCallback {
    pub(crate) expects: Option<TypeInfo>,
    call: Arc<dyn Fn(OkValue) + Send + Sync>,
}

impl SuccessCallback {
    pub(crate) fn new(
        expects: Option<TypeInfo>,
        call: impl Fn(OkValue) + Send + Sync + 'static,
    ) -> Self {
        SuccessCallback {
            expects,
            call: Arc::new(call),
        }
    }
}

/// A failure callback, erased.
pub(crate) type FailureCallback = Arc<dyn Fn(&anyhow::Error) + Send + Sync>;

/// A linker's default success callback: gets every `Ok` value that has no
/// success callback of its own.
pub(crate) type DefaultSuccess = Arc<dyn Fn(&dyn Any) + Send + Sync>;

/// Who a subscriber is and where its outcomes go.
pub(crate) struct Workflow {
    pub(crate) id: u64,
    pub(crate) handler_id: Option<&'static str>,
    pub(crate) success: Option<SuccessCallback>,
    pub(crate) failure: Option<FailureCallback>,
}

impl Workflow {
    pub(crate) fn handler(&self) -> &'static str {
        self.handler_id.unwrap_or("<runtime>")
    }
}

/// A linker's default callbacks, for subscribers without their own.
#[derive(Default, Clone)]
pub(crate) struct Defaults {
    pub(crate) success: Option<DefaultSuccess>,
    pub(crate) failure: Option<FailureCallback>,
}

/// One event as the subscribers of one emission receive it, and where it runs.
/// The payload is resolved once per emission, so each subscriber's downcast is a
/// single type check. Not public API.
#[doc(hidden)]
pub struct Delivery<'a> {
    pub(crate) event: &'a AnyEvent,
    pub(crate) payload: &'a (dyn Any + Send + Sync),
    /// The shared event, when the emission owns one (not on the inline fast path).
    pub(crate) shared: Option<&'a Arc<AnyEvent>>,
    pub(crate) defaults: &'a Defaults,
    /// The emission's id; `None` on the inline fast path, which builds no emission.
    pub(crate) emission: Option<u64>,
    pub(crate) debug: bool,
    /// The linker's name, for logs.
    pub(crate) linker: &'a str,
}

impl<'a> Delivery<'a> {
    /// The delivery of a borrowed event, outside any emission.
    #[inline]
    pub(crate) fn borrowed(event: &'a AnyEvent, defaults: &'a Defaults, linker: &'a str) -> Self {
        Delivery {
            event,
            payload: event.payload(),
            shared: None,
            defaults,
            emission: None,
            debug: false,
            linker,
        }
    }

    /// The delivery of an event an emission shares.
    pub(crate) fn shared(
        event: &'a Arc<AnyEvent>,
        defaults: &'a Defaults,
        linker: &'a str,
        emission: u64,
        debug: bool,
    ) -> Self {
        Delivery {
            event: &**event,
            payload: event.payload(),
            shared: Some(event),
            defaults,
            emission: Some(emission),
            debug,
            linker,
        }
    }
}

/// One subscriber running in one delivery: what a callback reports its outcome
/// to. Two pointers, passed in registers. Not public API.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Run<'a> {
    workflow: &'a Workflow,
    pub(crate) delivery: &'a Delivery<'a>,
}

impl<'a> Run<'a> {
    #[inline]
    pub(crate) fn new(workflow: &'a Workflow, delivery: &'a Delivery<'a>) -> Self {
        Run { workflow, delivery }
    }

    /// Runs a handler call and settles its outcome.
    #[inline]
    pub(crate) fn deliver<R: HandlerOutput>(self, call: impl FnOnce() -> R) -> Settled {
        match catch_unwind(AssertUnwindSafe(|| call().into_result())) {
            Ok(Ok(value)) => {
                self.succeed(value);
                Ok(())
            }
            Ok(Err(err)) => Err(self.fail(err)),
            Err(panic) => Err(self.fail(panic_error(&*panic))),
        }
    }

    /// Hands an `Ok` value on. Without a success callback to take it (the common
    /// case) this is two checks; the value is never boxed.
    #[inline]
    fn succeed<T: Send + 'static>(self, value: T) {
        if self.workflow.success.is_some() || self.delivery.defaults.success.is_some() {
            self.succeed_boxed(boxed_value(value));
        }
    }

    fn succeed_boxed(self, value: Option<OkValue>) {
        if let Some(success) = &self.workflow.success {
            self.contain("success callback", || (success.call)(unbox(value)));
        } else if let Some(default) = &self.delivery.defaults.success {
            self.contain("default success callback", || match &value {
                Some(value) => default(&**value),
                None => default(&()),
            });
        }
    }

    /// Settles an async callback's outcome.
    pub(crate) fn settle(self, outcome: Outcome) -> Settled {
        match outcome {
            Ok(value) => {
                self.succeed_boxed(value);
                Ok(())
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Logs a failure and hands it to the failure callback (or the default),
    /// then gives it back.
    #[cold]
    #[inline(never)]
    pub(crate) fn fail(self, err: anyhow::Error) -> anyhow::Error {
        tracing::error!(
            target: "pyventus",
            event = self.delivery.event.name(),
            subscriber = self.workflow.id,
            handler = self.workflow.handler(),
            emission = ?self.delivery.emission,
            "event callback failed: {err:#}"
        );
        let failure = self
            .workflow
            .failure
            .as_ref()
            .or(self.delivery.defaults.failure.as_ref());
        if let Some(failure) = failure {
            self.contain("failure callback", || failure(&err));
        }
        err
    }

    fn contain(self, what: &str, f: impl FnOnce()) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
            tracing::error!(
                target: "pyventus",
                subscriber = self.workflow.id,
                handler = self.workflow.handler(),
                emission = ?self.delivery.emission,
                "{what} panicked: {}",
                HandlerPanic::from_payload(&*panic).message()
            );
        }
    }

    /// Logs, in debug mode, that the subscriber starts.
    #[inline]
    pub(crate) fn trace_start(self) {
        if self.delivery.debug {
            trace_start(self.workflow, self.delivery);
        }
    }
}

/// The error a panic becomes.
pub(crate) fn panic_error(payload: &(dyn Any + Send)) -> anyhow::Error {
    anyhow::Error::new(HandlerPanic::from_payload(payload))
}

#[cold]
fn trace_start(workflow: &Workflow, delivery: &Delivery<'_>) {
    tracing::debug!(
        target: "pyventus",
        event = delivery.event.name(),
        subscriber = workflow.id,
        handler = workflow.handler(),
        emission = ?delivery.emission,
        linker = %delivery.linker,
        "executing subscriber"
    );
}
