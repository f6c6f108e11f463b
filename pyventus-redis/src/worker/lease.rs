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
use std::sync::atomic::{AtomicU64, Ordering};
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
    generation: u64,
}

impl Held<'_> {
    /// The lease, as the delivery's handlers see it.
    pub(super) fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self.leases.lock();
        // Only its own: a newer delivery of the same entry (taken back by
        // this worker's sweep after the lease was lost) keeps its lease.
        if held
            .get(self.id)
            .is_some_and(|(generation, _)| *generation == self.generation)
        {
            held.remove(self.id);
        }
    }
}

/// The entries this worker holds, by id, each with the generation of the
/// delivery that holds it (an entry can be delivered to this worker again
/// while an older delivery of it still runs, its lease lost).
#[derive(Debug, Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<String, (u64, Lease)>>,
    generations: AtomicU64,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Lease)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts renewing `id`'s lease, until the [`Held`] guard drops.
    pub(super) fn hold<'a>(&'a self, id: &'a str) -> Held<'a> {
        let lease = Lease::default();
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .insert(id.to_owned(), (generation, lease.clone()));
        Held {
            leases: self,
            id,
            lease,
            generation,
        }
    }

    /// The entries held now, and which delivery holds each.
    fn ids(&self) -> (Vec<String>, Vec<u64>) {
        self.lock()
            .iter()
            .map(|(id, (generation, _))| (id.clone(), *generation))
            .unzip()
    }

    /// Marks lost the leases of these entries that the same deliveries still
    /// hold (`asked` and `generations` as [`ids`](Self::ids) gave them), and
    /// stops renewing them; returns their ids. A delivery that ended
    /// meanwhile, or a newer one of the same entry, is left alone.
    fn lose(&self, lost: Vec<String>, asked: &[String], generations: &[u64]) -> Vec<String> {
        let mut held = self.lock();
        lost.into_iter()
            .filter(|id| {
                let Some(asked_at) = asked.iter().position(|a| a == id) else {
                    return false;
                };
                let ours = held
                    .get(id)
                    .is_some_and(|(generation, _)| *generation == generations[asked_at]);
                ours && held.remove(id).inspect(|(_, lease)| lease.lose()).is_some()
            })
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
        let (ids, generations) = inner.leases.ids();
        if ids.is_empty() {
            continue;
        }
        let renewed = tokio::select! {
            renewed = inner.keeper_stream.renew(&inner.consumer, &ids) => renewed,
            () = stop.cancelled() => return,
        };
        match renewed {
            Ok(lost) => {
                let lost = inner.leases.lose(lost, &ids, &generations);
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
