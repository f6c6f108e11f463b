//! `shutdown_signal`: the signal that asks a worker (or a server) to drain and
//! stop, for `remote` (workers) and the axum layer alike.

/// Completes at the next Ctrl-C, or, on Unix, SIGTERM (what systemd and
/// Kubernetes send to stop a process): what `run_until_signal` waits for
/// before a graceful shutdown.
///
/// # Examples
///
/// ```no_run
/// # async fn serve() {}
/// # #[tokio::main] async fn main() {
/// tokio::select! {
///     () = serve() => {}
///     () = pyventus_core::shutdown_signal() => println!("draining"),
/// }
/// # }
/// ```
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let terminate = tokio::signal::unix::SignalKind::terminate();
        let Ok(mut term) = tokio::signal::unix::signal(terminate) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        let interrupt = std::pin::pin!(tokio::signal::ctrl_c());
        let terminate = std::pin::pin!(term.recv());
        futures::future::select(interrupt, terminate).await;
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `run` to its end, calling `drain` at the first shutdown signal and
/// `stop` at a second one: what a worker's `run_until_signal` does (Redis's,
/// RabbitMQ's and PostgreSQL's relay share it). `drain` asks the worker to
/// take nothing more and finish what is in flight; `stop` to cut that short.
/// Each signal is logged. The signals are watched only while `run` runs.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use tokio::sync::Notify;
///
/// # #[tokio::main] async fn main() {
/// let asked = Arc::new(Notify::new());
/// let drain = asked.clone();
/// let worked = pyventus_core::run_until_signal(
///     async move {
///         asked.notified().await; // a worker's loop, until asked to drain
///         "drained"
///     },
///     move || drain.notify_one(),
///     || {}, // nothing in flight to cut short
/// )
/// .await;
/// println!("{worked}");
/// # }
/// ```
pub async fn run_until_signal<T>(
    run: impl Future<Output = T>,
    drain: impl FnOnce() + Send + 'static,
    stop: impl FnOnce() + Send + 'static,
) -> T {
    let signals = tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(target: "pyventus", "signal received: finishing the deliveries in flight (again to stop at once)");
        drain();
        shutdown_signal().await;
        tracing::warn!(target: "pyventus", "second signal: cutting the deliveries in flight short");
        stop();
    });
    let result = run.await;
    signals.abort();
    result
}
