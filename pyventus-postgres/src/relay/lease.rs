//! The lease keeper: one task per relay renews the lease of every event in
//! flight, fenced, in one statement per round; an event whose fence moved on
//! (another relay claimed it while this one stalled) is marked lost and left
//! to its new holder.
//!
//! Concurrency: the set of leases is a mutex-guarded map, locked briefly to
//! add, remove or copy entries; no user code runs under it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use super::Relay;
use super::stats::{self, Counters};
use crate::delivery::Lease;
use crate::sql::millis;

/// The events this relay holds: `seq` to the fence of its claim and its lease.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<i64, (i64, Lease)>>,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, Lease)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts renewing the lease of `seq` under `fence`.
    pub(crate) fn hold(&self, seq: i64, fence: i64) -> Lease {
        let lease = Lease::default();
        self.lock().insert(seq, (fence, lease.clone()));
        lease
    }

    /// Stops renewing the lease of `seq`.
    pub(crate) fn release(&self, seq: i64) {
        self.lock().remove(&seq);
    }

    /// The rows held now.
    pub(crate) fn seqs(&self) -> Vec<i64> {
        self.lock().keys().copied().collect()
    }

    fn held(&self) -> (Vec<i64>, Vec<i64>) {
        self.lock()
            .iter()
            .map(|(seq, (fence, _))| (*seq, *fence))
            .unzip()
    }

    /// Marks lost the leases of these rows that are still held (not settled
    /// meanwhile); returns how many.
    fn lose_all_but(&self, asked: &[i64], renewed: &[i64]) -> u64 {
        let mut held = self.lock();
        let mut lost = 0;
        for seq in asked {
            if renewed.contains(seq) {
                continue;
            }
            if let Some((_, lease)) = held.remove(seq)
                && lease.lose()
            {
                lost += 1;
            }
        }
        lost
    }
}

/// Renews the relay's leases every third of the lease, until `stop`.
pub(crate) async fn keep(relay: Relay, stop: CancellationToken) {
    let inner = &relay.inner;
    let every = inner.config.lease / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let (seqs, fences) = inner.leases.held();
        if seqs.is_empty() {
            continue;
        }
        let renewing = sqlx::query_scalar(&inner.outbox.sql().renew)
            .bind(&seqs)
            .bind(&fences)
            .bind(millis(inner.config.lease))
            .fetch_all(inner.outbox.pool());
        // Not answered (a network gone silent): the relay's stop does not
        // wait for it.
        let renewed: Result<Vec<i64>, sqlx::Error> = tokio::select! {
            renewed = renewing => renewed,
            () = stop.cancelled() => return,
        };
        match renewed {
            Ok(renewed) => {
                let lost = inner.leases.lose_all_but(&seqs, &renewed);
                if lost > 0 {
                    Counters::add(&inner.stats.leases_lost, lost);
                    stats::leases_lost(lost);
                    tracing::warn!(
                        target: "pyventus",
                        relay = %inner.name,
                        lost,
                        "lease lost: another relay claimed these events while this one ran them \
                         (this process stalled or lost PostgreSQL past the lease); their outcome \
                         here will not be written"
                    );
                }
            }
            Err(err) => tracing::warn!(
                target: "pyventus",
                relay = %inner.name,
                events = seqs.len(),
                "cannot renew the leases of the events in flight: {err}"
            ),
        }
    }
}
