//! Running a future to completion from synchronous code, wherever that code is,
//! and pyventus's own runtime, for I/O that must not depend on the caller's.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

pub(crate) mod blocking;

/// Most workers pyventus's runtime starts (fewer on fewer cores).
const MAX_WORKERS: usize = 4;

/// The shared runtime of emissions that run outside any runtime: the inline
/// processor's async handlers, the tokio processor called from sync code, the
/// executor's async handlers. Futures given to `block_on` are polled on the
/// calling thread; its workers drive timers and I/O and run the tasks those
/// futures spawn, which keep running after the call returns.
fn private_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_WORKERS);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("pyventus-runtime")
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("pyventus: cannot start its private tokio runtime: {err}"))
    })
}

/// A handle to pyventus's own runtime, which lives as long as the process and
/// is never dropped: what runs on its blocking threads keeps no program's
/// runtime from shutting down.
pub(crate) fn own_handle() -> Handle {
    private_runtime().handle().clone()
}

/// Runs `fut` on pyventus's own runtime and waits for its output, from any
/// runtime. Its worker drives the I/O of what `fut` sets up whatever the
/// caller's runtime is doing, so a connection made here keeps working while a
/// synchronous `emit` blocks that runtime on it (see [`block_on`]). For
/// backends: a broker's connection made here serves `submit` from anywhere.
///
/// # Panics
///
/// If `fut` panics (the panic is resumed in the caller).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let answer = pyventus_core::runtime::on_io_runtime(async { 40 + 2 }).await;
/// assert_eq!(answer, 42);
/// # }
/// ```
pub async fn on_io_runtime<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match private_runtime().spawn(fut).await {
        Ok(output) => output,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Spawns `fut` on pyventus's own runtime and returns its handle, whoever
/// calls. For a backend's background work that must go on while the caller's
/// runtime is busy: a task spawned (or woken) from one of a runtime's workers
/// waits in that worker's own slot, which no other worker takes, until the
/// task the worker is polling yields; a handler blocking that thread would
/// hold it up.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let task = pyventus_core::runtime::spawn_on_io_runtime(async { 40 + 2 });
/// assert_eq!(task.await.unwrap(), 42);
/// # }
/// ```
pub fn spawn_on_io_runtime<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    private_runtime().spawn(fut)
}

/// Spawns `fut` on pyventus's own runtime, whoever calls.
#[cfg(feature = "tokio")]
pub(crate) fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    drop(private_runtime().spawn(fut));
}

/// Blocks the calling thread on `fut`, wherever it is called from: what a
/// processing service's synchronous `submit` needs to do asynchronous I/O.
///
/// Outside a runtime it uses pyventus's own runtime. On a multi-thread runtime
/// it steps out of the async context first (`block_in_place`), so the runtime
/// keeps its other workers. On a current-thread runtime, whose only thread must
/// not block on itself, it drives `fut` on a scoped helper thread; anything `fut`
/// waits on must then be driven elsewhere (set it up with [`on_io_runtime`]).
///
/// # Examples
///
/// ```
/// assert_eq!(pyventus_core::runtime::block_on(async { 1 + 1 }), 2);
/// ```
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match Handle::try_current() {
        Err(_) => private_runtime().block_on(fut),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(fut))
        }
        Ok(_) => std::thread::scope(|scope| {
            scope
                .spawn(|| private_runtime().block_on(fut))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
    }
}

/// Waits `duration` on pyventus's own runtime's timer, from any runtime or
/// none: a handler's backoff and deadline work on a runtime built without
/// timers, on a current-thread one, and on the executor's threads alike. The
/// timer is cancelled if the wait is.
pub(crate) async fn sleep(duration: std::time::Duration) {
    if duration.is_zero() {
        return;
    }
    let timer = private_runtime().spawn(tokio::time::sleep(duration));
    let _cancel = AbortOnDrop(timer.abort_handle());
    // An error can only be the timer's cancellation: the wait is over either way.
    let _ = timer.await;
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
