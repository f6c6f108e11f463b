//! The event linker: a registry linking events to their subscribers.
//!
//! - [`EventLinker`](crate::EventLinker) (this file): the handle, its builder,
//!   removal and queries, over a `registry::Registry`.
//! - `subscription`: [`Subscription`](crate::Subscription), the builder behind
//!   `linker.on::<E>()`, `once`, `on_named`, `on_any`, `on_keys`.
//! - `subscriber`: [`EventSubscriber`](crate::EventSubscriber), the handle a
//!   subscription returns.
//! - `guard`: [`SubscriptionGuard`](crate::SubscriptionGuard), a subscription
//!   that ends when it drops (`linker.on::<E>().guard()`).
//! - `stream`: [`EventStream`](crate::EventStream), the events of a
//!   subscription as a `futures::Stream` (`linker.stream::<E>(capacity)`),
//!   and the [`Lagged`](crate::Lagged) item of a slow consumer.
//! - `link_time`: the handlers `#[on]` registers at link time, collected on a
//!   linker's first use, and [`verify`](crate::verify).
//! - `namespace`: [`Linker`](crate::Linker), the namespaces `#[derive(Linker)]`
//!   declares.

pub(crate) mod guard;
pub(crate) mod link_time;
pub(crate) mod namespace;
pub(crate) mod stream;
pub(crate) mod subscriber;
pub(crate) mod subscription;
#[cfg(feature = "tower")]
mod tower;

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::registry::Registry;
use crate::registry::record::{SubscriberInner, SubscriberParts};
use crate::resilience::{DeadLetter, DeadLetterSink, Layers, Middleware, Policy, SinkFn};
use crate::workflow::extract::States;
use crate::workflow::{DefaultSuccess, FailureCallback, LinkerSettings};
use crate::{Error, EventKey, EventSubscriber, debug_from_env};

/// A registry linking events to their subscribers: Pyventus's `EventLinker`.
///
/// `EventLinker` is a cheap, cloneable, thread-safe handle; clones share one
/// registry. [`EventLinker::global()`] is the default namespace, holding every
/// link-time handler declared without `linker = ...`; `#[derive(Linker)]` gives
/// a namespace of its own; [`EventLinker::new()`] and [`EventLinker::builder()`]
/// give isolated registries (tests use them).
///
/// Concurrency: emitters read the registry without locking. Subscribing and
/// removing serialize on a mutex that is never held while user code runs, so a
/// handler may emit, subscribe and unsubscribe from inside itself.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, InlineProcessingService};
///
/// let linker = EventLinker::builder().max_subscribers(10).build();
/// let sub = linker.on_named("Greet").subscribe(|name: &String| println!("Hello, {name}!"))?;
/// assert_eq!(linker.subscriber_count_of("Greet"), 1);
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker.clone())
///     .build();
/// emitter.emit_named("Greet", "Pyventus".to_string())?; // prints "Hello, Pyventus!"
///
/// assert!(linker.remove_subscriber(&sub));
/// assert!(linker.is_empty());
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Clone)]
pub struct EventLinker {
    pub(crate) registry: Arc<Registry>,
}

/// Builds an [`EventLinker`] with settings.
///
/// # Examples
///
/// ```
/// use pyventus_core::EventLinker;
///
/// let linker = EventLinker::builder()
///     .name("users")
///     .max_subscribers(10)
///     .default_failure(|err: &anyhow::Error| eprintln!("unhandled: {err:#}"))
///     .debug(false)
///     .build();
/// assert_eq!(linker.max_subscribers(), Some(10));
/// ```
#[must_use]
#[derive(Default)]
pub struct EventLinkerBuilder {
    name: Option<Cow<'static, str>>,
    states: Provided,
    max_subscribers: Option<usize>,
    default_success: Option<DefaultSuccess>,
    default_failure: Option<FailureCallback>,
    debug: Option<bool>,
    handled_failures: HandledFailures,
    dead_letters: Option<SinkFn>,
    middleware: Layers,
    default_policy: Option<Policy>,
}

