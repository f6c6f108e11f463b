//! The workflow of one subscriber: run the event callback; its `Ok` value goes to
//! the success callback (or the linker's default), its error or panic to the
//! failure callback (or the linker's default) and is logged. Nothing a callback
//! does, panics included, escapes this module: the outcome comes back as a value.
//!
//! - `Workflow` (this file): a subscriber's callbacks and state (active,
//!   claimed, removed); `Dispatch`, one event as one emission's subscribers
//!   receive it; `Run`, one subscriber running in one delivery.
//! - `output`: [`HandlerOutput`](crate::HandlerOutput), how a handler's return
//!   value becomes its outcome.
//! - `extract`: what a handler takes beyond its event ([`State`](crate::State),
//!   [`FromDelivery`](crate::FromDelivery)), read from a
//!   [`DeliveryContext`](crate::DeliveryContext).
//!
//! It reports to `observe` (spans, logs, metrics) and knows events; nothing of
//! the registry, the linker or the emissions that run it.

pub(crate) mod extract;
pub(crate) mod output;

use std::any::{Any, TypeId};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::event::key::TypeInfo;
use crate::observe::trace::{self, Handled};
use crate::resilience::{DeadLetter, DeadLetterSink, Exhausted, Layers, Policy, attempt};
use crate::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use crate::workflow::output::HandlerOutput;
use crate::{AnyEvent, HandlerPanic};

/// What an async callback whose run never started (its subscriber's gate
/// was closed) resolves to, in place of an `Ok` value: settled as nothing.
pub(crate) struct Skipped;

/// A handler's `Ok` value, boxed for the success callback.
pub(crate) type OkValue = Box<dyn Any + Send>;

/// What an async event callback resolves to: its `Ok` value (`None` for `()`,
/// which then costs nothing), or its error.
pub type Outcome = Result<Option<OkValue>, anyhow::Error>;

/// How one subscriber's run ended: `Err` carries the failure its callbacks
/// already saw, for whoever must act on it (a worker deciding to retry).
pub(crate) type Settled = Result<(), anyhow::Error>;

/// The outcome of a handler that returned `value`.
#[inline]
#[allow(clippy::unnecessary_wraps)] // an `Outcome`, as every handler's is
pub(crate) fn ok<T: Send + 'static>(value: T) -> Outcome {
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

const ACTIVE: u8 = 0;
const CLAIMED: u8 = 1;
const REMOVED: u8 = 2;

/// Who a subscriber is, where its outcomes go, and whether it is still
/// subscribed.
///
/// Concurrency: immutable once built except for its state, one atomic byte,
/// and when it was removed. A one-time subscriber is claimed with a
/// compare-and-swap, so exactly one emission wins it however many threads
/// emit at once; a removed subscriber is a tombstone in the versions of the
/// large lists made after its removal, and live in those made before.
pub(crate) struct Workflow {
    pub(crate) id: u64,
    pub(crate) handler_id: Option<&'static str>,
    pub(crate) success: Option<SuccessCallback>,
    pub(crate) failure: Option<FailureCallback>,
    /// Whether an `Ok` value goes anywhere (its own success callback, or the
    /// linker's default): read once per call instead of two options.
    pub(crate) notify_success: bool,
    /// Whether it runs under a policy (its failures may be attempts to retry):
    /// read only when it fails.
    pub(crate) resilient: bool,
    state: AtomicU8,
    /// When it was removed, by the lists' clock (the registry's
    /// `list::removal`); 0 while
    /// subscribed.
    removed_at: AtomicU64,
}

impl Workflow {
    pub(crate) fn new(
        id: u64,
        handler_id: Option<&'static str>,
        success: Option<SuccessCallback>,
        failure: Option<FailureCallback>,
        default_success: bool,
        resilient: bool,
    ) -> Self {
        Workflow {
            id,
            handler_id,
            notify_success: success.is_some() || default_success,
            resilient,
            success,
            failure,
            state: AtomicU8::new(ACTIVE),
            removed_at: AtomicU64::new(0),
        }
    }

