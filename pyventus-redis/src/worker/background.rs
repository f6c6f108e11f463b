//! A worker's background task on pyventus's own runtime, apart from the
//! handlers: the lease keeper, and the acknowledgements' rescuer.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