/// How handled failures are logged, as the builder was told.
#[derive(Clone, Copy, Default)]
enum HandledFailures {
    #[default]
    Default,
    At(Option<tracing::Level>),
}

impl EventLinkerBuilder {
    /// A name for the namespace, shown in debug logs.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The most subscribers one event may have; one more is an
    /// [`Error::MaxSubscribers`]. Unlimited by default. Zero, which would refuse
    /// every subscription, is refused when the linker is built.
    pub fn max_subscribers(mut self, limit: usize) -> Self {
        self.max_subscribers = Some(limit);
        self
    }

    /// The success callback of subscribers without one of their own. It gets the
    /// handler's `Ok` value as `&dyn Any`.
    pub fn default_success(mut self, f: impl Fn(&dyn Any) + Send + Sync + 'static) -> Self {
        self.default_success = Some(Arc::new(f));
        self
    }

    /// The failure callback of subscribers without one of their own.
    pub fn default_failure(mut self, f: impl Fn(&anyhow::Error) + Send + Sync + 'static) -> Self {
        self.default_failure = Some(Arc::new(f));
        self
    }

    /// Where deliveries go that a handler's [`Policy`](crate::resilience::Policy)
    /// gave up on (retries exhausted, timed out, refused when busy): `sink`
    /// receives each as a [`DeadLetter`], after the failure callback. See
    /// [`EventLinker::set_dead_letters`] to set it on a linker already built.
    pub fn dead_letters(mut self, sink: impl Fn(&DeadLetter<'_>) + Send + Sync + 'static) -> Self {
        self.dead_letters = Some(Arc::new(sink));
        self
    }

    /// The [`Policy`] of every handler of this linker without one of its own
    /// (runtime subscriptions and link-time handlers alike): its retries,
    /// backoff and concurrency limit, and its timeout for the async handlers
    /// (a synchronous one cannot be cancelled, so it runs without). Each such
    /// handler then runs apart from the in-order synchronous subscribers and
    /// off the inline fast path. `#[linker(retries = 3, ...)]` sets it on a
    /// `#[derive(Linker)]` namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::EventLinker;
    /// use pyventus_core::resilience::Policy;
    /// use std::time::Duration;
    ///
    /// let linker = EventLinker::builder()
    ///     .default_policy(Policy::new().retries(2).timeout(Duration::from_secs(5)))
    ///     .build();
    /// // Retried twice; no timeout (a synchronous handler):
    /// linker.on_named("Audit").subscribe(|| println!("audited"))?;
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = Some(policy);
        self
    }