    /// Wins a one-time subscriber for the calling emission. Exactly one caller
    /// ever gets `true`.
    #[inline]
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(ACTIVE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Marks the subscriber removed, dated by its first removal (the
    /// registry's lock serializes them): `date` takes that date from the
    /// lists' clock, only for the first.
    pub(crate) fn deactivate(&self, date: impl FnOnce() -> u64) {
        if self.removed_at.load(Ordering::Relaxed) == 0 {
            self.removed_at.store(date(), Ordering::Relaxed);
        }
        self.state.store(REMOVED, Ordering::Release);
    }

    /// Whether the subscriber is neither removed nor claimed.
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.state.load(Ordering::Acquire) == ACTIVE
    }

    /// Whether a version of a list made at `made` runs it: not claimed, and
    /// not removed by then.
    #[inline]
    pub(crate) fn is_live_in(&self, made: u64) -> bool {
        match self.state.load(Ordering::Acquire) {
            ACTIVE => true,
            REMOVED => self.removed_at.load(Ordering::Relaxed) > made,
            _ => false,
        }
    }

    pub(crate) fn handler(&self) -> &'static str {
        self.handler_id.unwrap_or("<runtime>")
    }
}

/// What the workflow needs of a linker: its name (for logs) and its default
/// callbacks, for subscribers without their own.
pub(crate) struct LinkerSettings {
    pub(crate) name: std::borrow::Cow<'static, str>,
    pub(crate) default_success: Option<DefaultSuccess>,
    pub(crate) default_failure: Option<FailureCallback>,
    /// The level a failure a callback handled is logged at (`None`: not at
    /// all); one no callback handled is always an error.
    pub(crate) handled_failures: Option<tracing::Level>,
    /// The values provided to the linker, for handlers that take a `State`.
    pub(crate) states: extract::States,
    /// Where deliveries a handler's policy gave up on go.
    pub(crate) dead_letters: DeadLetterSink,
    /// What wraps the handlers subscribed at run time.
    pub(crate) middleware: Layers,
    /// The policy of the handlers without one of their own.
    pub(crate) default_policy: Option<Policy>,
}

/// One event as the subscribers of one emission receive it, and where it runs.
/// Not public API.
#[doc(hidden)]
pub(crate) struct Dispatch<'a> {
    pub(crate) event: &'a AnyEvent,
    /// The shared event, when the emission owns one (not on the inline fast path).
    pub(crate) shared: Option<&'a Arc<AnyEvent>>,
    pub(crate) linker: &'a LinkerSettings,
    /// The emission's id; `None` on the inline fast path, which builds no emission.
    pub(crate) emission: Option<u64>,
    pub(crate) debug: bool,
    /// The span current where the event was emitted, when the delivery runs
    /// elsewhere (a task, a thread); `None`: the current span, here.
    pub(crate) parent: Option<&'a tracing::Span>,
    /// What the inline fast path ran, for its metrics (nothing without the
    /// `metrics` feature).
    pub(crate) tally: Tally,
}

impl<'a> Dispatch<'a> {
    /// The delivery of a borrowed event, outside any emission.
    #[inline]
    pub(crate) fn borrowed(event: &'a AnyEvent, linker: &'a LinkerSettings) -> Self {
        Dispatch {
            event,
            shared: None,
            linker,
            emission: None,
            debug: false,
            parent: None,
            tally: Tally::started(),
        }
    }

    /// The delivery of an event an emission shares.
    pub(crate) fn shared(
        event: &'a Arc<AnyEvent>,
        linker: &'a LinkerSettings,
        emission: u64,
        debug: bool,
        parent: &'a tracing::Span,
    ) -> Self {
        Dispatch {
            event: &**event,
            shared: Some(event),
            linker,
            emission: Some(emission),
            debug,
            parent: Some(parent),
            tally: Tally::new(),
        }
    }

    /// The event's payload: the typed event itself, or a named event's payload.
    #[inline]
    pub(crate) fn payload(&self) -> &'a (dyn Any + Send + Sync) {
        self.event.payload()
    }
}

/// One subscriber running in one delivery: what a callback reports its outcome
/// to. Two pointers, passed in registers. Not public API.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Run<'a> {
    workflow: &'a Workflow,
    pub(crate) delivery: &'a Dispatch<'a>,
}

impl<'a> Run<'a> {
    #[inline]
    pub(crate) fn new(workflow: &'a Workflow, delivery: &'a Dispatch<'a>) -> Self {
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
        if self.workflow.notify_success {
            self.succeed_boxed(boxed_value(value));
        }
    }

