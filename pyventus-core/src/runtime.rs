//! Running a future to completion from synchronous code, wherever that code is.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// The private runtime of emissions that must finish outside any runtime (the
/// inline processor's async handlers, the tokio processor called from sync code).
/// Futures are polled on the calling thread; its one worker drives timers and I/O.
fn private_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pyventus-runtime")
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("pyventus: cannot start its private tokio runtime: {err}"))
    })
}

/// Runs `fut` on the private runtime, whose worker drives its I/O whatever the
/// caller's runtime is doing (so a connection made here never waits on a
/// runtime its user blocks).
#[cfg(feature = "redis")]
pub(crate) async fn on_private<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match private_runtime().spawn(fut).await {
        Ok(output) => output,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Blocks the calling thread on `fut`.
///
/// Outside a runtime it uses the private runtime. On a multi-thread runtime it
/// steps out of the async context first (`block_in_place`), so the runtime keeps
/// its other workers. On a current-thread runtime, whose only thread must not
/// block on itself, it drives `fut` on a scoped helper thread.
pub(crate) fn block_on<F>(fut: F) -> F::Output
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