    /// Wraps each attempt of every handler subscribed at run time on this
    /// linker in `middleware` (outside the subscription's own; see
    /// [`Middleware`]). Each such handler then runs as one with a policy
    /// does, apart from the in-order synchronous subscribers and off the
    /// inline fast path.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Pyventus's debug mode: its subscriptions, removals, emissions and
    /// deliveries are logged at `INFO` instead of `DEBUG` (target `pyventus`),
    /// so they show under the usual filters. Defaults to the `PYVENTUS_DEBUG`
    /// environment variable. (`RUST_LOG=pyventus=debug` shows them either way.)
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = Some(debug);
        self
    }

    /// The level a failure is logged at when a failure callback (the
    /// subscriber's or the linker's default) handled it; `None` logs handled
    /// failures not at all. Default: `DEBUG`. A failure no callback handled is
    /// always logged, once, at `ERROR`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::EventLinker;
    ///
    /// let linker = EventLinker::builder()
    ///     .default_failure(|err: &anyhow::Error| eprintln!("reported elsewhere: {err:#}"))
    ///     .handled_failures(Some(tracing::Level::WARN))
    ///     .build();
    /// # drop(linker);
    /// ```
    pub fn handled_failures(mut self, level: Option<tracing::Level>) -> Self {
        self.handled_failures = HandledFailures::At(level);
        self
    }

    /// Provides `value` to the linker's handlers that take a
    /// [`State<T>`](crate::State), as [`EventLinker::provide`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// struct Pool;
    /// let linker = EventLinker::builder().state(Pool).build();
    /// assert!(linker.state::<Pool>().is_some());
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.add(value);
        self
    }

    /// Builds the linker.
    ///
    /// # Panics
    ///
    /// If a setting cannot work (`max_subscribers(0)`), with the message of
    /// [`try_build`](Self::try_build)'s error: a limit written in the code is a
    /// bug to fix there. Use `try_build` for settings read at run time.
    pub fn build(self) -> EventLinker {
        self.try_build()
            .unwrap_or_else(|err| panic!("pyventus: cannot build the linker: {err}"))
    }

    /// Builds the linker, or says which setting cannot work.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] for `max_subscribers(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{Error, EventLinker};
    ///
    /// let limit = "0".parse::<usize>().unwrap(); // from a configuration file
    /// let err = EventLinker::builder().max_subscribers(limit).try_build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidSetting { setting: "max_subscribers", .. }));
    /// assert!(err.to_string().starts_with("`max_subscribers` is 0"));
    /// ```
    pub fn try_build(self) -> Result<EventLinker, Error> {
        if let Some(policy) = &self.default_policy {
            policy.check()?;
        }
        if self.max_subscribers == Some(0) {
            return Err(Error::InvalidSetting {
                setting: "max_subscribers",
                problem: "is 0, so no event could ever have a subscriber; \
                          set at least 1, or leave it out for no limit",
            });
        }
        let linker = EventLinker {
            registry: Arc::new(Registry::new(
                LinkerSettings {
                    name: self.name.unwrap_or(Cow::Borrowed("linker")),
                    default_success: self.default_success,
                    default_failure: self.default_failure,
                    handled_failures: match self.handled_failures {
                        HandledFailures::Default => Some(tracing::Level::DEBUG),
                        HandledFailures::At(level) => level,
                    },
                    states: States::default(),
                    dead_letters: DeadLetterSink::new(self.dead_letters),
                    middleware: self.middleware,
                    default_policy: self.default_policy,
                },
                self.max_subscribers,
                self.debug.unwrap_or_else(debug_from_env),
            )),
        };
        self.states.provide_to(&linker);
        Ok(linker)
    }
}

/// Values to provide to a linker, gathered by a builder before it has its
/// linker: what the `state` methods of the linker's, the emitter's and the
/// workers' builders collect (see [`EventLinker::provide`]).
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventLinker, Provided};
///
/// struct Pool;
/// let mut provided = Provided::default();
/// provided.add(Pool);
/// let linker = EventLinker::new();
/// provided.provide_to(&linker);
/// assert!(linker.state::<Pool>().is_some());
/// ```
#[derive(Default)]
pub struct Provided(Vec<Provide>);

/// One deferred [`EventLinker::provide`].
type Provide = Box<dyn FnOnce(&EventLinker) + Send>;

impl Provided {
    /// Adds `value`, to provide later.
    pub fn add<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.push(Box::new(move |linker: &EventLinker| {
            linker.provide(value);
        }));
    }

    /// Provides every value added, in order (a later value of one type
    /// replaces an earlier one).
    pub fn provide_to(self, linker: &EventLinker) {
        for provide in self.0 {
            provide(linker);
        }
    }
}

impl fmt::Debug for Provided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Provided({} values)", self.0.len())
    }
}

impl EventLinker {
    /// A new, empty, isolated linker with default settings.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a linker with settings.
    pub fn builder() -> EventLinkerBuilder {
        EventLinkerBuilder::default()
    }

    /// The namespace's name (`"global"` for the global linker).
    pub fn name(&self) -> &str {
        self.registry.name()
    }

    /// The most subscribers one event may have, if limited.
    pub fn max_subscribers(&self) -> Option<usize> {
        self.registry.max_subscribers
    }

