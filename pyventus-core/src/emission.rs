//! Event emissions: one emitted event with its subscribers, ready to run, and
//! what running it reports.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::context::{self, CurrentEmission, InEmission, Lineage};
use crate::erased::EventCallback;
use crate::in_flight::Ticket;
use crate::key::hash_name;
use crate::record::SubscriberInner;
use crate::registry::{Entry, Registry, Route};
use crate::sync::thread_local;
use crate::workflow::{Delivery, Run, Settled, panic_error};
use crate::{AnyEvent, Error, EventLinker, RunReport};

#[cfg(feature = "metrics")]
use crate::metrics::Accounting;
#[cfg(not(feature = "metrics"))]
use no_metrics::Accounting;

/// One emitted event, with the subscribers it goes to, ready to run.
///
/// The emitter builds it (resolving the event's subscribers and the global
/// event's, and claiming one-time ones) and hands it to a
/// [`ProcessingService`](crate::ProcessingService), which decides where and when
/// it runs: [`run`](Self::run) on an async runtime, [`run_blocking`](Self::run_blocking)
/// on a thread. Running never panics: each subscriber's failures and panics go
/// through its workflow, and the [`RunReport`] says how each ended.
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
    id: u64,
    event: Arc<AnyEvent>,
    emitted_at: SystemTime,
    subscribers: Subscribers,
    registry: Arc<Registry>,
    debug: bool,
    blocking: bool,
    waiters: Vec<Waiter>,
    context: Option<Arc<dyn Any + Send + Sync>>,
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
    processor: &'static str,
    /// Its part in the metrics (nothing without the `metrics` feature).
    accounting: Accounting,
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

/// The subscribers an emission runs.
pub(crate) enum Subscribers {
    /// The event's and the global event's lists, shared with the registry
    /// snapshot: nothing to claim or deduplicate, so nothing to copy.
    Lists(Option<Arc<Entry>>, Option<Arc<Entry>>),
    /// A selection (one-time subscribers claimed, duplicates dropped).
    Selected(Vec<Arc<SubscriberInner>>),
}

