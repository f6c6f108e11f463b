//! Middleware: code of the user's that wraps each attempt of a handler (or of
//! every handler of a linker), to observe, enrich, time or reject its
//! deliveries.

use std::sync::Arc;
use std::time::Duration;

use crate::AnyEvent;

/// Wraps the deliveries of a handler: sees each attempt before it runs (and
/// may reject it), may give it a span that enriches what it logs, and sees
/// it after it ran (with its outcome and how long it took): observe, enrich,
/// time, reject.
///
/// Give it to one subscription with
/// [`Subscription::middleware`](crate::Subscription::middleware), or to
/// every subscription made at run time on a linker with
/// [`EventLinkerBuilder::middleware`](crate::EventLinkerBuilder::middleware).
/// A handler with middleware runs as one with a
/// [`Policy`](super::Policy) does (apart from the in-order synchronous
/// subscribers); several middlewares run `before` in the order given (the
/// linker's first) and `after` in the reverse order. Both run on the thread
/// and in the delivery's context that run the attempt
/// ([`current_emission`](crate::current_emission) answers), never under a
/// pyventus lock; a panic in either is contained and logged.
///
/// # Examples
///
/// Timing every attempt, and rejecting deliveries while a switch is off:
///
/// ```
/// use pyventus_core::resilience::{Delivery, Middleware};
/// use pyventus_core::{EventEmitter, EventLinker, InlineProcessingService};
/// use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// #[derive(Default)]
/// struct Timing {
///     attempts: AtomicU32,
/// }
///
/// impl Middleware for Timing {
///     fn after(&self, delivery: &Delivery<'_>, outcome: Result<(), &anyhow::Error>, took: Duration) {
///         self.attempts.fetch_add(1, Ordering::Relaxed);
///         println!("{} took {took:?}: ok = {}", delivery.event().name(), outcome.is_ok());
///     }
/// }
///
/// struct KillSwitch(AtomicBool);
///
/// impl Middleware for KillSwitch {
///     fn before(&self, _: &Delivery<'_>) -> anyhow::Result<()> {
///         if self.0.load(Ordering::Relaxed) {
///             anyhow::bail!("deliveries are switched off")
///         }
///         Ok(())
///     }
/// }
///
/// let timing = Arc::new(Timing::default());
/// let switch = Arc::new(KillSwitch(AtomicBool::new(false)));
/// let linker = EventLinker::builder().middleware(timing.clone()).build();
/// let rejected = Arc::new(AtomicU32::new(0));
/// let counted = rejected.clone();
/// linker
///     .on_named("Ping")
///     .middleware(switch.clone())
///     .on_failure(move |_: &anyhow::Error| {
///         counted.fetch_add(1, Ordering::Relaxed);
///     })
///     .subscribe(|| println!("pong"))?;
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit_named("Ping", ())?;
/// switch.0.store(true, Ordering::Relaxed);
/// emitter.emit_named("Ping", ())?;
/// assert_eq!(timing.attempts.load(Ordering::Relaxed), 1, "the rejected one never ran");
/// assert_eq!(rejected.load(Ordering::Relaxed), 1);
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pyventus middleware",
    label = "not a `Middleware`",
    note = "implement `pyventus::resilience::Middleware` for it (each method has a default)"
)]
pub trait Middleware: Send + Sync + 'static {
    /// Before an attempt. An `Err` rejects the delivery: the handler does not
    /// run, nothing is retried, and the error (as [`Rejected`](super::Rejected)'s
    /// source, under [`Exhausted`](super::Exhausted)) goes to the failure
    /// callback and the dead-letter sink.
    ///
    /// # Errors
    ///
    /// Why the delivery is rejected.
    fn before(&self, delivery: &Delivery<'_>) -> anyhow::Result<()> {
        let _ = delivery;
        Ok(())
    }

    /// A span to run the attempt in, to enrich what the handler logs: its
    /// fields (a tenant, an order id read from the event) show on every
    /// event the handler and pyventus log during the attempt, whose
    /// `pyventus.delivery` span becomes its child. Made with the emitting
    /// span (or the outer middleware's span) current. `None` (the default):
    /// no span of its own.
    fn span(&self, delivery: &Delivery<'_>) -> Option<tracing::Span> {
        let _ = delivery;
        None
    }

    /// After an attempt, with its outcome and how long it ran (a retry's
    /// backoff is not counted).
    fn after(&self, delivery: &Delivery<'_>, outcome: Result<(), &anyhow::Error>, took: Duration) {
        let _ = (delivery, outcome, took);
    }
}

impl<M: Middleware + ?Sized> Middleware for Arc<M> {
    fn before(&self, delivery: &Delivery<'_>) -> anyhow::Result<()> {
        (**self).before(delivery)
    }

    fn span(&self, delivery: &Delivery<'_>) -> Option<tracing::Span> {
        (**self).span(delivery)
    }

    fn after(&self, delivery: &Delivery<'_>, outcome: Result<(), &anyhow::Error>, took: Duration) {
        (**self).after(delivery, outcome, took);
    }
}

/// One attempt of one delivery, as [`Middleware`] sees it.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub(crate) event: &'a Arc<AnyEvent>,
    pub(crate) handler: Option<&'static str>,
    pub(crate) subscriber: u64,
    pub(crate) emission: u64,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
}

impl Delivery<'_> {
    /// The event being delivered.
    pub fn event(&self) -> &Arc<AnyEvent> {
        self.event
    }

    /// The handler's id (`module::path::function`), for a link-time handler.
    pub fn handler_id(&self) -> Option<&'static str> {
        self.handler
    }

    /// The subscriber's id.
    pub fn subscriber_id(&self) -> u64 {
        self.subscriber
    }

    /// The emission's id.
    pub fn emission_id(&self) -> u64 {
        self.emission
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The most attempts the handler's policy allows.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

/// Middleware, shared by the subscribers it wraps.
pub(crate) type Layers = Vec<Arc<dyn Middleware>>;
