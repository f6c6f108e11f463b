//! The event emitter: resolves an event's subscribers and hands the emission to a
//! processing service.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::emission::{Subscribers, select};
use crate::event::any_event::{EventName, EventObject, Named, SharedName};
use crate::event::key::{ANY_NAME, KeyHash, TypeInfo, hash_name};
use crate::event::slot::LaneSlot;
use crate::observe::trace::{self, debug_event};
use crate::registry::lane::Lane;
use crate::registry::record::SubscriberInner;
use crate::registry::thread_cache;
use crate::registry::{Entry, Registry, Route, Snapshot};
use crate::sync::LocalKey;
use crate::workflow::{Dispatch, Run};
use crate::{
    AnyEvent, Completion, EmitKey, Error, Event, EventEmission, EventLinker,
    InlineProcessingService, ProcessingService, Provided, debug_from_env,
};

/// Emits events to the subscribers of a linker, through a processing service:
/// Pyventus's `EventEmitter`.
///
/// A cheap `Clone` handle. Code that emits takes `&EventEmitter` and never knows
/// which processor runs its subscribers: that is chosen where the emitter is
/// built (runtime flexibility). `emit` works from sync and async code alike.
///
/// # Examples
///
/// ```
/// use pyventus_core::{Event, EventEmitter, EventLinker, InlineProcessingService};
///
/// #[derive(Debug, Clone)]
/// struct OrderCreated {
///     order_id: u64,
/// }
/// impl Event for OrderCreated {
///     const NAME: &'static str = "OrderCreated";
/// }
///
/// fn place_order(emitter: &EventEmitter, order_id: u64) -> Result<(), pyventus_core::Error> {
///     emitter.emit(OrderCreated { order_id })
/// }
///
/// let linker = EventLinker::new();
/// linker.on::<OrderCreated>().subscribe(|e: &OrderCreated| println!("order {}", e.order_id))?;
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// place_order(&emitter, 42)?;
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Clone)]
pub struct EventEmitter {
    inner: Arc<Inner>,
}

// Each flag is read on its own hot path; packing them would buy nothing.
#[allow(clippy::struct_excessive_bools)]
struct Inner {
    processor: Arc<dyn ProcessingService>,
    linker: EventLinker,
    debug: bool,
    /// The processor runs emissions in the caller and nothing is logged: events
    /// whose subscribers are all synchronous can skip the `EventEmission`.
    borrow_fast_path: bool,
    /// The processor runs emissions in other processes.
    remote: bool,
    /// The processor wants emissions that have no subscriber too.
    every: bool,
}

/// Builds an [`EventEmitter`].
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, InlineProcessingService};
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default()) // the default
///     .linker(EventLinker::new()) // default: EventLinker::global()
///     .debug(true) // default: the PYVENTUS_DEBUG environment variable
///     .build();
/// assert!(emitter.is_debug());
/// ```
#[must_use]
#[derive(Default)]
pub struct EventEmitterBuilder {
    processor: Option<Arc<dyn ProcessingService>>,
    linker: Option<EventLinker>,
    debug: Option<bool>,
    states: Provided,
}

impl EventEmitterBuilder {
    /// Provides `value` to the emitter's linker, for the handlers that take a
    /// [`State<T>`](crate::State): the same as
    /// [`EventLinker::provide`](crate::EventLinker::provide) on that linker
    /// (state belongs to the handlers' linker, whichever emitter reaches
    /// them), done when the emitter is built.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{EventEmitter, EventLinker};
    /// struct Pool;
    /// let emitter = EventEmitter::builder().linker(EventLinker::new()).state(Pool).build();
    /// assert!(emitter.linker().state::<Pool>().is_some());
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.add(value);
        self
    }

    /// The processing service that runs the emissions. Default: inline.
    pub fn processor(mut self, processor: impl ProcessingService) -> Self {
        self.processor = Some(Arc::new(processor));
        self
    }

    /// The linker whose subscribers receive the events. Default: the global one.
    pub fn linker(mut self, linker: EventLinker) -> Self {
        self.linker = Some(linker);
        self
    }

    /// Logs each emission through `tracing` (debug level, target `pyventus`).
    /// Defaults to the `PYVENTUS_DEBUG` environment variable.
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = Some(debug);
        self
    }

    /// Builds the emitter.
    ///
    /// # Panics
    ///
    /// Without a linker, if the global linker cannot be built (see
    /// [`EventLinker::global`]).
    pub fn build(self) -> EventEmitter {
        let processor = self
            .processor
            .unwrap_or_else(|| Arc::new(InlineProcessingService::default()));
        let debug = self.debug.unwrap_or_else(debug_from_env);
        let linker = self.linker.unwrap_or_else(EventLinker::global);
        self.states.provide_to(&linker);
        EventEmitter {
            inner: Arc::new(Inner {
                borrow_fast_path: processor.runs_inline() && !debug,
                remote: processor.runs_remotely(),
                every: processor.runs_remotely() || processor.wants_every_emission(),
                processor,
                linker,
                debug,
            }),
        }
    }
}

