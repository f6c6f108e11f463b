//! `shutdown_signal`: the signal that asks a worker (or a server) to drain and
//! stop.

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
///     () = pyventus_core::remote::shutdown_signal() => println!("draining"),
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
