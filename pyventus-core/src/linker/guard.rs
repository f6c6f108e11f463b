//! Scoped subscriptions: `linker.on::<E>().guard()`, the builder it returns,
//! and the [`SubscriptionGuard`] that unsubscribes when it drops.
//!
//! Concurrency: a guarded subscriber's callback passes its gate
//! (`lifecycle::gate`) at the start of every run, lock-free. Dropping the
//! guard closes the gate, then unlinks the subscriber under the registry's
//! lock (no user code runs there); a run that had passed the gate before may
//! still be running, and [`SubscriptionGuard::unsubscribe`] waits for it.

use std::fmt;
use std::sync::Arc;

use crate::handler::{AsyncHandler, Handler};
use crate::lifecycle::gate::Gate;
use crate::{Error, EventSubscriber, Subscription};

/// A subscription being built whose subscriber will be owned by a
/// [`SubscriptionGuard`]: what [`Subscription::guard`] returns.
///
/// # Examples
///
/// ```
/// use pyventus_core::EventLinker;
///
/// let linker = EventLinker::new();
/// let guard = linker.on_named("Tick").guard().subscribe(|| println!("tick"))?;
/// assert_eq!(linker.subscriber_count(), 1);
/// drop(guard);
/// assert!(linker.is_empty());
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[must_use = "a subscription does nothing until `.subscribe(...)` or `.subscribe_async(...)`"]
pub struct GuardedSubscription<'a, K> {
    subscription: Subscription<'a, K>,
}

impl<'a, K: 'static> GuardedSubscription<'a, K> {
    pub(crate) fn new(subscription: Subscription<'a, K>) -> Self {
        GuardedSubscription { subscription }
    }

    /// Subscribes a synchronous handler; the guard unsubscribes it on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{EventEmitter, EventLinker};
    ///
    /// let linker = EventLinker::new();
    /// let guard = linker.on_named("Greet").guard().subscribe(|name: &String| {
    ///     println!("Hello, {name}!");
    /// })?;
    /// EventEmitter::builder().linker(linker).build().emit_named("Greet", "Ada".to_string())?;
    /// drop(guard);
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn subscribe<M, F: Handler<K, M>>(self, handler: F) -> Result<SubscriptionGuard, Error> {
        let gate = Gate::new();
        let callback = handler.into_callback().gated(gate.clone());
        self.subscription
            .finish_callback::<<F::Output as crate::HandlerOutput>::Ok>(callback, Some(gate))
            .map(SubscriptionGuard::new)
    }

    /// Subscribes an asynchronous handler; the guard unsubscribes it on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::EventLinker;
    ///
    /// let linker = EventLinker::new();
    /// let guard = linker
    ///     .on_named("Tick")
    ///     .guard()
    ///     .subscribe_async(|| async { println!("tick") })?;
    /// assert!(guard.subscriber().is_async());
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn subscribe_async<M, F: AsyncHandler<K, M>>(
        self,
        handler: F,
    ) -> Result<SubscriptionGuard, Error> {
        let gate = Gate::new();
        let callback = handler.into_callback().gated(gate.clone());
        self.subscription
            .finish_callback::<<F::Output as crate::HandlerOutput>::Ok>(callback, Some(gate))
            .map(SubscriptionGuard::new)
    }
}

/// A subscription that ends when this guard is dropped: a subscription tied to
/// a connection, a request or a test ends when its owner goes away.
///
/// Made by [`Subscription::guard`] (`linker.on::<E>().guard().subscribe(f)`),
/// and by [`EventLinker::stream`](crate::EventLinker::stream) for the stream
/// it owns.
///
/// - **Drop** unsubscribes at once: once the drop returns, no new run of the
///   handler starts, on any thread, whatever emissions were already on their
///   way. A run that started before may still be running; the drop does not
///   wait for it (so it may happen anywhere, inside the handler too).
/// - [`unsubscribe`](Self::unsubscribe)`.await` does the same, then waits for
///   the runs in progress to finish. From inside one of those runs it would
///   wait for itself: it refuses, with [`Error::WouldDeadlock`].
/// - [`detach`](Self::detach) keeps the subscription, for good, and hands back
///   its [`EventSubscriber`] (whose `unsubscribe()` also stops new runs at
///   once).
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let linker = EventLinker::new();
/// let emitter = EventEmitter::builder().linker(linker.clone()).build();
/// let seen = Arc::new(AtomicUsize::new(0));
///
/// {
///     let seen = seen.clone();
///     let _guard = linker
///         .on_named("Tick")
///         .guard()
///         .subscribe(move || seen.fetch_add(1, Ordering::SeqCst))?;
///     emitter.emit_named("Tick", ())?;
/// } // the guard drops here: unsubscribed
///
/// emitter.emit_named("Tick", ())?;
/// assert_eq!(seen.load(Ordering::SeqCst), 1);
/// assert!(linker.is_empty());
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[must_use = "dropping a `SubscriptionGuard` unsubscribes at once: keep it in a variable \
              (`let _guard = ...`, not `let _ = ...`) for as long as the subscription \
              should last, or call `.detach()` to keep the subscription for good"]
