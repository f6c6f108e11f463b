//! `Health`: where a broker's worker stands, for readiness and liveness probes,
//! and `HealthWatch`, the cell a worker keeps it in.

use std::time::Instant;

use tokio::sync::watch;

/// Where a worker stands, as its `health()` and `watch_health()` report it.
///
/// A readiness probe asks for [`Ready`](Self::Ready); a liveness probe for
/// anything but [`Failed`](Self::Failed) (and, if it cares, for
/// [`Reconnecting`](Self::Reconnecting) not lasting too long).
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::Health;
/// use std::time::Instant;
///
/// let health = Health::Reconnecting { since: Instant::now(), attempts: 3 };
/// assert!(!health.is_ready());
/// assert!(health.is_alive());
/// assert!(Health::Ready.is_ready());
/// assert!(!Health::Starting.is_ready());
/// assert!(!Health::Failed.is_alive());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Built; its run has not connected yet.
    Starting,
    /// Connected and taking messages.
    Ready,
    /// The broker has been unreachable since `since`; the worker retries with
    /// a backoff until it is back or it gives up. Deliveries in flight keep
    /// running.
    Reconnecting {
        /// When the outage began.
        since: Instant,
        /// Attempts to reconnect so far.
        attempts: u32,
    },
    /// Shutting down: taking no more messages, finishing those in flight.
    Stopping,
    /// Its run returned after a shutdown.
    Stopped,
    /// Its run returned an error (it gave up on the broker, or the broker
    /// refused its credentials).
    Failed,
}

impl Health {
    /// Whether the worker is taking messages.
    pub fn is_ready(&self) -> bool {
        *self == Health::Ready
    }

    /// Whether the worker is running or about to (not stopped, not failed).
    pub fn is_alive(&self) -> bool {
        !matches!(self, Health::Stopped | Health::Failed)
    }
}

/// A worker's [`Health`], which its probes read and watch: a `tokio` watch
/// channel, so a change wakes whoever waits for one.
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::{Health, HealthWatch};
///
/// let health = HealthWatch::new();
/// let mut changes = health.watch();
/// assert_eq!(health.get(), Health::Starting);
/// health.set(Health::Ready);
/// assert!(changes.has_changed().unwrap());
/// assert_eq!(*changes.borrow_and_update(), Health::Ready);
/// ```
#[derive(Debug)]
pub struct HealthWatch(watch::Sender<Health>);

impl HealthWatch {
    /// A worker that is [`Starting`](Health::Starting).
    pub fn new() -> Self {
        HealthWatch(watch::Sender::new(Health::Starting))
    }

    /// The health now.
    pub fn get(&self) -> Health {
        *self.0.borrow()
    }

    /// Moves to `health`; watchers wake only if it changed.
    pub fn set(&self, health: Health) {
        self.0.send_if_modified(|current| {
            let changed = *current != health;
            *current = health;
            changed
        });
    }

    /// A receiver that sees every change.
    pub fn watch(&self) -> watch::Receiver<Health> {
        self.0.subscribe()
    }
}

impl Default for HealthWatch {
    fn default() -> Self {
        Self::new()
    }
}