/// How to tell a caller that the event's name belongs to another type.
#[derive(Clone, Copy)]
enum Claim {
    /// A typed event: another type owning the name is a name conflict.
    Typed,
    /// A named payload: another type owning the name is a payload mismatch.
    Payload,
}

impl EventEmitter {
    /// An emitter on the global linker with the given processing service.
    ///
    /// # Panics
    ///
    /// If the global linker cannot be built (see [`EventLinker::global`]).
    pub fn new(processor: impl ProcessingService) -> Self {
        Self::builder().processor(processor).build()
    }

    /// A builder for an emitter with settings.
    pub fn builder() -> EventEmitterBuilder {
        EventEmitterBuilder::default()
    }

    /// The linker this emitter emits to.
    pub fn linker(&self) -> &EventLinker {
        &self.inner.linker
    }

    /// The processing service.
    pub fn processor(&self) -> &Arc<dyn ProcessingService> {
        &self.inner.processor
    }

    /// Whether each emission is logged.
    pub fn is_debug(&self) -> bool {
        self.inner.debug
    }

    /// Emits a typed event to its subscribers and the global event's.
    ///
    /// # Errors
    ///
    /// [`Error::NameConflict`] if another type owns `E::NAME` in the linker;
    /// [`Error::EmptyEventName`] if `E::NAME` is empty, [`Error::ReservedEventName`]
    /// if it is `"..."`; the processor's error if it refuses the emission.
    /// Handler failures are not errors here: they go to the failure callbacks.
    #[inline]
    pub fn emit<E: Event>(&self, event: E) -> Result<(), Error> {
        KeyHash::<E>::NAME.result()?;
        let inner = &*self.inner;
        // With `pyventus` debug spans wanted, the general path makes them.
        if inner.borrow_fast_path && !trace::debug_enabled() {
            let registry = &*inner.linker.registry;
            if thread_cache::run_typed(registry, &event) {
                return Ok(());
            }
        }
        self.emit_object(event, KeyHash::<E>::HASH, Claim::Typed, false)
            .map(drop)
    }

