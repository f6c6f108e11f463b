//! Event emissions: one emitted event with its subscribers, ready to run, and
//! what running it reports.
//!
//! [`EventEmission`] is the emission and its options (this file); the jobs it
//! does live beside it: `subscribers` picks who runs (the event's and the
//! global event's, claiming one-time ones), `run` runs them (synchronous ones
//! in place, the others as tasks or on blocking threads) and `future` is the
//! future of [`EventEmission::run`]; `loss` reports an emission dropped before
//! it ran. Handing it to a processing service is `processing::submit`'s.

mod attempts;
mod future;
mod loss;
mod run;
mod subscribers;

pub(crate) use loss::{Submitting, report_loss, submitting};
pub(crate) use subscribers::{Subscribers, select};

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::event::key::hash_name;
use crate::lifecycle::context::Lineage;
use crate::lifecycle::in_flight::Ticket;
use crate::observe::Accounting;
use crate::registry::Registry;
use crate::registry::record::SubscriberInner;
use crate::sync::thread_local;
use crate::{AnyEvent, Error, EventLinker};

/// One emitted event, with the subscribers it goes to, ready to run.
///
/// The emitter builds it (resolving the event's subscribers and the global
/// event's, and claiming one-time ones) and hands it to a
/// [`ProcessingService`](crate::ProcessingService), which decides where and when
/// it runs: [`run`](Self::run) on an async runtime, [`run_blocking`](Self::run_blocking)
/// on a thread. Running never panics: each subscriber's failures and panics go
/// through its workflow, and the [`RunReport`](crate::RunReport) says how each ended.
///
/// An emission accepted by a processing service either runs, or is handed off
/// to another process ([`handed_off`](Self::handed_off)), or is discarded on
/// purpose ([`discard`](Self::discard)). One dropped otherwise (its runtime shut
/// down, its thread died) reports the loss: an error-level `tracing` event
/// naming the emission and its event (for the tokio and executor services, one
/// event per batch of losses, with how many and which events), and
/// [`Error::EmissionDropped`] to whoever awaits it.
///
/// # Examples
///
/// A processing service that runs each emission on a new thread:
///
/// ```
/// use pyventus_core::{Error, EventEmission, EventEmitter, EventLinker, ProcessingService};
///
/// struct ThreadPerEmission;
///
/// impl ProcessingService for ThreadPerEmission {
///     fn submit(&self, emission: EventEmission) -> Result<(), Error> {
///         println!("emission {} of {}", emission.id(), emission.event_name());
///         std::thread::spawn(move || emission.run_blocking());
///         Ok(())
///     }
/// }
///
/// let linker = EventLinker::new();
/// linker.on_named("Tick").subscribe(|| println!("tick"))?;
/// let emitter = EventEmitter::builder().processor(ThreadPerEmission).linker(linker).build();
/// emitter.emit_named("Tick", ())?;
/// # Ok::<(), Error>(())
/// ```
// Four independent switches (debug, blocking, settled, redelivered if dropped),
// not the states of one machine.
#[allow(clippy::struct_excessive_bools)]
pub struct EventEmission {
    pub(crate) id: u64,
    pub(crate) event: Arc<AnyEvent>,
    emitted_at: SystemTime,
    subscribers: Subscribers,
    registry: Arc<Registry>,
    debug: bool,
    blocking: bool,
    /// Whose blocking threads its blocking subscribers run on.
    blocking_threads: BlockingThreads,
    waiters: Vec<Waiter>,
    context: Option<Arc<dyn Any + Send + Sync>>,
    /// Where its responder's answer goes when a worker runs a request for a
    /// caller in another process.
    remote_answer: Option<Arc<crate::lifecycle::answer::RemoteAnswer>>,
    /// Who runs it and who waits for it, as its handlers' context carries it.
    lineage: Lineage,
    /// Its count among the unfinished emissions of its processing service (and
    /// of the process), held until it finishes.
    ticket: Option<Ticket>,
    /// Ran, handed off or discarded: dropping it loses nothing.
    settled: bool,
    /// What dropping it unsettled means.
    if_dropped: IfDropped,
    /// The span current where it was emitted: the parent of its deliveries'
    /// spans, wherever they run.
    parent: tracing::Span,
    /// The processing service running it, as metrics name it.
    pub(crate) processor: &'static str,
    /// Its part in the metrics (nothing without the `metrics` feature).
    pub(crate) accounting: Accounting,
}

