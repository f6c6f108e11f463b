//! The heart of the integration: each request's queue of emissions, the fate
//! it moves through (pending, committed or discarded by the response,
//! dispatched once the response is sent), and the layer's shared settings that
//! dispatch runs on.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use pyventus_core::{Error, EventEmission, EventLinker, ProcessingService, Unfinished};
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

type Policy = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// What every request of one layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) linker: EventLinker,
    pub(crate) debug: bool,
    pub(crate) policy: Policy,
    pub(crate) processor: Arc<dyn ProcessingService>,
    pub(crate) tracker: TaskTracker,
    pub(crate) detach: bool,
}

impl Shared {
    /// Runs `emissions` one after the other, in order, through the processor,
    /// on the tracker (which the connection cannot cancel).
    pub(crate) fn dispatch(self: &Arc<Self>, emissions: Vec<EventEmission>) {
        if emissions.is_empty() {
            return;
        }
        let shared = self.clone();
        // `pyventus::wait_for_all` waits for these until the last has run, even
        // between two of them (they are submitted one at a time).
        let unfinished = Unfinished::new();
        let run = async move {
            let _unfinished = unfinished;
            for mut emission in emissions {
                let done = emission.completion();
                let (id, event) = (emission.id(), emission.event_name().to_owned());
                // Awaited: a broker's publish does not block a runtime thread.
                if let Err(err) = emission.submit_to_async(&*shared.processor).await {
                    tracing::error!(
                        target: "pyventus",
                        emission = id,
                        event,
                        "a background emission was refused by its processing service: {err}"
                    );
                    continue;
                }
                // Ends when the subscribers have run (or the processor sent the
                // emission elsewhere, or dropped it).
                let _ = done.await;
            }
        };
        match Handle::try_current() {
            Ok(handle) => drop(self.tracker.spawn_on(run, &handle)),
            // A body dropped outside any runtime: nothing can run it later.
            Err(_) => pyventus_core::runtime::block_on(self.tracker.track_future(run)),
        }
    }
}

/// What happens to a request's emissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Still recording: the handler has not returned.
    Pending,
    /// The response was accepted: they run once it is sent.
    Committed,
    /// `discard()`, or a response the policy refused: they never run.
    Discarded,
    /// They were handed to the layer's tracker; later emissions run at once.
    Dispatched,
}

tokio::task_local! {
    /// The queue of the request whose route (the handler's own future) is being
    /// polled: a task the route spawns does not inherit it.
    static ROUTE: usize;
}

/// A request's recorded emissions.
pub(crate) struct RequestQueue {
    state: Mutex<(Fate, Vec<EventEmission>)>,
    pub(crate) shared: Arc<Shared>,
}

impl RequestQueue {
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(RequestQueue {
            state: Mutex::new((Fate::Pending, Vec::new())),
            shared,
        })
    }

    /// Runs `route`, the request's handler, marked as this queue's route.
    pub(crate) fn route<F: Future>(&self, route: F) -> impl Future<Output = F::Output> + use<F> {
        ROUTE.scope(self.id(), route)
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether the caller is this request's route itself, whose response waits
    /// for it to return.
    fn inside_route(&self) -> bool {
        ROUTE.try_with(|id| *id == self.id()).unwrap_or(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Fate, Vec<EventEmission>)> {
        // No user code runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an emission of the request, or refuses one the route itself
    /// would wait for: it runs after the response, which waits for the route.
    /// Anyone else (a task the route spawned) may wait: until the response is
    /// sent and the emission has run.
    pub(crate) fn record(&self, emission: EventEmission) -> Result<(), Error> {
        let mut state = self.lock();
        match state.0 {
            Fate::Pending if emission.is_awaited() && self.inside_route() => {
                drop(state);
                emission.discard();
                Err(Error::WouldDeadlock(
                    "`emit_and_wait` through a `BackgroundEmitter` in its own route would wait for \
                     the response, which waits for the route: use `emit` (it runs after the \
                     response), or an `EventEmitter` with another processing service to wait now"
                        .to_owned(),
                ))
            }
            Fate::Pending | Fate::Committed => {
                state.1.push(emission);
                Ok(())
            }
            Fate::Discarded => {
                drop(state);
                emission.discard();
                Ok(())
            }
            // The response is already on its way: an emission made later (from a
            // task the handler spawned) runs right away, and may be waited for.
            Fate::Dispatched => {
                drop(state);
                self.shared.dispatch(vec![emission]);
                Ok(())
            }
        }
    }

    /// Settles the queue once the handler returned a response with `status`.
    pub(crate) fn settle(&self, status: StatusCode) {
        let mut state = self.lock();
        if state.0 == Fate::Pending {
            state.0 = if (self.shared.policy)(status) {
                Fate::Committed
            } else {
                Fate::Discarded
            };
        }
        if state.0 == Fate::Discarded {
            discard_all(&mut state.1);
        }
    }

    pub(crate) fn discard(&self) {
        let mut state = self.lock();
        if state.0 != Fate::Dispatched {
            state.0 = Fate::Discarded;
            discard_all(&mut state.1);
        }
    }

    /// Hands the committed emissions to the layer: the response was sent, or
    /// will never be.
    pub(crate) fn dispatch(&self) {
        let emissions = {
            let mut state = self.lock();
            match state.0 {
                Fate::Committed => {
                    state.0 = Fate::Dispatched;
                    std::mem::take(&mut state.1)
                }
                // The handler never returned (it panicked, or was cancelled
                // without `detach_from_client`): nothing was accepted.
                Fate::Pending | Fate::Discarded => {
                    state.0 = Fate::Discarded;
                    discard_all(&mut state.1);
                    return;
                }
                Fate::Dispatched => return,
            }
        };
        self.shared.dispatch(emissions);
    }
}

/// Drops recorded emissions on purpose: the response did not accept them.
fn discard_all(emissions: &mut Vec<EventEmission>) {
    emissions.drain(..).for_each(EventEmission::discard);
}
