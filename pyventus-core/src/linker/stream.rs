//! Events as a stream: `linker.stream::<E>(capacity)` and its named twin, the
//! [`EventStream`] they return, and the [`Lagged`] item a slow consumer gets.
//!
//! Concurrency: the stream's subscriber pushes each event into a bounded ring
//! under a mutex that guards the ring alone; an event pushed out of a full
//! ring (the oldest) is dropped, and the consumer's waker woken, after the
//! lock is let go, so no user code (an event's `Drop`, an executor's wake)
//! runs under it. The stream owns a [`SubscriptionGuard`]: dropping it
//! unsubscribes.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::Stream;

use crate::{Error, Event, EventLinker, SubscriptionGuard};

/// What a slow consumer of an [`EventStream`] gets in place of the events it
/// missed: how many there were. The stream goes on with the oldest event it
/// still holds, the newest `capacity` ones.
///
/// # Examples
///
/// ```
/// use pyventus_core::Lagged;
///
/// let lag = Lagged { missed: 3 };
/// assert_eq!(lag.to_string(), "the stream fell behind: 3 events were missed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("the stream fell behind: {missed} events were missed")]
pub struct Lagged {
    /// How many events the consumer missed since its last item.
    pub missed: u64,
}

/// The events of one subscription, as a [`futures::Stream`]: each item is an
/// event, or [`Lagged`] when the consumer fell more than `capacity` events
/// behind (it then goes on with the newest it holds; it never ends silently).
///
/// Made by [`EventLinker::stream`] (typed events, as `Arc<E>`) and
/// [`EventLinker::stream_named`] (a named event's payload, cloned). Dropping
/// the stream unsubscribes it, as a [`SubscriptionGuard`] does. The stream
/// ends (`None`) only when its subscriber is removed by other means
/// ([`EventLinker::remove_all`], say), once it has handed over every event
/// it received.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use pyventus_core::{Event, EventEmitter, EventLinker};
///
/// #[derive(Debug)]
/// struct Price(u32);
/// impl Event for Price {
///     const NAME: &'static str = "Price";
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pyventus_core::Error> {
/// let linker = EventLinker::new();
/// let emitter = EventEmitter::builder().linker(linker.clone()).build();
/// let mut prices = linker.stream::<Price>(16)?;
///
/// emitter.emit(Price(100))?;
/// emitter.emit(Price(101))?;
/// assert_eq!(prices.next().await.unwrap().unwrap().0, 100);
/// assert_eq!(prices.next().await.unwrap().unwrap().0, 101);
///
/// drop(prices); // unsubscribed
/// assert!(linker.is_empty());
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled; dropping one unsubscribes it"]
pub struct EventStream<T> {
    shared: Arc<Shared<T>>,
    guard: SubscriptionGuard,
}

struct Shared<T> {
    capacity: usize,
    ring: Mutex<Ring<T>>,
}

struct Ring<T> {
    items: VecDeque<T>,
    missed: u64,
    waker: Option<Waker>,
    /// The subscriber was unlinked: what is left, with the runs in progress,
    /// is all there will be.
    closed: bool,
}

impl<T> Shared<T> {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Shared {
            capacity,
            ring: Mutex::new(Ring {
                items: VecDeque::with_capacity(capacity),
                missed: 0,
                waker: None,
                closed: false,
            }),
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring<T>> {
        // No user code runs under the lock, so a poisoned one is still whole.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, item: T) {
        let (evicted, waker) = {
            let mut ring = self.ring();
            let evicted = if ring.items.len() == self.capacity {
                ring.missed += 1;
                ring.items.pop_front()
            } else {
                None
            };
            ring.items.push_back(item);
            (evicted, ring.waker.take())
        };
        drop(evicted);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The subscriber's side of the ring.
struct Feed<T>(Arc<Shared<T>>);

impl<T> Feed<T> {
    fn push(&self, item: T) {
        self.0.push(item);
    }
}

impl<T: Send + 'static> EventStream<T> {
    /// The stream of `shared`, fed by the subscriber `guard` owns: it ends
    /// once that subscriber is unlinked by other means and has finished its
    /// runs.
    fn new(shared: Arc<Shared<T>>, guard: SubscriptionGuard) -> Self {
        if let Some(gate) = guard.gate() {
            let told = shared.clone();
            gate.on_unlink(move || {
                let waker = {
                    let mut ring = told.ring();
                    ring.closed = true;
                    ring.waker.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            });
        }
        EventStream { shared, guard }
    }
}

impl<T> Stream for EventStream<T> {
    type Item = Result<T, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut ring = self.shared.ring();
        if ring.missed > 0 {
            let missed = std::mem::take(&mut ring.missed);
            return Poll::Ready(Some(Err(Lagged { missed })));
        }
        if let Some(item) = ring.items.pop_front() {
            return Poll::Ready(Some(Ok(item)));
        }
        if ring.closed {
            // Unlinked: no run starts from here on; one in progress may still
            // push (it needs the lock this poll holds, so it has not yet).
            if let Some(gate) = self.guard.gate() {
                gate.close();
                if gate.running() > 0 {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            return Poll::Ready(None);
        }
        match &mut ring.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.shared.ring().items.len(), None)
    }
}

impl<T> EventStream<T> {
    /// The subscription behind the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// let linker = EventLinker::new();
    /// let stream = linker.stream_named::<u32>("Tick", 8)?;
    /// assert!(linker.contains_subscriber(stream.guard().subscriber()));
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn guard(&self) -> &SubscriptionGuard {
        &self.guard
    }

    /// How many events it holds, not yet taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{EventEmitter, EventLinker};
    /// let linker = EventLinker::new();
    /// let stream = linker.stream_named::<u32>("Tick", 8)?;
    /// EventEmitter::builder().linker(linker).build().emit_named("Tick", 1_u32)?;
    /// assert_eq!(stream.len(), 1);
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.shared.ring().items.len()
    }

    /// Whether it holds no event.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// let stream = EventLinker::new().stream_named::<u32>("Tick", 8)?;
    /// assert!(stream.is_empty());
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most events it holds before the oldest is dropped for a
    /// [`Lagged`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::EventLinker;
    /// let stream = EventLinker::new().stream_named::<u32>("Tick", 8)?;
    /// assert_eq!(stream.capacity(), 8);
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }
}

impl<T> fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("capacity", &self.shared.capacity)
            .field("len", &self.len())
            .field("subscriber", self.guard.subscriber())
            .finish()
    }
}