impl Subscribers {
    /// Resolves the subscribers of an emission routed to `route`.
    pub(crate) fn resolve(registry: &Registry, route: Route<'_>) -> Self {
        if route.all_plain() {
            return Subscribers::Lists(route.entry.cloned(), route.global.cloned());
        }
        let capacity = route.entry.map_or(0, |e| e.len()) + route.global.map_or(0, |g| g.len());
        let mut selected = Vec::with_capacity(capacity);
        select(registry, route, |sub| selected.push(sub.clone()));
        Subscribers::Selected(selected)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<SubscriberInner>> {
        let (entry, global, selected) = match self {
            Subscribers::Lists(entry, global) => (entry.as_deref(), global.as_deref(), &[][..]),
            Subscribers::Selected(selected) => (None, None, &selected[..]),
        };
        entry
            .into_iter()
            .flat_map(Entry::iter)
            .chain(global.into_iter().flat_map(Entry::iter))
            .chain(selected)
    }

    /// Calls `f` on each subscriber, in order.
    #[inline]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<SubscriberInner>)) {
        match self {
            Subscribers::Lists(entry, global) => {
                if let Some(entry) = entry {
                    entry.for_each(&mut f);
                }
                if let Some(global) = global {
                    global.for_each(&mut f);
                }
            }
            Subscribers::Selected(selected) => selected.iter().for_each(f),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Subscribers::Lists(entry, global) => {
                entry.as_ref().map_or(0, |e| e.len()) + global.as_ref().map_or(0, |g| g.len())
            }
            Subscribers::Selected(selected) => selected.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Each subscriber's outcome, as the joined async runs hand them back.
pub(crate) type Joined = Vec<(Arc<SubscriberInner>, Settled)>;

/// A subscriber's run still going when the synchronous ones are done (an
/// async subscriber, or one on a blocking thread).
type Pending = BoxFuture<'static, (Arc<SubscriberInner>, Settled)>;

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
            waiters: Vec::new(),
            context: None,
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

    /// Attaches a value the handlers can read while the emission runs, through
    /// [`current_emission()`](crate::current_emission)`.context::<T>()`: a
    /// broker's delivery (envelope id, attempt), for handlers that deduplicate.
    pub fn set_context(&mut self, context: Arc<dyn Any + Send + Sync>) {
        self.context = Some(context);
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

    fn finish(&mut self, result: impl Fn() -> Result<(), Error>) {
        self.settled = true;
        // Uncounted before anyone wakes: a waiter sees its service idle.
        drop(self.ticket.take());
        for tx in self.waiters.drain(..) {
            // A waiter may have stopped waiting; that is its choice.
            let _ = tx.send(result());
        }
    }

    fn current(&self) -> CurrentEmission {
        CurrentEmission {
            id: self.id,
            event: self.event.clone(),
            context: self.context.clone(),
            lineage: self.lineage.clone(),
        }
    }

    fn delivery(&self) -> Delivery<'_> {
        Delivery::shared(
            &self.event,
            &self.registry.settings,
            self.id,
            self.debug,
            &self.parent,
        )
    }

    /// What running one subscriber away from the emission needs.
    fn job(&self, sub: &Arc<SubscriberInner>) -> Job {
        Job {
            sub: sub.clone(),
            registry: self.registry.clone(),
            debug: self.debug,
            current: self.current(),
            parent: self.parent.clone(),
        }
    }

    /// Runs the subscribers and their success or failure callbacks. Synchronous
    /// subscribers run in order; asynchronous ones (and `blocking` ones, on
    /// `spawn_blocking`) then run concurrently. Resolves when all have finished,
    /// with what each did.
    ///
    /// Nothing runs until the future is first polled. An emission whose
    /// subscribers are all synchronous finishes in that first poll; the future
    /// is little more than the emission itself (what a task spawned on it
    /// copies).
    pub fn run(self) -> impl Future<Output = RunReport> + Send + 'static {
        Running::Start(self)
    }

    /// Runs the synchronous subscribers (and starts the others), in place:
    /// the report so far, and the runs still to join.
    fn start(&mut self) -> (RunReport, Vec<Pending>) {
        self.accounting.started(self.event.name(), self.processor);
        let mut report = RunReport::default();
        let mut pending: Vec<Pending> = Vec::new();
        // Looked up only for a subscriber that wants a blocking thread.
        let mut handle: Option<Option<tokio::runtime::Handle>> = None;
        let entered = context::enter(self.current());
        {
            let delivery = self.delivery();
            self.subscribers.for_each(|sub| {
                if let EventCallback::Async(_) = &sub.callback {
                    pending.push(self.job(sub).run_async().boxed());
                    return;
                }
                if sub.blocking || self.blocking {
                    let handle =
                        handle.get_or_insert_with(|| tokio::runtime::Handle::try_current().ok());
                    if let Some(handle) = handle {
                        pending.push(self.spawn_blocking(handle, sub));
                        return;
                    }
                }
                report.record(
                    sub.id(),
                    sub.handler_id(),
                    sub.callback.run_sync(Run::new(&sub.workflow, &delivery)),
                );
            });
        }
        drop(entered);
        (report, pending)
    }

    /// Joins the runs [`start`](Self::start) left pending, then finishes.
    async fn join(mut self, mut report: RunReport, pending: Vec<Pending>) -> RunReport {
        for (sub, settled) in futures::future::join_all(pending).await {
            report.record(sub.id(), sub.handler_id(), settled);
        }
        self.end(&report);
        report
    }

    /// Runs a synchronous subscriber on `spawn_blocking`.
    fn spawn_blocking(
        &self,
        handle: &tokio::runtime::Handle,
        sub: &Arc<SubscriberInner>,
    ) -> BoxFuture<'static, (Arc<SubscriberInner>, Settled)> {
        let job = self.job(sub);
        let sub = sub.clone();
        let task = handle.spawn_blocking(move || job.run_blocking());
        async move {
            // The job contains its own panics; a join error can only mean the
            // runtime is shutting down.
            let settled = task.await.unwrap_or_else(|err| {
                Err(anyhow::anyhow!("the blocking task did not finish: {err}"))
            });
            (sub, settled)
        }
        .boxed()
    }

    /// Records the run in the metrics and tells the waiters.
    fn end(&mut self, report: &RunReport) {
        self.accounting
            .ran(self.event.name(), self.processor, report);
        self.finish(|| Ok(()));
    }

    /// Runs the subscribers to completion on the calling thread, blocking it.
    /// Asynchronous subscribers run concurrently on a runtime: the current one if
    /// the thread is in one (stepping out of its async context), a private one
    /// otherwise.
    pub fn run_blocking(self) -> RunReport {
        self.run_then_block_on(crate::runtime::block_on)
    }

