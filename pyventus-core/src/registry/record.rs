//! A subscriber's record: its callbacks and kind, as the registry stores it and
//! emissions run it. Its state lives in its `Workflow`, which lanes share.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::EventKey;
use crate::lifecycle::gate::Gate;
use crate::registry::callback::EventCallback;
use crate::registry::list::Live;
use crate::workflow::extract::StateNeed;
use crate::workflow::{FailureCallback, SuccessCallback, Workflow};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct SubscriberInner {
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) once: bool,
    /// Whether the subscriber is linked to the global event and to other events
    /// (an emission then dedupes it).
    pub(crate) global_and_more: bool,
    pub(crate) blocking: bool,
    pub(crate) callback: EventCallback,
    /// The states its handler takes (a link-time handler's; a closure
    /// captures what it needs).
    pub(crate) needs: &'static [Option<StateNeed>],
    /// A guarded subscriber's gate (its callback passes it): closed when it
    /// is unsubscribed by hand, so that no run starts after that returns.
    pub(crate) gate: Option<Arc<Gate>>,
    /// Whether it answers a request: one of its type's responders, or its only one.
    pub(crate) responder: Option<Responder>,
}

/// How a request's responders may share it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Responder {
    /// The request's only responder: a second is refused.
    Only,
    /// One of several (a request asked with `collect`).
    OneOf,
}

/// What goes into a subscriber, gathered by a subscription builder.
pub(crate) struct SubscriberParts {
    pub(crate) once: bool,
    pub(crate) blocking: bool,
    pub(crate) handler_id: Option<&'static str>,
    pub(crate) callback: EventCallback,
    pub(crate) success: Option<SuccessCallback>,
    pub(crate) failure: Option<FailureCallback>,
    pub(crate) needs: &'static [Option<StateNeed>],
    pub(crate) gate: Option<Arc<Gate>>,
    pub(crate) responder: Option<Responder>,
}

impl SubscriberParts {
    /// A request's responder: its callback, behind a gate of its own (a
    /// request waiting for it learns at once that it was unsubscribed).
    pub(crate) fn responder(
        callback: EventCallback,
        handler_id: Option<&'static str>,
        responder: Responder,
    ) -> Self {
        let gate = Gate::new();
        SubscriberParts {
            once: false,
            blocking: false,
            handler_id,
            callback: callback.gated(gate.clone()),
            success: None,
            failure: None,
            needs: &[],
            gate: Some(gate),
            responder: Some(responder),
        }
    }
}

impl SubscriberInner {
    /// A subscriber of a linker that has (or not) a default success callback.
    pub(crate) fn new(parts: SubscriberParts, keys: &[EventKey], default_success: bool) -> Self {
        let resilient = matches!(parts.callback, EventCallback::Resilient(_));
        SubscriberInner {
            workflow: Arc::new(Workflow::new(
                NEXT_ID.fetch_add(1, Ordering::Relaxed),
                parts.handler_id,
                parts.success,
                parts.failure,
                default_success,
                resilient,
            )),
            once: parts.once,
            global_and_more: keys.len() > 1 && keys.iter().any(EventKey::is_any),
            blocking: parts.blocking,
            callback: parts.callback,
            needs: parts.needs,
            gate: parts.gate,
            responder: parts.responder,
        }
    }

    /// The subscriber's process-unique id.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.workflow.id
    }

    pub(crate) fn handler_id(&self) -> Option<&'static str> {
        self.workflow.handler_id
    }

    /// Wins a one-time subscriber for the calling emission. Exactly one caller
    /// ever gets `true`.
    #[inline]
    pub(crate) fn claim(&self) -> bool {
        self.workflow.claim()
    }

    /// Marks the subscriber removed, dated by the lists' clock.
    pub(crate) fn deactivate(&self) {
        self.workflow.deactivate(crate::registry::list::removal);
        if let Some(gate) = &self.gate {
            gate.unlinked();
        }
    }

    /// Who it is, as an error names it.
    pub(crate) fn describe(&self) -> String {
        match self.handler_id() {
            Some(id) => format!("`{id}`"),
            None => "a runtime responder".to_owned(),
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.workflow.is_live()
    }
}

impl Live for Arc<SubscriberInner> {
    #[inline]
    fn is_live_in(&self, made: u64) -> bool {
        self.workflow.is_live_in(made)
    }
}