pub struct SubscriptionGuard {
    subscriber: EventSubscriber,
    /// Whether dropping it still ends the subscription (not once ended, or
    /// detached).
    armed: bool,
}

impl SubscriptionGuard {
    fn new(subscriber: EventSubscriber) -> Self {
        SubscriptionGuard {
            subscriber,
            armed: true,
        }
    }

    /// The guarded subscriber.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// let linker = EventLinker::new();
    /// let guard = linker.on_named("Tick").guard().subscribe(|| ())?;
    /// assert!(linker.contains_subscriber(guard.subscriber()));
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn subscriber(&self) -> &EventSubscriber {
        &self.subscriber
    }

    /// How many runs of the handler are in progress now.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// let linker = EventLinker::new();
    /// let guard = linker.on_named("Tick").guard().subscribe(|| ())?;
    /// assert_eq!(guard.running(), 0);
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn running(&self) -> usize {
        self.gate().map_or(0, |gate| gate.running())
    }

    /// Keeps the subscription for good and hands back its subscriber: the
    /// guard no longer ends it. `subscriber.unsubscribe()` still does, and
    /// stops new runs at once as the guard would have.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// let linker = EventLinker::new();
    /// let sub = linker.on_named("Tick").guard().subscribe(|| ())?.detach();
    /// assert!(sub.is_subscribed());
    /// assert!(sub.unsubscribe());
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn detach(mut self) -> EventSubscriber {
        self.armed = false;
        self.subscriber.clone()
    }

    /// Unsubscribes, as dropping the guard does, then waits until every run
    /// of the handler that started before has finished (its success or
    /// failure callback included).
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] when awaited from inside one of the handler's
    /// own runs (which could not finish before the wait does): the
    /// subscription has ended all the same, and no new run starts. A run that
    /// waits for another task that awaits this cannot be detected: it hangs.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{EventEmitter, EventLinker, TokioProcessingService};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pyventus_core::Error> {
    /// let linker = EventLinker::new();
    /// let guard = linker.on_named("Slow").guard().subscribe_async(|| async {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    /// })?;
    /// let emitter = EventEmitter::builder()
    ///     .processor(TokioProcessingService::default())
    ///     .linker(linker)
    ///     .build();
    /// emitter.emit_named("Slow", ())?;
    /// tokio::task::yield_now().await; // the run starts
    /// guard.unsubscribe().await?; // returns once it is over
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe(mut self) -> Result<(), Error> {
        let gate = self.gate().cloned();
        let inside = gate.as_ref().is_some_and(|gate| gate.is_inside());
        self.end();
        if inside {
            return Err(Error::WouldDeadlock(
                "`SubscriptionGuard::unsubscribe().await` was called from inside a run of the \
                 handler it guards, which cannot finish before the wait does: the subscription \
                 has ended, but to wait for its runs, await this outside the handler \
                 (or drop the guard, which does not wait)"
                    .to_owned(),
            ));
        }
        if let Some(gate) = gate {
            gate.drained().await;
        }
        Ok(())
    }

    pub(crate) fn gate(&self) -> Option<&Arc<Gate>> {
        self.subscriber.inner.gate.as_ref()
    }

    /// Ends the subscription: the gate first (no run starts from here on),
    /// then the registry.
    fn end(&mut self) {
        if std::mem::replace(&mut self.armed, false) {
            self.subscriber.unsubscribe();
        }
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.end();
    }
}

impl fmt::Debug for SubscriptionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionGuard")
            .field("subscriber", &self.subscriber)
            .field("armed", &self.armed)
            .finish()
    }
}
