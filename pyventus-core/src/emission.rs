//! Event emissions: one emitted event with its snapshot of subscribers.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::AnyEvent;
use crate::callback::Delivery;
use crate::callback::EventCallback;
use crate::linker::LinkerShared;
use crate::registry::Entry;
use crate::subscriber::SubscriberInner;
use crate::workflow::{FailureLog, RunContext, run_async, run_sync};

/// One emitted event, with the subscribers it goes to, ready to run.
///
/// The emitter builds it (resolving the event's subscribers and the global
/// event's, and claiming one-time ones) and hands it to a
/// [`ProcessingService`](crate::ProcessingService), which decides where and when
/// it runs: [`run`](Self::run) on an async runtime, [`run_blocking`](Self::run_blocking)
/// on a thread. Running never panics: each subscriber's failures and panics go
/// through its workflow.
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
pub struct EventEmission {
    id: u64,
    event: Arc<AnyEvent>,
    emitted_at: SystemTime,
    subscribers: Subscribers,
    linker: Arc<LinkerShared>,
    debug: bool,
    blocking: bool,
    completion: Option<Completion>,
    failures: Option<Arc<FailureLog>>,
}

/// The subscribers an emission runs.
pub(crate) enum Subscribers {
    /// The event's and the global event's lists, shared with the registry
    /// snapshot: nothing to claim or deduplicate, so nothing to copy.
    Lists(Option<Arc<Entry>>, Option<Arc<Entry>>),
    /// A selection (one-time subscribers claimed, duplicates dropped).
    Selected(Vec<Arc<SubscriberInner>>),
}

impl Subscribers {
    /// Resolves the subscribers of an emission of `entry`'s event.
    pub(crate) fn resolve(
        linker: &LinkerShared,
        entry: Option<&Arc<Entry>>,
        global: Option<&Arc<Entry>>,
    ) -> Self {
        if Entry::all_plain(entry, global) {
            return Subscribers::Lists(entry.cloned(), global.cloned());
        }
        let capacity = entry.map_or(0, |e| e.subs.len()) + global.map_or(0, |g| g.subs.len());
        let mut selected = Vec::with_capacity(capacity);
        select(linker, entry, global, |sub| selected.push(sub.clone()));
        Subscribers::Selected(selected)
    }

    fn as_slices(&self) -> [&[Arc<SubscriberInner>]; 2] {
        match self {
            Subscribers::Lists(entry, global) => [
                entry.as_ref().map_or(&[][..], |e| &e.subs),
                global.as_ref().map_or(&[][..], |g| &g.subs),
            ],
            Subscribers::Selected(selected) => [selected, &[]],
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<SubscriberInner>> {
        self.as_slices().into_iter().flatten()
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slices().iter().map(|s| s.len()).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tells `emit_and_wait` how its emission ended.
pub(crate) type Completion = oneshot::Sender<Result<(), crate::Error>>;

impl EventEmission {
    pub(crate) fn new(
        event: Arc<AnyEvent>,
        subscribers: Subscribers,
        linker: Arc<LinkerShared>,
        debug: bool,
        completion: Option<Completion>,
    ) -> Self {
        EventEmission {
            id: next_emission_id(),
            event,
            emitted_at: SystemTime::now(),
            subscribers,
            linker,
            debug,
            blocking: false,
            completion,
            failures: None,
        }
    }

    /// The emission of an event that arrived from elsewhere (a worker's
    /// delivery), on `linker`'s subscribers, or why there is none to run.
    #[cfg(feature = "redis")]
    pub(crate) fn resolve(
        linker: &crate::EventLinker,
        event: Arc<AnyEvent>,
    ) -> Result<Self, String> {
        let shared = &linker.shared;
        let snapshot = shared.registry.load();
        let name = event.name();
        let entry = snapshot.find(name, crate::key::hash_name(name));
        if let Some(owner) = entry.and_then(|e| e.owner.as_ref())
            && owner.id != event.payload().type_id()
        {
            return Err(format!(
                "event `{name}` belongs to `{}` in this worker, not `{}`",
                owner.name,
                event.payload_type_name()
            ));
        }
        let subscribers = Subscribers::resolve(shared, entry, snapshot.global());
        if subscribers.is_empty() {
            return Err(format!("no handler for event `{name}` in this worker"));
        }
        Ok(EventEmission::new(
            event,
            subscribers,
            shared.clone(),
            shared.debug,
            None,
        ))
    }

    /// Records the failures of its subscribers in `log` as well.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn record_failures(&mut self, log: Arc<FailureLog>) {
        self.failures = Some(log);
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
        self.subscribers.iter().filter_map(|s| s.handler_id)
    }

    /// Whether any subscriber is a closure subscribed at runtime (which only this
    /// process can run).
    pub fn has_runtime_subscribers(&self) -> bool {
        self.subscribers.iter().any(|s| s.handler_id.is_none())
    }

    /// Runs every synchronous subscriber off the async workers (`spawn_blocking`)
    /// when the emission runs on a tokio runtime: Pyventus's `force_async`.
    pub fn set_blocking(&mut self, blocking: bool) {
        self.blocking = blocking;
    }

    /// Tells `tx` when the emission has run (replacing any waiter it had).
    #[cfg(feature = "axum")]
    pub(crate) fn set_completion(&mut self, tx: Completion) {
        self.completion = Some(tx);
    }

    /// Detaches whoever awaits this emission (`emit_and_wait`) with
    /// [`Error::NotAwaitable`](crate::Error::NotAwaitable): for processors that
    /// hand emissions to another process.
    pub fn release_waiter(&mut self) -> bool {
        self.completion
            .take()
            .map(|tx| tx.send(Err(crate::Error::NotAwaitable)))
            .is_some()
    }

    fn delivery<'a>(&'a self, cx: &'a RunContext<'a>) -> Delivery<'a> {
        Delivery::of_shared(&self.event, cx)
    }

    fn context(&self) -> RunContext<'_> {
        let mut cx = RunContext::new(&self.linker, Some(self.id), self.debug);
        cx.failures = self.failures.as_deref();
        cx
    }

