//! The in-process dead letters: what a linker's sink receives when a handler's
//! policy gave up, and the sink itself.

use std::sync::Arc;

use super::Exhausted;
use crate::AnyEvent;
use crate::sync::{Mutex, PoisonError};

/// A delivery a handler's [`Policy`](super::Policy) gave up on, as the linker's
/// dead-letter sink receives it: the event, the last error, the attempts and
/// why, and who the handler was. The sink runs once per exhausted delivery,
/// right after the failure callback, on the thread that ran the last attempt;
/// it may keep [`event`](Self::event) (an `Arc`) to retry or store it.
///
/// Set it with [`EventLinkerBuilder::dead_letters`](crate::EventLinkerBuilder::dead_letters)
/// or [`EventLinker::set_dead_letters`](crate::EventLinker::set_dead_letters).
///
/// # Examples
///
/// ```
/// use pyventus_core::resilience::{DeadLetter, FailureReason, Policy};
/// use pyventus_core::{AnyEvent, EventEmitter, EventLinker, InlineProcessingService};
/// use std::sync::{Arc, Mutex};
///
/// let parked: Arc<Mutex<Vec<(Arc<AnyEvent>, u32)>>> = Arc::default();
/// let park = parked.clone();
/// let linker = EventLinker::builder()
///     .dead_letters(move |letter: &DeadLetter<'_>| {
///         park.lock().unwrap().push((letter.event().clone(), letter.exhausted().attempts()));
///     })
///     .build();
/// linker
///     .on_named("Sync")
///     .policy(Policy::new().retries(1).backoff(Default::default(), Default::default()))
///     .subscribe(|| -> anyhow::Result<()> { anyhow::bail!("remote down") })?;
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit_named("Sync", 7_u32)?;
/// let parked = parked.lock().unwrap();
/// assert_eq!(parked.len(), 1);
/// assert_eq!(parked[0].0.downcast_ref::<u32>(), Some(&7));
/// assert_eq!(parked[0].1, 2);
/// # Ok::<(), pyventus_core::Error>(())
/// ```
pub struct DeadLetter<'a> {
    pub(crate) event: &'a Arc<AnyEvent>,
    pub(crate) error: &'a anyhow::Error,
    pub(crate) exhausted: Exhausted,
    pub(crate) handler: Option<&'static str>,
    pub(crate) subscriber: u64,
    pub(crate) emission: Option<u64>,
}

impl DeadLetter<'_> {
    /// The event the handler gave up on.
    pub fn event(&self) -> &Arc<AnyEvent> {
        self.event
    }

    /// The last attempt's error, with [`Exhausted`] as its context (as the
    /// failure callback received it).
    pub fn error(&self) -> &anyhow::Error {
        self.error
    }

    /// How many attempts ran, and why the last one failed.
    pub fn exhausted(&self) -> Exhausted {
        self.exhausted
    }

    /// The handler's id (`module::path::function`), for a link-time handler.
    pub fn handler_id(&self) -> Option<&'static str> {
        self.handler
    }

    /// The subscriber's id ([`EventSubscriber::id`](crate::EventSubscriber::id)).
    pub fn subscriber_id(&self) -> u64 {
        self.subscriber
    }

    /// The emission's id ([`CurrentEmission::id`](crate::CurrentEmission::id)).
    pub fn emission_id(&self) -> Option<u64> {
        self.emission
    }
}

impl std::fmt::Debug for DeadLetter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("event", &self.event.name())
            .field("handler", &self.handler)
            .field("subscriber", &self.subscriber)
            .field("emission", &self.emission)
            .field("exhausted", &self.exhausted)
            .field("error", &format_args!("{:#}", self.error))
            .finish()
    }
}

/// A dead-letter sink, erased.
pub(crate) type SinkFn = Arc<dyn Fn(&DeadLetter<'_>) + Send + Sync>;

/// A linker's dead-letter sink, replaceable at run time.
///
/// Concurrency: a lock around the sink, held only to clone or replace the
/// `Arc`, never while the sink runs.
#[derive(Default)]
pub(crate) struct DeadLetterSink(Mutex<Option<SinkFn>>);

impl DeadLetterSink {
    pub(crate) fn new(sink: Option<SinkFn>) -> Self {
        DeadLetterSink(Mutex::new(sink))
    }

    /// The sink, if any.
    pub(crate) fn get(&self) -> Option<SinkFn> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the sink; the previous one drops after the lock is released.
    pub(crate) fn set(&self, sink: Option<SinkFn>) -> Option<SinkFn> {
        std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            sink,
        )
    }
}