    /// Hands `()` on (a lane's handler that returned nothing).
    #[cold]
    pub(crate) fn succeed_unit(self) {
        self.succeed_boxed(None);
    }

    fn succeed_boxed(self, value: Option<OkValue>) {
        if let Some(success) = &self.workflow.success {
            self.contain("success callback", || (success.call)(unbox(value)));
        } else if let Some(default) = &self.delivery.linker.default_success {
            self.contain("default success callback", || match &value {
                Some(value) => default(&**value),
                None => default(&()),
            });
        }
    }

    /// Settles an async callback's outcome.
    pub(crate) fn settle(self, outcome: Outcome) -> Settled {
        match outcome {
            // A run its gate refused never started: nothing to settle.
            Ok(Some(value)) if value.is::<Skipped>() => Ok(()),
            Ok(value) => {
                self.succeed_boxed(value);
                Ok(())
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Logs a failure and hands it to the failure callback (or the default),
    /// then gives it back.
    ///
    /// A subscriber with a policy: the failure of an attempt the policy will
    /// retry goes back to the retry loop untouched; the last one gets
    /// [`Exhausted`] as its context, and also goes to the dead-letter sink.
    #[cold]
    #[inline(never)]
    pub(crate) fn fail(self, err: anyhow::Error) -> anyhow::Error {
        let mut exhausted = None;
        let err = match self.attempt() {
            None => err,
            Some(attempt) if !attempt.last => return err,
            Some(attempt) => {
                let context = Exhausted::of(attempt.number, &err);
                crate::observe::exhausted(
                    self.delivery.event.name(),
                    self.workflow.handler(),
                    context.reason().label(),
                );
                exhausted = Some(context);
                err.context(context)
            }
        };
        let failure = self.workflow.failure.as_ref().or(self
            .delivery
            .linker
            .default_failure
            .as_ref());
        // Reported once: as an error when nothing handles it, at the linker's
        // level for handled failures when a callback does.
        let handled = match failure {
            Some(_) => Handled::Yes(self.delivery.linker.handled_failures),
            None => Handled::No,
        };
        trace::failure(handled, &self.subscriber(), &err);
        if let Some(failure) = failure {
            self.contain("failure callback", || failure(&err));
        }
        if let Some(exhausted) = exhausted {
            self.dead_letter(&err, exhausted);
        }
        err
    }

    /// The attempt of this subscriber's policy this thread is running, if it
    /// has a policy.
    fn attempt(self) -> Option<attempt::Attempt> {
        if self.workflow.resilient {
            attempt::of(self.workflow.id)
        } else {
            None
        }
    }

    /// Hands a delivery the policy gave up on to the linker's dead-letter sink.
    fn dead_letter(self, err: &anyhow::Error, exhausted: Exhausted) {
        let (Some(sink), Some(event)) = (
            self.delivery.linker.dead_letters.get(),
            self.delivery.shared,
        ) else {
            return;
        };
        let letter = DeadLetter {
            event,
            error: err,
            exhausted,
            handler: self.workflow.handler_id,
            subscriber: self.workflow.id,
            emission: self.delivery.emission,
        };
        self.contain("dead-letter sink", || sink(&letter));
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

    /// Who this run is, as its span and its failure's log name it.
    fn subscriber(self) -> trace::Subscriber<'a> {
        trace::Subscriber {
            event: self.delivery.event,
            handler: self.workflow.handler(),
            id: self.workflow.id,
            emission: self.delivery.emission,
        }
    }

    /// The span this subscriber's delivery runs in.
    pub(crate) fn span(self) -> tracing::Span {
        trace::delivery_span(
            &self.subscriber(),
            self.delivery.parent,
            self.delivery.debug,
        )
    }

    /// Enters the delivery's span and says the subscriber starts.
    pub(crate) fn start(self) -> tracing::span::EnteredSpan {
        let span = self.span().entered();
        trace::started(self.delivery.debug);
        span
    }
}

pub(crate) use crate::observe::Tally;

/// The error a panic becomes.
pub(crate) fn panic_error(payload: &(dyn Any + Send)) -> anyhow::Error {
    anyhow::Error::new(HandlerPanic::from_payload(payload))
}
