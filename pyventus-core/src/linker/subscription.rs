//! Runtime subscription: `linker.on::<E>()` and its twins, and the builder they return.

use std::any::{TypeId, type_name};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::handler::kind::{Many, Named, Typed};
use crate::handler::{AsyncHandler, Handler, SuccessHandler};
use crate::lifecycle::gate::Gate;
use crate::linker::guard::GuardedSubscription;
use crate::registry::callback::EventCallback;
use crate::registry::record::SubscriberParts;
use crate::resilience::{Busy, Layers, Middleware, Policy};
use crate::workflow::output::HandlerOutput;
use crate::workflow::{FailureCallback, SuccessCallback};
use crate::{Error, Event, EventKey, EventLinker, EventSubscriber};

/// A subscription being built: its events, then (optionally) its success and
/// failure callbacks and `blocking`, then the event callback with
/// [`subscribe`](Self::subscribe) or [`subscribe_async`](Self::subscribe_async).
///
/// The kind `K` fixes the parameter a handler may take (see
/// [`Handler`](crate::Handler)).
///
/// # Examples
///
/// ```
/// use pyventus_core::{Event, EventEmitter, EventLinker, InlineProcessingService};
/// use std::sync::Arc;
///
/// #[derive(Debug)]
/// struct Ping {
///     n: u64,
/// }
/// impl Event for Ping {
///     const NAME: &'static str = "Ping";
/// }
///
/// let linker = EventLinker::new();
/// linker
///     .on::<Ping>()
///     .on_success(|n: u64| assert_eq!(n, 7))
///     .on_failure(|err: &anyhow::Error| eprintln!("ping failed: {err:#}"))
///     .subscribe_async(|e: Arc<Ping>| async move { Ok::<u64, anyhow::Error>(e.n) })?;
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit(Ping { n: 7 })?;
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[must_use = "a subscription does nothing until `.subscribe(...)` or `.subscribe_async(...)`"]
pub struct Subscription<'a, K> {
    linker: &'a EventLinker,
    keys: Vec<EventKey>,
    once: bool,
    blocking: bool,
    success: Option<SuccessCallback>,
    failure: Option<FailureCallback>,
    policy: Option<Policy>,
    middleware: Layers,
    kind: PhantomData<fn() -> K>,
}

impl<'a, K: 'static> Subscription<'a, K> {
    fn new(linker: &'a EventLinker, keys: Vec<EventKey>, once: bool) -> Self {
        Subscription {
            linker,
            keys,
            once,
            blocking: false,
            success: None,
            failure: None,
            policy: None,
            middleware: Vec::new(),
            kind: PhantomData,
        }
    }

    /// Runs `f` with the handler's `Ok` value when it succeeds (instead of the
    /// linker's default success callback). `f` takes the value, or nothing.
    pub fn on_success<T, M>(mut self, f: impl SuccessHandler<T, M>) -> Self {
        self.success = Some(f.into_success());
        self
    }

    /// Runs `f` with the error when the handler fails or panics (instead of the
    /// linker's default failure callback).
    pub fn on_failure(mut self, f: impl Fn(&anyhow::Error) + Send + Sync + 'static) -> Self {
        self.failure = Some(Arc::new(f));
        self
    }

    /// Runs a synchronous handler off the async workers (`spawn_blocking` on
    /// tokio): Pyventus's `force_async`, for handlers that block on I/O.
    pub fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }

    /// Makes the subscription a [`SubscriptionGuard`](crate::SubscriptionGuard): it ends when the guard
    /// drops, and once it has ended no new run of its handler starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::EventLinker;
    ///
    /// let linker = EventLinker::new();
    /// let guard = linker.on_named("Tick").guard().subscribe(|| println!("tick"))?;
    /// assert!(linker.contains_subscriber(guard.subscriber()));
    /// drop(guard);
    /// assert!(linker.is_empty());
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn guard(self) -> GuardedSubscription<'a, K> {
        GuardedSubscription::new(self)
    }

    /// Runs the handler under `policy`: retries with backoff, a timeout per
    /// attempt (async handlers only), a concurrency limit. Replaces what
    /// [`retries`](Self::retries), [`backoff`](Self::backoff),
    /// [`timeout`](Self::timeout) and [`concurrency`](Self::concurrency) set
    /// before it. See [`Policy`] and `docs/resilience.md`.
    ///
    /// `subscribe` returns [`Error::InvalidSetting`] for a policy that cannot
    /// work (see [`Policy::check`]) and for a timeout of a synchronous handler,
    /// which cannot be cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::resilience::{Busy, Policy};
    /// use pyventus_core::{Error, EventLinker};
    /// use std::time::Duration;
    ///
    /// let linker = EventLinker::new();
    /// let policy = Policy::new().retries(3).timeout(Duration::from_secs(2)).concurrency(8);
    /// linker
    ///     .on_named("OrderPlaced")
    ///     .policy(policy)
    ///     .subscribe_async(|| async { Ok::<(), anyhow::Error>(()) })?;
    ///
    /// // A synchronous handler cannot be cancelled at a deadline:
    /// let err = linker.on_named("OrderPlaced").policy(policy).subscribe(|| ()).unwrap_err();
    /// assert!(matches!(err, Error::InvalidSetting { setting: "timeout", .. }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Retries a failed run up to `retries` times ([`Policy::retries`]).
    pub fn retries(self, retries: u32) -> Self {
        self.with_policy(|p| p.retries(retries))
    }

    /// Waits from `min` to `max` between retries ([`Policy::backoff`]).
    pub fn backoff(self, min: Duration, max: Duration) -> Self {
        self.with_policy(|p| p.backoff(min, max))
    }

    /// Cancels an attempt of an async handler after `timeout` ([`Policy::timeout`]).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_policy(|p| p.timeout(timeout))
    }

    /// At most `limit` runs of the handler at once, and what a delivery does
    /// beyond them ([`Policy::concurrency`], [`Policy::when_busy`]).
    pub fn concurrency(self, limit: u32, busy: Busy) -> Self {
        self.with_policy(|p| p.concurrency(limit).when_busy(busy))
    }

    /// Wraps each attempt of the handler in `middleware` (after any given
    /// before it, and inside the linker's own: see [`Middleware`]).
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    fn with_policy(mut self, f: impl FnOnce(Policy) -> Policy) -> Self {
        self.policy = Some(f(self.policy.unwrap_or_default()));
        self
    }

    /// Subscribes a synchronous handler.
    pub fn subscribe<M, F: Handler<K, M>>(self, handler: F) -> Result<EventSubscriber, Error> {
        self.finish::<<F::Output as HandlerOutput>::Ok>(handler.into_callback())
    }

    /// Subscribes an asynchronous handler: a closure returning a future.
    pub fn subscribe_async<M, F: AsyncHandler<K, M>>(
        self,
        handler: F,
    ) -> Result<EventSubscriber, Error> {
        self.finish::<<F::Output as HandlerOutput>::Ok>(handler.into_callback())
    }

    fn finish<Ok: 'static>(self, callback: EventCallback) -> Result<EventSubscriber, Error> {
        self.finish_callback::<Ok>(callback, None)
    }

    pub(crate) fn finish_callback<Ok: 'static>(
        self,
        callback: EventCallback,
        gate: Option<Arc<Gate>>,
    ) -> Result<EventSubscriber, Error> {
        if let Some(expected) = self.success.as_ref().and_then(|s| s.expects)
            && expected.id != TypeId::of::<Ok>()
        {
            return Err(Error::SuccessType {
                expected: expected.name,
                found: type_name::<Ok>(),
            });
        }
        let callback = match self.policy {
            Some(policy) => EventCallback::guarded(callback, policy)?,
            None => callback,
        }
        .wrapped(&self.middleware);
        let parts = SubscriberParts {
            needs: &[],
            once: self.once,
            blocking: self.blocking,
            handler_id: None,
            callback,
            success: self.success,
            failure: self.failure,
            gate,
            responder: None,
        };
        self.linker.subscribe_parts(&self.keys, parts)
    }
}