    fn async_run(&self, sub: &Arc<SubscriberInner>) -> BoxFuture<'static, ()> {
        run_async(
            sub.clone(),
            self.event.clone(),
            self.linker.clone(),
            self.id,
            self.debug,
            self.failures.clone(),
        )
        .boxed()
    }

    fn blocking_run(&self, sub: &Arc<SubscriberInner>) -> impl FnOnce() + Send + 'static {
        let (sub, event, linker) = (sub.clone(), self.event.clone(), self.linker.clone());
        let (emission, debug, failures) = (self.id, self.debug, self.failures.clone());
        move || {
            let mut cx = RunContext::new(&linker, Some(emission), debug);
            cx.failures = failures.as_deref();
            run_sync(&sub, &Delivery::of_shared(&event, &cx));
        }
    }

    /// Runs the subscribers and their success or failure callbacks. Synchronous
    /// subscribers run in order; asynchronous ones (and `blocking` ones, on
    /// `spawn_blocking`) then run concurrently. Resolves when all have finished.
    pub async fn run(mut self) {
        let handle = tokio::runtime::Handle::try_current().ok();
        let mut pending = Vec::new();
        {
            let cx = self.context();
            let delivery = self.delivery(&cx);
            for sub in self.subscribers.iter() {
                match (&sub.callback, &handle) {
                    (EventCallback::Async(_), _) => pending.push(self.async_run(sub)),
                    (_, Some(handle)) if sub.blocking || self.blocking => {
                        let job = handle.spawn_blocking(self.blocking_run(sub));
                        // The job contains its own panics; a join error can only
                        // mean the runtime is shutting down.
                        pending.push(async move { drop(job.await) }.boxed());
                    }
                    _ => run_sync(sub, &delivery),
                }
            }
        }
        if !pending.is_empty() {
            futures::future::join_all(pending).await;
        }
        self.complete();
    }

    /// Runs the subscribers to completion on the calling thread, blocking it.
    /// Asynchronous subscribers run concurrently on a runtime: the current one if
    /// the thread is in one (stepping out of its async context), a private one
    /// otherwise.
    pub fn run_blocking(self) {
        self.run_then_block_on(crate::runtime::block_on);
    }

    /// Runs the synchronous subscribers in order, then hands the asynchronous ones,
    /// joined, to `block_on` (which must run them to completion).
    pub(crate) fn run_then_block_on(mut self, block_on: impl FnOnce(BoxFuture<'static, ()>)) {
        let mut pending = Vec::new();
        {
            let cx = self.context();
            let delivery = self.delivery(&cx);
            for sub in self.subscribers.iter() {
                if sub.callback.is_async() {
                    pending.push(self.async_run(sub));
                } else {
                    run_sync(sub, &delivery);
                }
            }
        }
        if !pending.is_empty() {
            block_on(futures::future::join_all(pending).map(drop).boxed());
        }
        self.complete();
    }

    fn complete(&mut self) {
        if let Some(tx) = self.completion.take() {
            // The waiter may have stopped waiting; that is its choice.
            let _ = tx.send(Ok(()));
        }
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

/// Picks the subscribers an emission of `entry`'s event runs: the event's, then
/// the global event's that are not already among them, claiming one-time ones
/// (exactly one emission wins each) and unlinking those it wins.
#[inline]
pub(crate) fn select(
    linker: &LinkerShared,
    entry: Option<&Arc<Entry>>,
    global: Option<&Arc<Entry>>,
    mut f: impl FnMut(&Arc<SubscriberInner>),
) {
    let mut visit = |sub: &Arc<SubscriberInner>| {
        if sub.once {
            if !sub.claim() {
                return;
            }
            linker.registry.remove_subscriber(sub.id);
        }
        f(sub);
    };
    if let Some(entry) = entry {
        entry.subs.iter().for_each(&mut visit);
    }
    if let Some(global) = global {
        for sub in &global.subs {
            if sub.global_and_more && entry.is_some_and(|e| e.contains(sub.id)) {
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
        static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
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