    /// Whether debug logging is on for this linker.
    pub fn is_debug(&self) -> bool {
        self.registry.debug
    }

    /// Sets (or with `None`, removes) where deliveries go that a handler's
    /// [`Policy`](crate::resilience::Policy) gave up on, as
    /// [`EventLinkerBuilder::dead_letters`] does: for a linker built
    /// elsewhere, such as [`EventLinker::global`] or a `#[derive(Linker)]`
    /// namespace. Deliveries already running may still reach the previous
    /// sink.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::EventLinker;
    /// use pyventus_core::resilience::DeadLetter;
    ///
    /// EventLinker::new().set_dead_letters(Some(|letter: &DeadLetter<'_>| {
    ///     eprintln!("gave up on {}: {:#}", letter.event().name(), letter.error());
    /// }));
    /// ```
    pub fn set_dead_letters<F>(&self, sink: Option<F>) -> &Self
    where
        F: Fn(&DeadLetter<'_>) + Send + Sync + 'static,
    {
        let sink = sink.map(|f| Arc::new(f) as SinkFn);
        // The previous sink drops here, after the lock.
        drop(self.registry.settings.dead_letters.set(sink));
        self
    }

    /// Provides `value` to the handlers that take a [`State<T>`](crate::State)
    /// (a database pool, a mail client), replacing a value of its type
    /// provided before. Provide each state at startup, before the first
    /// emission that needs it, in every process that runs those handlers (the
    /// web process and its workers): a handler whose state is missing fails
    /// its delivery with [`Error::MissingState`], and
    /// [`verify`](crate::verify) reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{EventEmitter, EventLinker, State};
    ///
    /// struct Greeter { greeting: &'static str }
    ///
    /// let linker = EventLinker::new();
    /// linker.provide(Greeter { greeting: "Hello" });
    /// linker.on_named("Greet").subscribe(|name: &String| println!("{name}"))?;
    /// assert_eq!(linker.state::<Greeter>().unwrap().greeting, "Hello");
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn provide<T: Send + Sync + 'static>(&self, value: T) -> &Self {
        self.provide_shared(Arc::new(value))
    }