    /// Runs the synchronous subscribers in order, then hands the asynchronous ones,
    /// joined, to `block_on` (which must run them to completion).
    pub(crate) fn run_then_block_on(
        mut self,
        block_on: impl FnOnce(BoxFuture<'static, Joined>) -> Joined,
    ) -> RunReport {
        self.accounting.started(self.event.name(), self.processor);
        let mut report = RunReport::default();
        let mut pending = Vec::new();
        let entered = context::enter(self.current());
        {
            let delivery = self.delivery();
            self.subscribers.for_each(|sub| {
                if sub.callback.is_async() {
                    pending.push(self.job(sub).run_async());
                } else {
                    let settled = sub.callback.run_sync(Run::new(&sub.workflow, &delivery));
                    report.record(sub.id(), sub.handler_id(), settled);
                }
            });
        }
        drop(entered);
        if !pending.is_empty() {
            for (sub, settled) in block_on(futures::future::join_all(pending).boxed()) {
                report.record(sub.id(), sub.handler_id(), settled);
            }
        }
        self.end(&report);
        report
    }
}

/// The future of [`EventEmission::run`]: the emission until its first poll,
/// then, if some subscribers are still running, the future joining them.
// The emission unboxed on purpose: boxing it would cost an allocation per task.
#[allow(clippy::large_enum_variant)]
enum Running {
    Start(EventEmission),
    Joining(BoxFuture<'static, RunReport>),
    Done,
}

impl Future for Running {
    type Output = RunReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RunReport> {
        let this = self.get_mut();
        if let Running::Start(emission) = this {
            // Run in place: the emission is not moved unless some runs remain.
            let (report, pending) = emission.start();
            if pending.is_empty() {
                emission.end(&report);
                *this = Running::Done;
                return Poll::Ready(report);
            }
            let Running::Start(emission) = std::mem::replace(this, Running::Done) else {
                unreachable!("matched above")
            };
            *this = Running::Joining(emission.join(report, pending).boxed());
        }
        match this {
            Running::Joining(joining) => {
                let report = std::task::ready!(joining.as_mut().poll(cx));
                *this = Running::Done;
                Poll::Ready(report)
            }
            _ => panic!("`EventEmission::run`'s future polled after it finished"),
        }
    }
}

thread_local! {
    /// The emission being submitted on this thread, and, if the processor
    /// dropped it unsettled during `submit`, its event's name (the submitter
    /// does not keep the event: its last owner drops it, wherever that runs).
    static SUBMITTING: std::cell::RefCell<Option<(u64, Option<String>)>> =
        const { std::cell::RefCell::new(None) };
}

impl EventEmission {
    /// Hands the emission to `processor`. If the processor drops it without
    /// running it or handing it off, that is its refusal when `submit` returns
    /// an error (the caller learns), and a loss, reported, when it returns `Ok`.
    ///
    /// # Errors
    ///
    /// The processor's.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmission, EventLinker, InlineProcessingService};
    /// # use std::sync::Arc;
    /// # #[derive(Debug)] struct Ping;
    /// # impl Event for Ping { const NAME: &'static str = "Ping"; }
    /// let linker = EventLinker::new();
    /// linker.on::<Ping>().subscribe(|| println!("ping"))?;
    /// let emission = EventEmission::resolve(&linker, Arc::new(Ping))?;
    /// emission.submit_to(&InlineProcessingService::new())?;
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn submit_to<P: crate::ProcessingService + ?Sized>(
        mut self,
        processor: &P,
    ) -> Result<(), Error> {
        let id = self.id;
        let name = processor.name();
        let acceptance = self.accounting.accepted(self.event.name(), name);
        self.processor = name;
        // `try_with`: a thread's destructors may emit after its locals are gone.
        let previous = SUBMITTING
            .try_with(|s| s.replace(Some((id, None))))
            .ok()
            .flatten();
        let result = processor.submit(self);
        let dropped = SUBMITTING
            .try_with(|s| s.replace(previous))
            .ok()
            .flatten()
            .and_then(|(_, dropped)| dropped);
        acceptance.settle(result.is_ok(), dropped.is_some());
        if let (Some(event), Ok(())) = (dropped, &result) {
            report_loss(
                id,
                &event,
                "its processing service accepted it, then dropped it",
            );
        }
        result
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

/// Says, where the user looks, that an accepted emission will not run.
#[cold]
fn report_loss(id: u64, event: &str, why: &str) {
    tracing::error!(
        target: "pyventus",
        emission = id,
        event,
        "an emission was lost before its subscribers finished: {why}"
    );
}

impl Drop for EventEmission {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if self.subscribers.is_empty() {
            // Nothing to run, so nothing lost (an emission a remote service
            // refused, say); out of its service's gauges all the same.
            self.accounting
                .settled(self.event.name(), self.processor, false);
            return;
        }
        let in_submit = SUBMITTING
            .try_with(|s| match &mut *s.borrow_mut() {
                Some((id, dropped)) if *id == self.id => {
                    *dropped = Some(self.event.name().to_owned());
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if in_submit || self.if_dropped == IfDropped::Redelivered {
            // `submit_to` knows whether this was a refusal or a loss; a broker
            // redelivers what did not finish.
            self.accounting
                .settled(self.event.name(), self.processor, false);
            self.finish(|| Err(Error::EmissionDropped));
            return;
        }
        self.accounting
            .settled(self.event.name(), self.processor, true);
        // Accepted, and neither run nor handed off: say so, where the user looks.
        // A counted emission joins its service's batch (a runtime that shuts
        // down drops all its tasks at once: one report says how many).
        match &self.ticket {
            Some(ticket) => ticket.lose(self.event.name()),
            None => report_loss(
                self.id,
                self.event.name(),
                "it was dropped (its runtime shut down, or its processing service dropped it)",
            ),
        }
        self.finish(|| Err(Error::EmissionDropped));
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

/// One subscriber of an emission, run away from it: on a task of its own
/// (async) or a blocking thread.
struct Job {
    sub: Arc<SubscriberInner>,
    registry: Arc<Registry>,
    debug: bool,
    current: CurrentEmission,
    parent: tracing::Span,
}

impl Job {
    fn delivery(&self) -> Delivery<'_> {
        Delivery::shared(
            &self.current.event,
            &self.registry.settings,
            self.current.id,
            self.debug,
            &self.parent,
        )
    }

    /// Runs a synchronous subscriber on the calling (blocking) thread.
    fn run_blocking(self) -> Settled {
        let _entered = context::enter(self.current.clone());
        let delivery = self.delivery();
        self.sub
            .callback
            .run_sync(Run::new(&self.sub.workflow, &delivery))
    }

    /// Runs an asynchronous subscriber to completion.
    async fn run_async(self) -> (Arc<SubscriberInner>, Settled) {
        let settled = {
            let delivery = self.delivery();
            let run = Run::new(&self.sub.workflow, &delivery);
            match &self.sub.callback {
                EventCallback::Async(f) => {
                    let span = run.span();
                    let started = {
                        let _entered = context::enter(self.current.clone());
                        let _in_span = span.enter();
                        crate::trace::started(&delivery);
                        catch_unwind(AssertUnwindSafe(|| f(self.current.event.clone())))
                    };
                    let outcome = match started {
                        Ok(fut) => AssertUnwindSafe(
                            InEmission::new(self.current.clone(), fut).instrument(span.clone()),
                        )
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| Err(panic_error(&*panic))),
                        Err(panic) => Err(panic_error(&*panic)),
                    };
                    span.in_scope(|| run.settle(outcome))
                }
                sync => {
                    let _entered = context::enter(self.current.clone());
                    sync.run_sync(run)
                }
            }
        };
        (self.sub, settled)
    }
}

/// Picks the subscribers an emission routed to `route` runs: the event's, then
/// the global event's that are not already among them, claiming one-time ones
/// (exactly one emission wins each) and unlinking those it wins.
#[inline]
pub(crate) fn select(
    registry: &Registry,
    route: Route<'_>,
    mut f: impl FnMut(&Arc<SubscriberInner>),
) {
    let mut visit = |sub: &Arc<SubscriberInner>| {
        if sub.once {
            if !sub.claim() {
                return;
            }
            registry.remove_subscriber(sub.id());
        }
        f(sub);
    };
    if let Some(entry) = route.entry {
        entry.iter().for_each(&mut visit);
    }
    if let Some(global) = route.global {
        for sub in global.iter() {
            if sub.global_and_more && route.entry.is_some_and(|e| e.contains(sub.id())) {
                continue;
            }
            visit(sub);
        }
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
    RANGE.with(|range| {
        let (mut next, mut end) = range.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) * BLOCK + 1;
            end = next + BLOCK;
        }
        range.set((next + 1, end));
        next
    })
}

/// Without the `metrics` feature, an emission's accounting does nothing.
#[cfg(not(feature = "metrics"))]
mod no_metrics {
    use crate::RunReport;

    #[derive(Debug)]
    pub(super) struct Accounting;

    pub(super) struct Acceptance;

    #[allow(clippy::unused_self)]
    impl Acceptance {
        #[inline]
        pub(super) fn settle(self, _: bool, _: bool) {}
    }

    // The same methods as the real accounting's, which needs its `self`.
    #[allow(clippy::unused_self)]
    impl Accounting {
        pub(super) const fn new() -> Self {
            Accounting
        }

        #[inline]
        pub(super) fn accepted(&mut self, _: &str, _: &'static str) -> Acceptance {
            Acceptance
        }

        #[inline]
        pub(super) fn started(&mut self, _: &str, _: &'static str) {}

        #[inline]
        pub(super) fn ran(&mut self, _: &str, _: &'static str, _: &RunReport) {}

        #[inline]
        pub(super) fn settled(&mut self, _: &str, _: &'static str, _: bool) {}
    }
}