/// Whose threads an emission's blocking subscribers run on, when it runs on a
/// tokio runtime: those declared `blocking`, and every synchronous one after
/// [`EventEmission::set_blocking`]. See [`EventEmission::set_blocking_threads`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockingThreads {
    /// The blocking threads of the runtime the emission runs on
    /// (`spawn_blocking`). Dropping that runtime waits for them: a handler
    /// that never returns keeps a program whose `main` returned from exiting.
    #[default]
    Runtime,
    /// pyventus's own blocking threads, which belong to no runtime of the
    /// program's and are never waited for: dropping the program's runtime does
    /// not wait for a handler stuck there, and the process exits without it.
    /// For emissions that can be cut short without loss, such as a broker
    /// worker's deliveries (unacknowledged, so delivered again). A handler
    /// there that asks for the current runtime gets pyventus's.
    ///
    /// Their threads take the queued handlers in turn, so a batch of quick
    /// ones costs one thread's wake-up rather than one each; a handler
    /// queued for a millisecond (behind a slow one) gets a thread of its own.
    /// One whose emission was cut short before its turn does not run. They
    /// are plain threads (named `pyventus-blocking`), not tokio's blocking
    /// tasks: `tokio::task::try_id()` gives `None` there.
    Detached,
}

/// What dropping an emission before it has run means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IfDropped {
    /// It is lost: say so.
    Lost,
    /// A broker redelivers it: nothing is lost.
    Redelivered,
}

/// Tells a [`Completion`] how its emission ended.
type Waiter = oneshot::Sender<Result<(), Error>>;

impl EventEmission {
    pub(crate) fn new(
        event: Arc<AnyEvent>,
        subscribers: Subscribers,
        registry: Arc<Registry>,
        debug: bool,
    ) -> Self {
        EventEmission {
            id: next_emission_id(),
            event,
            emitted_at: SystemTime::now(),
            subscribers,
            registry,
            debug,
            blocking: false,
            blocking_threads: BlockingThreads::Runtime,
            waiters: Vec::new(),
            context: None,
            remote_answer: None,
            lineage: Lineage::default(),
            ticket: None,
            settled: false,
            if_dropped: IfDropped::Lost,
            parent: emitting_span(),
            processor: "direct",
            accounting: Accounting::new(),
        }
    }