/// Runtime subscription, mirroring Pyventus's `EventLinker.on` / `once`.
impl EventLinker {
    /// Subscribes to the typed event `E`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventLinker};
    /// #[derive(Debug, Clone)]
    /// struct Ping;
    /// impl Event for Ping {
    ///     const NAME: &'static str = "Ping";
    /// }
    ///
    /// let linker = EventLinker::new();
    /// linker.on::<Ping>().subscribe(|_: &Ping| println!("pong"))?;
    /// linker.on::<Ping>().subscribe(|_: Ping| println!("pong, by value"))?;
    /// linker.on::<Ping>().subscribe(|| println!("pong, whatever the event"))?;
    /// assert_eq!(linker.subscriber_count_of(pyventus_core::EventKey::of::<Ping>()), 3);
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn on<E: Event>(&self) -> Subscription<'_, Typed<E>> {
        Subscription::new(self, vec![EventKey::of::<E>()], false)
    }

    /// Subscribes once to the typed event `E`: the subscriber fires on the first
    /// emission, then is removed.
    pub fn once<E: Event>(&self) -> Subscription<'_, Typed<E>> {
        Subscription::new(self, vec![EventKey::of::<E>()], true)
    }

    /// Subscribes to a named event. The handler takes `&T` for the payload type
    /// `T` it expects (checked at each emission), `&AnyEvent`, or nothing.
    pub fn on_named(&self, name: impl Into<Cow<'static, str>>) -> Subscription<'_, Named> {
        Subscription::new(self, vec![EventKey::named(name)], false)
    }

    /// Subscribes once to a named event.
    pub fn once_named(&self, name: impl Into<Cow<'static, str>>) -> Subscription<'_, Named> {
        Subscription::new(self, vec![EventKey::named(name)], true)
    }

    /// Subscribes to the global event: every event emitted through this linker.
    pub fn on_any(&self) -> Subscription<'_, Many> {
        Subscription::new(self, vec![EventKey::any()], false)
    }

    /// Subscribes once to the global event: the next event, whatever it is.
    pub fn once_any(&self) -> Subscription<'_, Many> {
        Subscription::new(self, vec![EventKey::any()], true)
    }

    /// Subscribes to several events at once; the handler takes `&AnyEvent`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{AnyEvent, EventKey, EventLinker};
    /// let linker = EventLinker::new();
    /// let sub = linker
    ///     .once_keys(["FirstEvent", "SecondEvent"])
    ///     .subscribe(|e: &AnyEvent| println!("{} came first", e.name()))?;
    /// assert_eq!(linker.event_count_of(&sub), 2);
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn on_keys<K: Into<EventKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Subscription<'_, Many> {
        Subscription::new(self, keys.into_iter().map(Into::into).collect(), false)
    }

    /// Subscribes once to several events: the first of them to be emitted fires
    /// the subscriber, which is then removed from all of them.
    pub fn once_keys<K: Into<EventKey>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Subscription<'_, Many> {
        Subscription::new(self, keys.into_iter().map(Into::into).collect(), true)
    }
}
