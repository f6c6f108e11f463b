//! `WorkerMetrics`: a broker worker's counters, on the `metrics` facade.

/// A broker worker's metrics (their names and labels are listed in the
/// `metrics` module, with the `metrics` feature): what a backend's worker
/// records as it takes, runs and settles deliveries. Every method does nothing unless `pyventus-core`'s
/// `metrics` feature is on, so a backend calls them unconditionally.
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::WorkerMetrics;
///
/// let metrics = WorkerMetrics::new("my-queue");
/// let running = metrics.received(); // in flight until dropped
/// // ... run the delivery's emission, then:
/// metrics.acked();
/// drop(running);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WorkerMetrics {
    backend: &'static str,
}

/// A delivery a worker is running: counted in flight until dropped.
#[must_use = "the delivery counts as running until this is dropped"]
#[derive(Debug)]
pub struct Running {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    backend: &'static str,
}

impl WorkerMetrics {
    /// The metrics of a worker of this backend (the `backend` label: `redis`,
    /// `amqp`, ...).
    pub const fn new(backend: &'static str) -> Self {
        WorkerMetrics { backend }
    }

    /// The backend's name, as the `backend` label gives it.
    pub const fn backend(&self) -> &'static str {
        self.backend
    }

    /// The worker took a delivery (a redelivery too); it counts as in flight
    /// until the returned guard is dropped.
    pub fn received(&self) -> Running {
        #[cfg(feature = "metrics")]
        {
            use crate::observe::metrics::{WORKER_IN_FLIGHT, WORKER_RECEIVED};
            ::metrics::counter!(WORKER_RECEIVED, "backend" => self.backend).increment(1);
            ::metrics::gauge!(WORKER_IN_FLIGHT, "backend" => self.backend).increment(1.0);
        }
        Running {
            backend: self.backend,
        }
    }

    /// A delivery finished and was acknowledged.
    pub fn acked(&self) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(crate::observe::metrics::WORKER_ACKED, "backend" => self.backend)
            .increment(1);
    }

    /// A failed delivery was given back for another attempt.
    pub fn retried(&self) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(crate::observe::metrics::WORKER_RETRIED, "backend" => self.backend)
            .increment(1);
    }

    /// A delivery moved to the dead letters; `reason` is a short, fixed label
    /// (`failed`, `malformed`, `unknown_event`, ...), not the reason's text.
    pub fn dead_lettered(&self, reason: &'static str) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(
            crate::observe::metrics::WORKER_DEAD_LETTERED,
            "backend" => self.backend,
            "reason" => reason
        )
        .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = reason;
    }

    /// The connection to the broker was lost and made again.
    pub fn reconnected(&self) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(crate::observe::metrics::WORKER_RECONNECTS, "backend" => self.backend)
            .increment(1);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        ::metrics::gauge!(crate::observe::metrics::WORKER_IN_FLIGHT, "backend" => self.backend)
            .decrement(1.0);
    }
}