    /// Emits a named event with a payload (`()` for none).
    ///
    /// The name `"..."` emits the global event itself, with the payload: only
    /// the global event's subscribers run, and each receives an
    /// [`AnyEvent`] named `"..."` whose `downcast_ref` gives the payload
    /// (Pyventus's `emit(..., *args)`).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyEventName`] for an empty name, [`Error::PayloadType`] if a
    /// typed event owns the name and the payload is not of its type, and the
    /// processor's error if it refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{EventEmitter, EventLinker, InlineProcessingService};
    /// let linker = EventLinker::new();
    /// linker.on_named("GreetEvent").subscribe(|name: &String| println!("Hello, {name}!"))?;
    /// let emitter = EventEmitter::builder().linker(linker).build();
    /// emitter.emit_named("GreetEvent", "Pyventus".to_string())?;
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    #[inline]
    pub fn emit_named<T: Send + Sync + 'static>(
        &self,
        name: impl Into<Cow<'static, str>>,
        payload: T,
    ) -> Result<(), Error> {
        match name.into() {
            Cow::Borrowed(literal) => self.emit_literal(literal, payload),
            name @ Cow::Owned(_) => {
                let (named, hash) = named_event(name, payload)?;
                self.emit_named_hashed(named, hash)
            }
        }
    }

    /// [`emit_named`](Self::emit_named) with a `&'static str` name (a string
    /// literal, say): on an inline emitter, the event's subscribers come from
    /// this thread's lanes of such names, found by the name's address, so the
    /// name is not hashed at each emission.
    #[inline]
    fn emit_literal<T: Send + Sync + 'static>(
        &self,
        name: &'static str,
        payload: T,
    ) -> Result<(), Error> {
        if name.is_empty() {
            return Err(Error::EmptyEventName);
        }
        // Its name stays a `&'static str` (no `Cow` to drop on the fast
        // path); the general path takes it as a `Cow`.
        let named = Named { name, payload };
        self.emit_named_by(
            named,
            || hash_name(name),
            |registry, named| thread_cache::run_literal(registry, name, named),
        )
    }

    /// Emits a named event through a key built once (with
    /// [`EventKey::named_static`](crate::EventKey::named_static), say), so its name is not hashed again at each
    /// emission: the fastest way to emit a named event in a loop. On an inline
    /// emitter, the event's subscribers come from this thread's cache of named
    /// events (32 slots, by the name's hash), as a typed event's come from its
    /// type's slot.
    ///
    /// # Errors
    ///
    /// As [`emit_named`](Self::emit_named); [`Error::ReservedEventName`] for
    /// `EventKey::named("...")`. The global event's key,
    /// [`EventKey::any()`](crate::EventKey::any), emits the global event with
    /// the payload, as `emit_named("...", payload)` does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{EventEmitter, EventKey, EventLinker};
    /// static TICK: EventKey = EventKey::named_static("Tick");
    ///
    /// let linker = EventLinker::new();
    /// linker.on_named("Tick").subscribe(|n: &u64| println!("tick {n}"))?;
    /// let emitter = EventEmitter::builder().linker(linker).build();
    /// for n in 0..3_u64 {
    ///     emitter.emit_to(&TICK, n)?;
    /// }
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    #[inline]
    pub fn emit_to<T: Send + Sync + 'static, K: EmitKey<T> + ?Sized>(
        &self,
        key: &K,
        payload: T,
    ) -> Result<(), Error> {
        let event_key = key.event_key();
        event_key.validate()?;
        let hash = event_key.hash_value();
        // A static name (every `NamedKey`'s) stays a `&'static str`: no `Cow`
        // to drop on the fast path.
        match event_key.static_name() {
            Some(name) => self.emit_key(key, Named { name, payload }, hash),
            // A shared one is carried as its `Arc`: no copy of its bytes on
            // the fast path.
            None => {
                let name = SharedName(event_key.shared_name());
                self.emit_key(key, Named { name, payload }, hash)
            }
        }
    }

    /// [`emit_to`](Self::emit_to) of `named`: from the key's own slot if it
    /// has one, else from this thread's named lanes.
    #[inline]
    fn emit_key<T: Send + Sync + 'static, K: EmitKey<T> + ?Sized, N: EventName>(
        &self,
        key: &K,
        named: Named<T, N>,
        hash: u64,
    ) -> Result<(), Error> {
        match key.__slot() {
            Some(slot) => self.emit_keyed(named, hash, slot),
            None => self.emit_named_hashed(named, hash),
        }
    }

    /// [`emit_to`](Self::emit_to) through a [`NamedKey`](crate::NamedKey):
    /// the inline fast path finds the subscribers in the key's own slot.
    #[inline]
    fn emit_keyed<T: Send + Sync + 'static, N: EventName>(
        &self,
        named: Named<T, N>,
        hash: u64,
        slot: &'static LocalKey<LaneSlot<T>>,
    ) -> Result<(), Error> {
        self.emit_named_by(
            named,
            || hash,
            |registry, named| {
                thread_cache::run_from_slot(registry, slot, named, &named.payload, hash)
            },
        )
    }

    #[inline]
    fn emit_named_hashed<T: Send + Sync + 'static, N: EventName>(
        &self,
        named: Named<T, N>,
        hash: u64,
    ) -> Result<(), Error> {
        self.emit_named_by(
            named,
            || hash,
            |registry, named| thread_cache::run_named(registry, named, hash),
        )
    }

    /// Emits a named event: on an inline emitter that logs nothing, `cached`
    /// runs it from one of this thread's caches when it can (whether it ran);
    /// otherwise, or if it could not, the general path does, with the name's
    /// hash from `hash`.
    #[inline]
    fn emit_named_by<T: Send + Sync + 'static, N: EventName>(
        &self,
        named: Named<T, N>,
        hash: impl FnOnce() -> u64,
        cached: impl FnOnce(&Registry, &Named<T, N>) -> bool,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        if inner.borrow_fast_path
            && !trace::debug_enabled()
            && cached(&inner.linker.registry, &named)
        {
            return Ok(());
        }
        self.emit_object(named.owned(), hash(), Claim::Payload, false)
            .map(drop)
    }

    /// Emits the global event itself, as Pyventus's `emit(...)` does: only the
    /// subscribers of the global event run, and they receive an [`AnyEvent`]
    /// named `"..."` with no payload. To send them one, as Pyventus's
    /// `emit(..., *args)` does, use `emit_named("...", payload)`.
    ///
    /// # Errors
    ///
    /// The processor's, if it refuses the emission.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{AnyEvent, EventEmitter, EventLinker};
    /// let linker = EventLinker::new();
    /// linker.on_any().subscribe(|e: &AnyEvent| assert_eq!(e.name(), "..."))?;
    /// linker.on_named("Other").subscribe(|| println!("not this one"))?;
    /// EventEmitter::builder().linker(linker).build().emit_global()?;
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn emit_global(&self) -> Result<(), Error> {
        let global = Named {
            name: Cow::Borrowed(ANY_NAME),
            payload: (),
        };
        self.emit_object(global, hash_name(ANY_NAME), Claim::Payload, false)
            .map(drop)
    }

    /// Emits a typed event from async code: what [`emit`](Self::emit) does,
    /// without blocking the calling thread on a processing service's I/O. On
    /// Redis or RabbitMQ, `emit` blocks its thread until the broker has the
    /// envelope (`block_in_place` inside a runtime); `emit_async` awaits it,
    /// with the same targeting of the linker's handlers and the same metrics.
    /// On the other services it is `emit`.
    ///
    /// # Errors
    ///
    /// As [`emit`](Self::emit).
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmitter, EventLinker, TokioProcessingService};
    /// # #[derive(Debug)] struct Ping;
    /// # impl Event for Ping { const NAME: &'static str = "Ping"; }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pyventus_core::Error> {
    /// let linker = EventLinker::new();
    /// linker.on::<Ping>().subscribe(|| println!("ping"))?;
    /// let emitter = EventEmitter::builder().linker(linker).build();
    /// emitter.emit_async(Ping).await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit_async<E: Event>(&self, event: E) -> Result<(), Error> {
        if self.inner.borrow_fast_path {
            return self.emit(event);
        }
        KeyHash::<E>::NAME.result()?;
        self.emit_object_async(event, KeyHash::<E>::HASH, Claim::Typed)
            .await
    }

    /// [`emit_named`](Self::emit_named) from async code, as
    /// [`emit_async`](Self::emit_async) is to `emit`.
    ///
    /// # Errors
    ///
    /// As [`emit_named`](Self::emit_named).
    pub async fn emit_named_async<T: Send + Sync + 'static>(
        &self,
        name: impl Into<Cow<'static, str>>,
        payload: T,
    ) -> Result<(), Error> {
        let (named, hash) = named_event(name.into(), payload)?;
        if self.inner.borrow_fast_path {
            return self.emit_named_hashed(named, hash);
        }
        self.emit_object_async(named, hash, Claim::Payload).await
    }

    /// Emits a typed event and waits until every subscriber, with its success or
    /// failure callback, has finished.
    ///
    /// # Errors
    ///
    /// As [`emit`](Self::emit); also [`Error::EmissionDropped`] if the processor
    /// dropped the emission without running it, and [`Error::NotAwaitable`] if it
    /// sent it to another process.
    pub async fn emit_and_wait<E: Event>(&self, event: E) -> Result<(), Error> {
        KeyHash::<E>::NAME.result()?;
        self.emit_waiting(event, KeyHash::<E>::HASH, Claim::Typed)
            .await
    }

    /// Emits a named event and waits until its subscribers have finished.
    ///
    /// # Errors
    ///
    /// As [`emit_named`](Self::emit_named) and [`emit_and_wait`](Self::emit_and_wait).
    pub async fn emit_named_and_wait<T: Send + Sync + 'static>(
        &self,
        name: impl Into<Cow<'static, str>>,
        payload: T,
    ) -> Result<(), Error> {
        let (named, hash) = named_event(name.into(), payload)?;
        self.emit_waiting(named, hash, Claim::Payload).await
    }

    /// Emits, then waits for the emission's completion.
    async fn emit_waiting<O: EventObject>(
        &self,
        event: O,
        hash: u64,
        claim: Claim,
    ) -> Result<(), Error> {
        match self.emit_object(event, hash, claim, true)? {
            Some(completion) => completion.await,
            None => Ok(()),
        }
    }

    /// Emits (every emission the typed lane did not take): resolves its route,
    /// runs it on the borrowed event where it can, builds an emission otherwise.
    /// With `wait`, returns the emission's completion (`None` when there was
    /// nothing to run).
    #[inline(never)]
    fn emit_object<O: EventObject>(
        &self,
        event: O,
        hash: u64,
        claim: Claim,
        wait: bool,
    ) -> Result<Option<Completion>, Error> {
        let registry = &*self.inner.linker.registry;
        registry.with_snapshot(move |snapshot| self.emit_route(snapshot, event, hash, claim, wait))
    }

    fn emit_route<O: EventObject>(
        &self,
        snapshot: &Snapshot,
        event: O,
        hash: u64,
        claim: Claim,
        wait: bool,
    ) -> Result<Option<Completion>, Error> {
        let inner = &*self.inner;
        let registry = &*inner.linker.registry;
        let route = snapshot
            .lookup(event.name(), hash, event.payload().type_id())
            .map_err(|owner| claim_error(owner, &event, claim))?;
        if inner.borrow_fast_path && !wait && borrow_only(route.entry) && borrow_only(route.global)
        {
            debug_event!(inner.debug, event = event.name(), linker = %registry.name(), "emitting inline");
            run_borrowed(registry, &event, route);
            return Ok(None);
        }
        self.dispatch(Arc::new(event), route, wait)
    }

    fn dispatch(
        &self,
        event: Arc<AnyEvent>,
        route: Route<'_>,
        wait: bool,
    ) -> Result<Option<Completion>, Error> {
        let Some(mut emission) = self.emission(event, route) else {
            return Ok(None);
        };
        let completion = wait.then(|| emission.completion());
        emission.submit_to(&*self.inner.processor)?;
        Ok(completion)
    }

    /// The emission of `event` routed to `route`, or `None` when nothing
    /// would run it.
    fn emission(&self, event: Arc<AnyEvent>, route: Route<'_>) -> Option<EventEmission> {
        let registry: &Arc<Registry> = &self.inner.linker.registry;
        let subscribers = if self.inner.remote {
            // The workers resolve the subscribers; the local ones only tell the
            // processor what cannot run remotely.
            Subscribers::Lists(route.entry.cloned(), route.global.cloned())
        } else {
            Subscribers::resolve(registry, route)
        };
        if subscribers.is_empty() && !self.inner.every {
            debug_event!(self.inner.debug, event = event.name(), linker = %registry.name(), "emitted with no subscribers");
            return None;
        }
        let emission = EventEmission::new(event, subscribers, registry.clone(), self.inner.debug);
        debug_event!(
            self.inner.debug,
            emission = emission.id(),
            event = emission.event_name(),
            subscribers = emission.subscriber_count(),
            linker = %registry.name(),
            "emitting"
        );
        Some(emission)
    }

    /// Emits `event` as an emission that carries `context` (a request's
    /// reply, read by its responders), never on the inline fast path, once
    /// `proceed` has seen the gates of the event's live responders and agreed.
    /// Returns those gates, and whether it emitted.
    pub(crate) fn emit_carrying<E: Event>(
        &self,
        event: E,
        context: Arc<dyn std::any::Any + Send + Sync>,
        proceed: impl FnOnce(&[Arc<crate::lifecycle::gate::Gate>]) -> bool,
    ) -> Result<(Vec<Arc<crate::lifecycle::gate::Gate>>, bool), Error> {
        KeyHash::<E>::NAME.result()?;
        let registry = &*self.inner.linker.registry;
        let emission = registry.with_snapshot(move |snapshot| {
            let route = snapshot
                .lookup(event.name(), KeyHash::<E>::HASH, event.payload().type_id())
                .map_err(|owner| claim_error(owner, &event, Claim::Typed))?;
            let responders: Vec<_> = route
                .entry
                .into_iter()
                .flat_map(|entry| entry.iter())
                .filter(|sub| sub.responder.is_some() && sub.is_live())
                .filter_map(|sub| sub.gate.clone())
                .collect();
            if !proceed(&responders) {
                return Ok::<_, Error>((responders, None));
            }
            let emission = self.emission(Arc::new(event), route);
            Ok((responders, emission))
        })?;
        match emission {
            (responders, Some(mut emission)) => {
                emission.set_context(context);
                emission.submit_to(&*self.inner.processor)?;
                Ok((responders, true))
            }
            (responders, None) => Ok((responders, false)),
        }
    }

    /// How its processing service sends requests to workers, if it can.
    #[cfg(feature = "serde")]
    pub(crate) fn remote_requests(&self) -> Option<Arc<dyn crate::remote::RemoteRequests>> {
        self.inner.processor.remote_requests()
    }

    /// Whether its processing service runs emissions in other processes.
    pub(crate) fn is_remote(&self) -> bool {
        self.inner.remote
    }

    /// [`emit_object`](Self::emit_object) from async code, off the inline fast
    /// path: the emission goes to the service's `submit_async`, awaited.
    async fn emit_object_async<O: EventObject>(
        &self,
        event: O,
        hash: u64,
        claim: Claim,
    ) -> Result<(), Error> {
        let registry = &*self.inner.linker.registry;
        let emission = registry.with_snapshot(move |snapshot| {
            let route = snapshot
                .lookup(event.name(), hash, event.payload().type_id())
                .map_err(|owner| claim_error(owner, &event, claim))?;
            Ok::<_, Error>(self.emission(Arc::new(event), route))
        })?;
        match emission {
            Some(emission) => emission.submit_to_async(&*self.inner.processor).await,
            None => Ok(()),
        }
    }
}