    /// [`provide`](Self::provide) for a value already shared.
    pub fn provide_shared<T: Send + Sync + 'static>(&self, value: Arc<T>) -> &Self {
        self.registry.settings.states.insert(value);
        self.registry.trace("provided", &std::any::type_name::<T>());
        self
    }

    /// The value of type `T` provided to the linker, if any.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.registry.settings.states.get()
    }

    /// The states its subscribers take that nobody provided: each handler's
    /// id with the state's type name. Empty when every handler can run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// assert!(EventLinker::new().missing_states().is_empty());
    /// ```
    pub fn missing_states(&self) -> Vec<(String, &'static str)> {
        self.registry
            .needs()
            .into_iter()
            .filter(|(_, need)| !self.registry.settings.states.contains((need.type_id)()))
            .map(|(handler, need)| (handler, (need.type_name)()))
            .collect()
    }

    /// The link-time handlers of this linker that `worker`'s linker lacks:
    /// what a worker on `worker` could not run of what an emitter on this
    /// linker targets (a remote emission targets its linker's handlers by
    /// id), each handler's id. Empty when the worker runs everything: call it
    /// in a test with the web process's and the worker's linkers, to learn of
    /// a mismatch there rather than from dead letters after the retries.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// let web = EventLinker::new();
    /// let worker = EventLinker::new();
    /// assert!(web.handlers_missing_from(&worker).is_empty());
    /// ```
    pub fn handlers_missing_from(&self, worker: &EventLinker) -> Vec<&'static str> {
        let theirs = worker.registry.handler_ids();
        let mut missing: Vec<_> = self
            .registry
            .handler_ids()
            .into_iter()
            .filter(|id| theirs.binary_search(id).is_err())
            .collect();
        missing.dedup();
        missing
    }

    /// `Ok` when every state its subscribers take was provided; else the
    /// first one missing, as [`Error::MissingState`]: what a worker checks
    /// before it takes its first message.
    ///
    /// # Errors
    ///
    /// [`Error::MissingState`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// EventLinker::new().check_states()?;
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn check_states(&self) -> Result<(), Error> {
        match self.missing_states().into_iter().next() {
            None => Ok(()),
            Some((_, state)) => Err(Error::MissingState {
                state,
                linker: self.name().to_owned(),
            }),
        }
    }

    /// Whether both handles are the same registry.
    pub fn ptr_eq(&self, other: &EventLinker) -> bool {
        Arc::ptr_eq(&self.registry, &other.registry)
    }

    pub(crate) fn subscribe_parts(
        &self,
        keys: &[EventKey],
        parts: SubscriberParts,
    ) -> Result<EventSubscriber, Error> {
        let default_success = self.registry.settings.default_success.is_some();
        let mut parts = parts;
        let settings = &self.registry.settings;
        parts.callback = parts
            .callback
            .linked(settings.default_policy, &settings.middleware)?;
        let inner = Arc::new(SubscriberInner::new(parts, keys, default_success));
        self.registry.add(&inner, keys)?;
        let sub = self.handle(inner);
        crate::observe::trace::debug_event!(self.registry.debug, linker = %self.registry.name(), events = ?keys, subscriber = ?sub, "subscribed");
        Ok(sub)
    }

    /// Subscribes many at once, with one publication; all or none.
    pub(crate) fn subscribe_all(
        &self,
        all: Vec<(Vec<EventKey>, SubscriberParts)>,
    ) -> Result<(), Error> {
        let default_success = self.registry.settings.default_success.is_some();
        let settings = &self.registry.settings;
        let subs = all
            .into_iter()
            .map(|(keys, mut parts)| {
                parts.callback = parts
                    .callback
                    .linked(settings.default_policy, &settings.middleware)?;
                let inner = Arc::new(SubscriberInner::new(parts, &keys, default_success));
                Ok((inner, keys))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let count = subs.len();
        self.registry.add_all(subs)?;
        crate::observe::trace::debug_event!(self.registry.debug, linker = %self.registry.name(), handlers = count, "subscribed the link-time handlers");
        Ok(())
    }

    /// The handle of a subscriber of this linker.
    fn handle(&self, inner: Arc<SubscriberInner>) -> EventSubscriber {
        EventSubscriber {
            inner,
            registry: Arc::downgrade(&self.registry),
        }
    }

    fn trace_removal(&self, what: &str, detail: &dyn fmt::Debug) {
        self.registry.trace(what, detail);
    }

    /// Unlinks `subscriber` from one event. A subscriber left with no events is
    /// unsubscribed. Returns whether they were linked.
    pub fn remove(&self, key: impl Into<EventKey>, subscriber: &EventSubscriber) -> bool {
        let key = key.into();
        let removed = self.registry.unlink(&key, subscriber.id());
        if removed {
            self.trace_removal("unlinked", &(&key, subscriber));
        }
        removed
    }

    /// Removes an event and unlinks all its subscribers from it. Returns whether
    /// it was registered.
    pub fn remove_event(&self, key: impl Into<EventKey>) -> bool {
        let key = key.into();
        let removed = self.registry.remove_event(&key);
        if removed {
            self.trace_removal("removed event", &key);
        }
        removed
    }

    /// Unlinks a subscriber from all its events. Returns whether it was subscribed.
    pub fn remove_subscriber(&self, subscriber: &EventSubscriber) -> bool {
        subscriber.close_gate();
        let removed = self.registry.remove_subscriber(subscriber.id());
        if removed {
            self.trace_removal("removed subscriber", subscriber);
        }
        removed
    }

    /// Removes every event and subscriber. Returns whether there was any.
    pub fn remove_all(&self) -> bool {
        let removed = self.registry.clear();
        if removed {
            self.trace_removal("removed", &"everything");
        }
        removed
    }

    /// Whether no event has a subscriber.
    pub fn is_empty(&self) -> bool {
        self.registry.load().is_empty()
    }

    /// The events with at least one subscriber, in the order they were first linked.
    pub fn events(&self) -> Vec<EventKey> {
        self.registry
            .load()
            .entries()
            .into_iter()
            .map(|e| e.key.clone())
            .collect()
    }

    /// Every subscriber, in subscription order.
    pub fn subscribers(&self) -> Vec<EventSubscriber> {
        self.registry
            .subscribers()
            .into_iter()
            .map(|(inner, _)| self.handle(inner))
            .collect()
    }

    /// How many events have subscribers.
    pub fn event_count(&self) -> usize {
        self.registry.load().entries().len()
    }

    /// How many subscribers there are.
    pub fn subscriber_count(&self) -> usize {
        self.registry.subscriber_count()
    }

    /// The events any of `subscribers` is linked to, without repeats.
    pub fn events_of(&self, subscribers: &[EventSubscriber]) -> Vec<EventKey> {
        let mut keys: Vec<EventKey> = Vec::new();
        for sub in subscribers {
            for key in self.registry.keys_of(sub.id()).unwrap_or_default() {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// The subscribers of any of `keys`, without repeats, in subscription order.
    pub fn subscribers_of<K: Into<EventKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<EventSubscriber> {
        let snapshot = self.registry.load();
        let mut subs: Vec<EventSubscriber> = Vec::new();
        for key in keys {
            if let Some(entry) = snapshot.get(&key.into()) {
                for inner in entry.iter() {
                    if !subs.iter().any(|s| s.id() == inner.id()) {
                        subs.push(self.handle(inner.clone()));
                    }
                }
            }
        }
        subs.sort_by_key(EventSubscriber::id);
        subs
    }

    /// How many events `subscriber` is linked to.
    pub fn event_count_of(&self, subscriber: &EventSubscriber) -> usize {
        self.registry
            .keys_of(subscriber.id())
            .map_or(0, |k| k.len())
    }

    /// How many subscribers the event has.
    pub fn subscriber_count_of(&self, key: impl Into<EventKey>) -> usize {
        self.registry.load().get(&key.into()).map_or(0, |e| e.len())
    }

    /// Whether the event has subscribers.
    pub fn contains_event(&self, key: impl Into<EventKey>) -> bool {
        self.registry.load().get(&key.into()).is_some()
    }

    /// Whether `subscriber` is subscribed here.
    pub fn contains_subscriber(&self, subscriber: &EventSubscriber) -> bool {
        self.registry.keys_of(subscriber.id()).is_some()
    }

    /// Whether `subscriber` is linked to the event.
    pub fn are_linked(&self, key: impl Into<EventKey>, subscriber: &EventSubscriber) -> bool {
        self.registry
            .load()
            .get(&key.into())
            .is_some_and(|e| e.contains(subscriber.id()))
    }

    /// The subscribers made by the link-time handler with this id
    /// (`module::path::function`), so it can be inspected or removed at runtime.
    pub fn handler(&self, handler_id: &str) -> Vec<EventSubscriber> {
        self.subscribers()
            .into_iter()
            .filter(|s| s.handler_id() == Some(handler_id))
            .collect()
    }
}

/// The linker side of a subscriber's handle.
impl EventSubscriber {
    /// The linker this subscriber belongs to, while it exists.
    pub fn linker(&self) -> Option<EventLinker> {
        self.registry
            .upgrade()
            .map(|registry| EventLinker { registry })
    }
}

impl Default for EventLinker {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventLinker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLinker")
            .field("name", &self.registry.name())
            .field("events", &self.event_count())
            .field("subscribers", &self.subscriber_count())
            .field("max_subscribers", &self.registry.max_subscribers)
            .field("debug", &self.registry.debug)
            .finish()
    }
}
