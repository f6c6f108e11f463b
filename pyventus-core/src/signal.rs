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

/// The instant `duration` from now, or a year from now for a duration past
/// what an `Instant` holds: a deadline a user set to `Duration::MAX` ("wait
/// for good") does not overflow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main] async fn main() {
/// let now = tokio::time::Instant::now();
/// assert!(pyventus_core::deadline(Duration::MAX) > now + Duration::from_hours(24 * 364));
/// assert!(pyventus_core::deadline(Duration::ZERO) >= now);
/// # }
/// ```
pub fn deadline(duration: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(duration)
        .unwrap_or_else(|| now + std::time::Duration::from_hours(365 * 24))
}

/// A worker's `shutdown_now`, and the grace it leaves: what is still being
/// written when it is called (an acknowledgement, an outcome, an entry or
/// event given back, a read's answer) has [`GRACE`](Self::GRACE) from then,
/// so that `run` returns at once even when the server does not answer. A
/// backend's drain bounds each of its waits with [`bound`](Self::bound).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use pyventus_core::ShutdownNow;
///
/// # #[tokio::main] async fn main() {
/// let now = ShutdownNow::default();
/// let started = Instant::now();
/// now.call();
/// // A write that never ends, waited for with a 25 s deadline:
/// tokio::select! {
///     () = std::future::pending::<()>() => unreachable!(),
///     () = now.bound(Duration::from_secs(25)) => {}
/// }
/// assert!(started.elapsed() < Duration::from_secs(5));
/// # }
/// ```
#[derive(Debug, Default)]
pub struct ShutdownNow {
    at: std::sync::OnceLock<std::time::Instant>,
    called: tokio::sync::Notify,
}

impl ShutdownNow {
    /// What is still being written has this long after `shutdown_now`: what
    /// a healthy server needs, and no wait on one that does not answer.
    pub const GRACE: std::time::Duration = std::time::Duration::from_secs(1);

    /// `shutdown_now` was called (again: the grace still runs from the first
    /// call).
    pub fn call(&self) {
        if self.at.set(std::time::Instant::now()).is_ok() {
            self.called.notify_waiters();
        }
    }

    /// Whether `shutdown_now` was called.
    pub fn is_called(&self) -> bool {
        self.at.get().is_some()
    }

    /// Completes once `limit` has passed, or the grace after `shutdown_now`,
    /// whichever comes first.
    pub async fn bound(&self, limit: std::time::Duration) {
        let limit = std::pin::pin!(tokio::time::sleep(limit));
        let grace = std::pin::pin!(self.grace_ended());
        futures::future::select(limit, grace).await;
    }

    /// Completes at the end of the grace after `shutdown_now` (never, if it
    /// is not called): what cuts short a step that has no limit of its own.
    pub async fn grace_ended(&self) {
        let at = loop {
            let called = self.called.notified();
            let mut called = std::pin::pin!(called);
            // Registered before the check, so that a call in between wakes it.
            called.as_mut().enable();
            if let Some(at) = self.at.get() {
                break *at;
            }
            called.await;
        };
        tokio::time::sleep_until((at + Self::GRACE).into()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::ShutdownNow;

    #[tokio::test]
    async fn bound_is_its_limit_while_shutdown_now_is_not_called() {
        let now = ShutdownNow::default();
        let started = Instant::now();
        now.bound(Duration::from_millis(50)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < ShutdownNow::GRACE, "{took:?}");
        assert!(!now.is_called());
    }

    #[tokio::test]
    async fn a_call_during_a_wait_ends_it_one_grace_later() {
        let now = std::sync::Arc::new(ShutdownNow::default());
        let caller = now.clone();
        let started = Instant::now();
        let call = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            caller.call();
        });
        now.bound(Duration::from_mins(1)).await;
        let took = started.elapsed();
        assert!(took >= ShutdownNow::GRACE, "{took:?}");
        assert!(took < ShutdownNow::GRACE * 3, "{took:?}");
        call.await.unwrap();
    }

    #[tokio::test]
    async fn the_grace_runs_from_the_first_call_for_every_later_wait() {
        let now = ShutdownNow::default();
        now.call();
        tokio::time::sleep(ShutdownNow::GRACE).await;
        now.call(); // a second signal does not extend it
        let started = Instant::now();
        now.bound(Duration::from_mins(1)).await;
        now.grace_ended().await;
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(now.is_called());
    }
}