    /// The emission of an event that arrived from elsewhere (a broker's worker
    /// decoding a delivery), to the subscribers `linker` has for it.
    ///
    /// # Errors
    ///
    /// [`Error::NoHandler`] if nothing in `linker` handles the event;
    /// [`Error::NameConflict`] if another type owns the event's name there.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{Error, Event, EventEmission, EventLinker};
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug)]
    /// struct Shipped(u64);
    /// impl Event for Shipped {
    ///     const NAME: &'static str = "Shipped";
    /// }
    ///
    /// let linker = EventLinker::new();
    /// assert!(matches!(
    ///     EventEmission::resolve(&linker, Arc::new(Shipped(1))),
    ///     Err(Error::NoHandler { .. })
    /// ));
    /// linker.on::<Shipped>().subscribe(|s: &Shipped| println!("shipped {}", s.0))?;
    /// let report = EventEmission::resolve(&linker, Arc::new(Shipped(1)))?.run_blocking();
    /// assert!(report.is_success());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn resolve(linker: &EventLinker, event: Arc<AnyEvent>) -> Result<Self, Error> {
        let registry = &linker.registry;
        let snapshot = registry.load();
        let name = event.name();
        let route = snapshot
            .lookup(name, hash_name(name), event.payload().type_id())
            .map_err(|owner| Error::NameConflict {
                name: name.to_owned(),
                existing: owner.name,
                new: event.payload_type_name(),
            })?;
        let subscribers = Subscribers::resolve(registry, route);
        if subscribers.is_empty() {
            return Err(Error::NoHandler {
                event: name.to_owned(),
            });
        }
        Ok(EventEmission::new(
            event,
            subscribers,
            registry.clone(),
            registry.debug,
        ))
    }

    /// The emission's id, unique in this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name of the emitted event.
    pub fn event_name(&self) -> &str {
        self.event.name()
    }

    /// The emitted event.
    pub fn event(&self) -> &Arc<AnyEvent> {
        &self.event
    }

    /// When the event was emitted.
    pub fn emitted_at(&self) -> SystemTime {
        self.emitted_at
    }

    /// How many subscribers the emission runs.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// The stable ids of the link-time handlers among the subscribers.
    pub fn handler_ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.subscribers.iter().filter_map(|s| s.handler_id())
    }

    /// Whether any subscriber is a closure subscribed at runtime (which only this
    /// process can run).
    pub fn has_runtime_subscribers(&self) -> bool {
        self.subscribers.iter().any(|s| s.handler_id().is_none())
    }

    /// Keeps only the subscribers made by these link-time handlers: a broker's
    /// worker runs what the envelope targeted (a retry of the ones that failed).
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmission, EventLinker};
    /// # use std::sync::Arc;
    /// # #[derive(Debug)] struct Ping;
    /// # impl Event for Ping { const NAME: &'static str = "Ping"; }
    /// let linker = EventLinker::new();
    /// linker.on::<Ping>().subscribe(|| println!("runtime closure"))?;
    /// let mut emission = EventEmission::resolve(&linker, Arc::new(Ping))?;
    /// let missing = emission.retain_handlers(&["my_crate::audit"]); // a closure has no id
    /// assert_eq!(emission.subscriber_count(), 0);
    /// assert_eq!(missing, ["my_crate::audit"]);
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    ///
    /// Returns the ids that match no subscriber here (a worker built without
    /// that handler): the caller decides whether that is a failure.
    pub fn retain_handlers<S: AsRef<str>>(&mut self, handler_ids: &[S]) -> Vec<String> {
        let wanted = |sub: &&Arc<SubscriberInner>| {
            sub.handler_id()
                .is_some_and(|id| handler_ids.iter().any(|w| w.as_ref() == id))
        };
        let kept: Vec<_> = self.subscribers.iter().filter(wanted).cloned().collect();
        let missing = handler_ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| !kept.iter().any(|s| s.handler_id() == Some(*id)))
            .map(str::to_owned)
            .collect();
        self.subscribers = Subscribers::Selected(kept);
        missing
    }

    /// Runs every synchronous subscriber off the async workers (`spawn_blocking`)
    /// when the emission runs on a tokio runtime: Pyventus's `force_async`.
    pub fn set_blocking(&mut self, blocking: bool) {
        self.blocking = blocking;
    }

    /// Chooses whose threads the blocking subscribers run on (default
    /// [`BlockingThreads::Runtime`]). A broker's worker chooses
    /// [`BlockingThreads::Detached`], so that a synchronous handler stuck past
    /// the shutdown timeout does not keep the worker's process from exiting
    /// when its runtime drops: the delivery it held is delivered again.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{BlockingThreads, Event, EventEmission, EventLinker};
    /// # use std::{sync::Arc, time::Duration};
    /// # #[derive(Debug)] struct Job;
    /// # impl Event for Job { const NAME: &'static str = "Job"; }
    /// let linker = EventLinker::new();
    /// linker.on::<Job>().subscribe(|| std::thread::sleep(Duration::from_secs(60)))?; // stuck
    /// let mut emission = EventEmission::resolve(&linker, Arc::new(Job))?;
    /// emission.set_blocking(true);
    /// emission.set_blocking_threads(BlockingThreads::Detached);
    /// emission.set_redeliverable(true); // cut short, it is delivered again
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let cut_short = runtime.block_on(async {
    ///     tokio::time::timeout(Duration::from_millis(50), emission.run()).await
    /// });
    /// assert!(cut_short.is_err());
    /// drop(runtime); // returns at once: the stuck handler is not the runtime's
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn set_blocking_threads(&mut self, threads: BlockingThreads) {
        self.blocking_threads = threads;
    }

    /// Attaches a value the handlers can read while the emission runs, through
    /// [`current_emission()`](crate::current_emission)`.context::<T>()`: a
    /// broker's delivery (envelope id, attempt), for handlers that deduplicate.
    pub fn set_context(&mut self, context: Arc<dyn Any + Send + Sync>) {
        self.context = Some(context);
    }

    /// Has its responder leave its answer in `slot`, for a worker to send
    /// to the caller in another process.
    #[cfg(feature = "serde")]
    pub(crate) fn set_remote_answer(&mut self, slot: Arc<crate::lifecycle::answer::RemoteAnswer>) {
        self.remote_answer = Some(slot);
    }

    /// Says that a broker keeps this emission's delivery until it is
    /// acknowledged, and redelivers it otherwise: dropping the emission before
    /// its subscribers finished (a worker's handler timeout or shutdown
    /// deadline cutting [`run`](Self::run) short, a runtime shutting down) then
    /// loses nothing, so no loss is reported. Its waiters still get
    /// [`Error::EmissionDropped`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmission, EventLinker};
    /// # use std::{sync::Arc, time::Duration};
    /// # #[derive(Debug)] struct Job;
    /// # impl Event for Job { const NAME: &'static str = "Job"; }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pyventus_core::Error> {
    /// let linker = EventLinker::new();
    /// linker.on::<Job>().subscribe_async(std::future::pending::<()>)?; // never finishes
    /// let mut emission = EventEmission::resolve(&linker, Arc::new(Job))?;
    /// emission.set_redeliverable(true); // the broker still holds the delivery
    /// let cut_short = tokio::time::timeout(Duration::from_millis(10), emission.run()).await;
    /// assert!(cut_short.is_err()); // dropped mid-run: no loss reported
    /// # Ok(()) }
    /// ```
    pub fn set_redeliverable(&mut self, redeliverable: bool) {
        self.if_dropped = if redeliverable {
            IfDropped::Redelivered
        } else {
            IfDropped::Lost
        };
    }

    /// Names the processing service that runs this emission, for its metrics
    /// (the `processor` label): [`submit_to`](Self::submit_to) sets it from
    /// [`ProcessingService::name`](crate::ProcessingService::name); a broker's
    /// worker that runs what it resolved sets its own (`redis-worker`, say).
    /// `direct` until then.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmission, EventLinker};
    /// # use std::sync::Arc;
    /// # #[derive(Debug)] struct Job;
    /// # impl Event for Job { const NAME: &'static str = "Job"; }
    /// let linker = EventLinker::new();
    /// linker.on::<Job>().subscribe(|| println!("job"))?;
    /// let mut emission = EventEmission::resolve(&linker, Arc::new(Job))?;
    /// assert_eq!(emission.processor(), "direct");
    /// emission.set_processor("my-queue-worker");
    /// assert!(emission.run_blocking().is_success());
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn set_processor(&mut self, name: &'static str) {
        self.processor = name;
    }

    /// The name of the processing service that runs this emission (see
    /// [`set_processor`](Self::set_processor)).
    pub fn processor(&self) -> &'static str {
        self.processor
    }

    /// A future that resolves once the emission has run: `Ok(())` when every
    /// subscriber has finished (failures included: they went to their
    /// callbacks), [`Error::EmissionDropped`] if it was dropped without running,
    /// [`Error::NotAwaitable`] if it was handed off to another process. Several
    /// may wait on one emission.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmission, EventLinker};
    /// # use std::sync::Arc;
    /// # #[derive(Debug)] struct Ping;
    /// # impl Event for Ping { const NAME: &'static str = "Ping"; }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pyventus_core::Error> {
    /// let linker = EventLinker::new();
    /// linker.on::<Ping>().subscribe(|| println!("ping"))?;
    /// let mut emission = EventEmission::resolve(&linker, Arc::new(Ping))?;
    /// let done = emission.completion();
    /// tokio::spawn(emission.run());
    /// done.await?;
    /// # Ok(()) }
    /// ```
    pub fn completion(&mut self) -> Completion {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        Completion(rx)
    }

    /// Whether someone waits for this emission ([`completion`](Self::completion),
    /// `emit_and_wait`): a processing service that cannot run it while its
    /// caller waits refuses it instead of letting the wait hang.
    pub fn is_awaited(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// Marks the emission as handed off to another process, which runs its
    /// subscribers: its waiters get [`Error::NotAwaitable`], and dropping it
    /// reports no loss. For processing services that ship emissions away.
    pub fn handed_off(mut self) {
        self.accounting
            .settled(self.event.name(), self.processor, false);
        self.finish(|| Err(Error::NotAwaitable));
    }

    /// Drops the emission without running it, on purpose (a request whose
    /// response was an error, say): its waiters get
    /// [`Error::EmissionDropped`], and no loss is reported.
    pub fn discard(mut self) {
        self.accounting
            .settled(self.event.name(), self.processor, false);
        self.finish(|| Err(Error::EmissionDropped));
    }

    /// Detaches whoever awaits this emission with [`Error::NotAwaitable`].
    /// Returns whether anyone was waiting.
    #[deprecated(note = "use `handed_off`, which also marks the emission as delivered elsewhere")]
    pub fn release_waiter(&mut self) -> bool {
        let had = self.is_awaited();
        for tx in self.waiters.drain(..) {
            let _ = tx.send(Err(Error::NotAwaitable));
        }
        had
    }

    /// Places the emission among the processing services (`lineage`) and counts
    /// it unfinished until it finishes (`ticket`): what a service that accepts
    /// it records before running it.
    pub(crate) fn track(&mut self, lineage: Lineage, ticket: Option<Ticket>) {
        self.lineage = lineage;
        self.ticket = ticket;
    }
}

/// The span current where an emission is emitted, its deliveries' parent:
/// none at all while nothing can record a span (no subscriber, or one that
/// wants nothing), without asking the dispatcher.
#[inline]
fn emitting_span() -> tracing::Span {
    if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::OFF {
        tracing::Span::none()
    } else {
        tracing::Span::current()
    }
}

impl fmt::Debug for EventEmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventEmission")
            .field("id", &self.id)
            .field("event", &self.event)
            .field("emitted_at", &self.emitted_at)
            .field("subscribers", &self.subscribers.len())
            .field("blocking", &self.blocking)
            .field("blocking_threads", &self.blocking_threads)
            .finish_non_exhaustive()
    }
}

/// Resolves when an emission has run; see [`EventEmission::completion`].
#[must_use = "a completion does nothing unless awaited"]
#[derive(Debug)]
pub struct Completion(oneshot::Receiver<Result<(), Error>>);

impl Future for Completion {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(Error::EmissionDropped)))
    }
}

/// A process-unique emission id. Threads take ids in blocks, so emitting from
/// many threads does not contend on one counter.
pub(crate) fn next_emission_id() -> u64 {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static RANGE: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    let block = || NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) * BLOCK + 1;
    RANGE
        .try_with(|range| {
            let (mut next, mut end) = range.get();
            if next == end {
                next = block();
                end = next + BLOCK;
            }
            range.set((next + 1, end));
            next
        })
        // A constant with nothing to drop is never gone; were it, a block of
        // its own serves this one id.
        .unwrap_or_else(|_| block())
}