fn check_capacity(capacity: usize) -> Result<(), Error> {
    if capacity == 0 {
        return Err(Error::InvalidSetting {
            setting: "capacity",
            problem: "is 0, so the stream could hold no event; give at least 1",
        });
    }
    Ok(())
}

/// Events as streams.
impl EventLinker {
    /// Subscribes to the typed event `E` with a stream of its events, which
    /// holds up to `capacity` of them that its consumer has not taken yet.
    /// One more pushes the oldest out: the consumer then gets a [`Lagged`]
    /// with how many it missed, then the newest ones.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] for a capacity of 0; the errors of
    /// subscribing (a name another type owns, `max_subscribers`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use pyventus_core::{Event, EventEmitter, EventLinker, Lagged};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Tick(u32);
    /// impl Event for Tick {
    ///     const NAME: &'static str = "Tick";
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pyventus_core::Error> {
    /// let linker = EventLinker::new();
    /// let emitter = EventEmitter::builder().linker(linker.clone()).build();
    /// let mut ticks = linker.stream::<Tick>(2)?;
    /// for n in 0..5 {
    ///     emitter.emit(Tick(n))?;
    /// }
    /// assert_eq!(ticks.next().await, Some(Err(Lagged { missed: 3 })));
    /// assert_eq!(ticks.next().await.unwrap().unwrap().0, 3);
    /// assert_eq!(ticks.next().await.unwrap().unwrap().0, 4);
    /// # Ok(()) }
    /// ```
    pub fn stream<E: Event>(&self, capacity: usize) -> Result<EventStream<Arc<E>>, Error> {
        check_capacity(capacity)?;
        let shared = Shared::new(capacity);
        let feed = Feed(shared.clone());
        let guard = self
            .on::<E>()
            .guard()
            .subscribe(move |event: Arc<E>| feed.push(event))?;
        Ok(EventStream::new(shared, guard))
    }

    /// Subscribes to a named event with a stream of its payloads (cloned, as
    /// `T`), as [`stream`](Self::stream) does for a typed event. An emission
    /// whose payload is not a `T` goes to the linker's failure callback, as
    /// for any handler of the name.
    ///
    /// # Errors
    ///
    /// As [`stream`](Self::stream); [`Error::EmptyEventName`] for an empty
    /// name.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use pyventus_core::{EventEmitter, EventLinker};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pyventus_core::Error> {
    /// let linker = EventLinker::new();
    /// let emitter = EventEmitter::builder().linker(linker.clone()).build();
    /// let mut greetings = linker.stream_named::<String>("Greet", 16)?;
    /// emitter.emit_named("Greet", "Pyventus".to_string())?;
    /// assert_eq!(greetings.next().await, Some(Ok("Pyventus".to_string())));
    /// # Ok(()) }
    /// ```
    pub fn stream_named<T: Clone + Send + Sync + 'static>(
        &self,
        name: impl Into<Cow<'static, str>>,
        capacity: usize,
    ) -> Result<EventStream<T>, Error> {
        check_capacity(capacity)?;
        let shared = Shared::new(capacity);
        let feed = Feed(shared.clone());
        let guard = self
            .on_named(name)
            .guard()
            .subscribe(move |payload: &T| feed.push(payload.clone()))?;
        Ok(EventStream::new(shared, guard))
    }
}
