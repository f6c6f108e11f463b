//! The lease keeper: one task per worker renews every entry in flight, apart
//! from the handlers.
//!
//! It runs on pyventus's own runtime with a connection of its own, so handlers
//! that block a thread or hog the CPU of the worker's runtime cannot starve it
//! (they once could: the heartbeat ran in the handler's own task). Each round
//! renews only the entries this consumer still holds, in one script call per
//! thousand: an entry another worker claimed meanwhile (this process was
//! paused, or cut off from Redis, past the visibility timeout) is not taken
//! back; its lease is marked lost, which its handlers can see
//! ([`Delivery::lease_lost`](crate::Delivery::lease_lost)), and the worker
//! leaves its outcome to the new holder.
//!
//! Concurrency: the set of leases is a mutex-guarded map, locked briefly to add,
//! remove or copy ids; no user code runs under it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use super::Worker;
use super::background::Background;
use super::stats::Counters;
use crate::delivery::Lease;

/// A lease renewed while its delivery runs. Dropping it stops the renewals,
/// however the delivery ends: a delivery dropped with its runtime (its run
/// dropped first) leaves its entry to be delivered again, and a lease left
/// behind would be renewed by the worker's next run for as long as it runs.
pub(super) struct Held<'a> {
    leases: &'a Leases,
    id: &'a str,
    lease: Lease,
}

impl Held<'_> {
    /// The lease, as the delivery's handlers see it.
    pub(super) fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.leases.lock().remove(self.id);
    }
}

/// The entries this worker holds, by id.
#[derive(Debug, Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<String, Lease>>,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts renewing `id`'s lease, until the [`Held`] guard drops.
    pub(super) fn hold<'a>(&'a self, id: &'a str) -> Held<'a> {
        let lease = Lease::default();
        self.lock().insert(id.to_owned(), lease.clone());
        Held {
            leases: self,
            id,
            lease,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Marks these leases lost and stops renewing them; returns those still
    /// held (the others were settled meanwhile).
    fn lose(&self, ids: Vec<String>) -> Vec<String> {
        let mut held = self.lock();
        ids.into_iter()
            .filter(|id| held.remove(id).inspect(Lease::lose).is_some())
            .collect()
    }
}

/// Starts renewing the worker's leases every third of its visibility timeout,
/// on pyventus's own runtime, until the returned task is stopped.
pub(super) fn start_keeper(worker: &Worker) -> Background {
    let worker = worker.clone();
    Background::start("the lease keeper", move |stop| async move {
        keep(&worker, &stop).await;
    })
}

async fn keep(worker: &Worker, stop: &CancellationToken) {
    let inner = &worker.inner;
    let every = inner.config.visibility / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let ids = inner.leases.ids();
        if ids.is_empty() {
            continue;
        }
        let renewed = tokio::select! {
            renewed = inner.keeper_stream.renew(&inner.consumer, &ids) => renewed,
            () = stop.cancelled() => return,
        };
        match renewed {
            Ok(lost) => {
                let lost = inner.leases.lose(lost);
                if lost.is_empty() {
                    continue;
                }
                Counters::add(&inner.stats.leases_lost, lost.len() as u64);
                tracing::warn!(
                    target: "pyventus",
                    queue = %worker.queue(),
                    entries = ?lost,
                    "lease lost: another worker claimed these entries while this one ran them \
                     (this process stalled or lost Redis past the visibility timeout); \
                     no longer renewing them, and leaving their outcome to the new holder"
                );
            }
            Err(err) => tracing::warn!(
                target: "pyventus",
                queue = %worker.queue(),
                entries = ids.len(),
                "cannot renew the leases of the entries in flight: {err}"
            ),
        }
    }
}
