//! A worker's background task on pyventus's own runtime, apart from the
//! handlers: the lease keeper, and the acknowledgements' rescuer.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running background task; dropping it (a `run` future dropped) stops it.
pub(super) struct Background {
    what: &'static str,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Background {
    /// Spawns `body` on pyventus's own runtime, where handlers that block a
    /// thread or hog the CPU of the worker's runtime cannot starve it. `body`
    /// gets the token that [`stop`](Self::stop) cancels.
    pub(super) fn start<B, F>(what: &'static str, body: B) -> Background
    where
        B: FnOnce(CancellationToken) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = pyventus_core::runtime::spawn_on_io_runtime(body(stop.clone()));
        Background {
            what,
            stop,
            task: Some(task),
        }
    }

    /// The task, kept while `in_flight` runs: dropped before its
    /// [`stop`](Lasting::stop) (a `run` future dropped), it goes on until
    /// every task `in_flight` tracks has ended, then stops.
    pub(super) fn lasting_while(self, in_flight: &TaskTracker) -> Lasting {
        Lasting {
            task: Some(self),
            in_flight: in_flight.clone(),
        }
    }

    /// Stops the task, and waits for it to end.
    pub(super) async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
        {
            tracing::error!(target: "pyventus", "{} ended abnormally: {err}", self.what);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A [`Background`] task that outlives a dropped `run` for as long as the
/// deliveries that run started: they go on without it (their entries then
/// settled as usual), and so must what keeps them (their leases).
pub(super) struct Lasting {
    task: Option<Background>,
    in_flight: TaskTracker,
}

impl Lasting {
    /// Stops the task at once, and waits for it to end.
    pub(super) async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.stop().await;
        }
    }
}

impl Drop for Lasting {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        let in_flight = self.in_flight.clone();
        in_flight.close();
        // On pyventus's runtime: the caller's may be the one going away. A
        // delivery dropped with its runtime leaves the tracker too.
        drop(pyventus_core::runtime::spawn_on_io_runtime(async move {
            in_flight.wait().await;
            task.stop().await;
        }));
    }
}