/// The inline fast path: runs synchronous subscribers on the caller's borrowed
/// event, with no emission, no allocation and no lock.
#[inline]
fn run_borrowed<O: EventObject>(registry: &Registry, event: &O, route: Route<'_>) {
    let _hidden = crate::lifecycle::context::hide();
    let delivery = Dispatch::borrowed(event, &registry.settings);
    let run = |sub: &Arc<SubscriberInner>| {
        // Failures were handed to the callbacks; nobody here needs them back.
        let settled = sub.callback.run_sync(Run::new(&sub.workflow, &delivery));
        delivery.tally.settled(&settled);
    };
    if route.all_direct() {
        if let Some(entry) = route.entry {
            // A lane makes no spans: with them wanted, each subscriber runs in its own.
            let lane = entry.lane.as_ref().filter(|_| !trace::debug_enabled());
            match lane.and_then(|lane| lane.downcast_ref::<Lane<O>>()) {
                Some(lane) => lane.run(event, &delivery),
                None => entry.iter().for_each(run),
            }
        }
        if let Some(global) = route.global {
            global.iter().for_each(run);
        }
    } else {
        select(registry, route, run);
    }
    delivery.tally.record(event.name());
}

/// A named event to emit. `"..."` is the global event: its subscribers alone
/// receive the payload (Pyventus's `emit(..., *args)`); no other event can
/// have that name.
fn named_event<T>(name: Cow<'static, str>, payload: T) -> Result<(Named<T>, u64), Error> {
    if name.is_empty() {
        return Err(Error::EmptyEventName);
    }
    let hash = hash_name(&name);
    Ok((Named { name, payload }, hash))
}

#[inline]
fn borrow_only(entry: Option<&Arc<Entry>>) -> bool {
    entry.is_none_or(|e| e.borrow_only)
}

#[cold]
fn claim_error(owner: TypeInfo, event: &dyn EventObject, claim: Claim) -> Error {
    match claim {
        Claim::Typed => Error::NameConflict {
            name: event.name().to_owned(),
            existing: owner.name,
            new: event.payload_type_name(),
        },
        Claim::Payload => Error::PayloadType {
            event: event.name().to_owned(),
            expected: owner.name,
            found: event.payload_type_name(),
        },
    }
}

impl fmt::Debug for EventEmitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventEmitter")
            .field("linker", &self.inner.linker.name())
            .field("debug", &self.inner.debug)
            .finish_non_exhaustive()
    }
}
