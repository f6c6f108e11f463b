//! One delivery: the entry's checks, then the inbound step every broker's
//! worker shares (`pyventus_core::remote::Inbound`: decode, resolve, target,
//! run under the deadline); then its settlement.

use std::sync::Arc;

use pyventus_core::remote::{DeliveryFailure, delivery_span};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Worker;
use super::settle::{Outcome, settle};
use super::stats::Counters;
use crate::delivery::{Delivery, Lease};
use crate::envelope;
use crate::stream::Taken;

/// Runs one taken entry and settles it, in its span; frees its slot once its
/// handlers ended (before its acknowledgement, which goes in a batch).
pub(super) async fn deliver(worker: Worker, taken: Taken, slot: OwnedSemaphorePermit) {
    let span = delivery_span(worker.queue(), &taken.id(), taken.deliveries);
    // Before the span is entered: a started span's parent is fixed.
    #[cfg(feature = "opentelemetry")]
    if let Ok(entry) = &taken.entry {
        pyventus_core::remote::trace::set_parent(&span, &envelope::context_of(entry));
    }
    async {
        let _running = super::METRICS.received();
        let inner = &worker.inner;
        let held = inner.leases.hold(taken.id());
        let outcome = tokio::select! {
            biased;
            result = execute(&worker, &taken, held.lease()) => match result {
                Ok(()) => Outcome::Done,
                Err(failure) => Outcome::Failed(failure),
            },
            () = inner.abandon.cancelled() => Outcome::Abandoned,
        };
        let lease = held.lease().clone();
        // Settling is quick; a renewal racing it would report a lease lost.
        drop(held);
        settle(&worker, &taken, &lease, outcome, slot).await;
    }
    .instrument(span)
    .await;
}

/// Checks the entry, then runs its handlers.
async fn execute(worker: &Worker, taken: &Taken, lease: &Lease) -> Result<(), DeliveryFailure> {
    let inner = &worker.inner;
    let config = &inner.config;
    let entry = taken.entry.as_ref().map_err(|_| {
        DeliveryFailure::Unreadable("unreadable entry: Redis returned it without fields")
    })?;
    let size = entry.size();
    if size > config.max_entry_size {
        return Err(DeliveryFailure::TooLarge {
            size,
            max: config.max_entry_size,
        });
    }
    if taken.deliveries > config.max_deliveries {
        // Checked before running: a delivery that crashed the process never
        // reached the check after it.
        return Err(DeliveryFailure::TooManyDeliveries {
            deliveries: taken.deliveries,
            max: config.max_deliveries,
        });
    }
    let envelope = envelope::from_entry(entry).map_err(DeliveryFailure::Envelope)?;
    let delivery = Delivery::new(
        envelope.id.clone(),
        entry.id.clone(),
        taken.deliveries,
        lease.clone(),
    );
    let result = inner.inbound.run(&envelope, Arc::new(delivery)).await;
    if let Err(DeliveryFailure::TimedOut(_)) = &result {
        Counters::add(&inner.stats.timed_out, 1);
    }
    result
}
