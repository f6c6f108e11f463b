//! One delivery: the entry's checks, its envelope and event, and its handlers
//! under their deadline; then its settlement.

use std::sync::Arc;
use std::time::Duration;

use pyventus_core::{BlockingThreads, EventEmission};
use tracing::Instrument;

use super::Worker;
use super::builder::Config;
use super::failure::Failure;
use super::settle::{Outcome, settle};
use super::stats::Counters;
use crate::delivery::{Delivery, Lease};
use crate::envelope;
use crate::stream::Taken;

/// Runs one taken entry and settles it, in its span.
pub(super) async fn deliver(worker: Worker, taken: Taken) {
    let span = tracing::info_span!(
        "pyventus.delivery",
        queue = %worker.queue(),
        entry = %taken.id(),
        attempt = taken.deliveries,
        envelope = tracing::field::Empty,
        event = tracing::field::Empty,
    );
    // Before the span is entered: a started span's parent is fixed.
    #[cfg(feature = "opentelemetry")]
    if let Ok(entry) = &taken.entry {
        pyventus_core::remote::trace::set_parent(&span, &envelope::context_of(entry));
    }
    async {
        let _running = super::METRICS.received();
        let inner = &worker.inner;
        let lease = inner.leases.hold(taken.id());
        let outcome = tokio::select! {
            biased;
            result = execute(&worker, &taken, &lease) => match result {
                Ok(()) => Outcome::Done,
                Err(failure) => Outcome::Failed(failure),
            },
            () = inner.abandon.cancelled() => Outcome::Abandoned,
        };
        // Settling is quick; a renewal racing it would report a lease lost.
        inner.leases.release(taken.id());
        settle(&worker, &taken, &lease, outcome).await;
    }
    .instrument(span)
    .await;
}

/// Checks the entry, then runs its handlers.
async fn execute(worker: &Worker, taken: &Taken, lease: &Lease) -> Result<(), Failure> {
    let inner = &worker.inner;
    let config = &inner.config;
    let entry = taken.entry.as_ref().map_err(|_| Failure::Unreadable)?;
    let size = entry.size();
    if size > config.max_entry_size {
        return Err(Failure::TooLarge {
            size,
            max: config.max_entry_size,
        });
    }
    if taken.deliveries > config.max_deliveries {
        // Checked before running: a delivery that crashed the process never
        // reached the check after it.
        return Err(Failure::TooManyDeliveries {
            deliveries: taken.deliveries,
            max: config.max_deliveries,
        });
    }
    let envelope = envelope::from_entry(entry).map_err(Failure::Envelope)?;
    tracing::Span::current()
        .record("envelope", envelope.id.as_str())
        .record("event", envelope.event.as_str());
    let event = pyventus_core::remote::decode(&envelope.event, &envelope.payload)
        .map_err(Failure::Decode)?;
    let mut emission = EventEmission::resolve(&inner.linker, event).map_err(Failure::Resolve)?;
    if !envelope.handlers.is_empty() {
        let missing = emission.retain_handlers(&envelope.handlers);
        if !missing.is_empty() {
            // Runs nothing: the delivery fails, so a worker that has every
            // handler it targets retries it (or it is dead-lettered).
            emission.discard();
            return Err(Failure::MissingHandlers(missing));
        }
    }
    // Synchronous handlers on blocking threads, off the worker's runtime
    // (unless they were declared quick).
    emission.set_blocking(!config.sync_inline);
    // On threads the worker's runtime does not own: a synchronous handler
    // still stuck after the shutdown deadline does not keep the process from
    // exiting when that runtime drops (its entry stays pending).
    emission.set_blocking_threads(BlockingThreads::Detached);
    emission.set_processor("redis-worker");
    // Cut short (timeout, shutdown deadline), it stays pending: not a loss.
    emission.set_redeliverable(true);
    emission.set_context(Arc::new(Delivery::new(
        envelope.id,
        entry.id.clone(),
        taken.deliveries,
        lease.clone(),
    )));
    let report = match deadline(&emission, config) {
        Some(limit) => match tokio::time::timeout(limit, emission.run()).await {
            Ok(report) => report,
            Err(_) => {
                Counters::add(&inner.stats.timed_out, 1);
                return Err(Failure::TimedOut(limit));
            }
        },
        None => emission.run().await,
    };
    if report.is_success() {
        Ok(())
    } else {
        Err(Failure::Handlers(report))
    }
}

/// How long the emission's handlers may run: the longest timeout among them,
/// or none if any has none.
fn deadline(emission: &EventEmission, config: &Config) -> Option<Duration> {
    if emission.subscriber_count() == 0 {
        return None;
    }
    let mut longest = Duration::ZERO;
    let mut link_time = 0;
    for id in emission.handler_ids() {
        link_time += 1;
        let limit = config
            .handler_timeouts
            .get(id)
            .copied()
            .or(config.handler_timeout)?;
        longest = longest.max(limit);
    }
    if emission.subscriber_count() > link_time {
        // Closures subscribed at runtime have no id: the worker's timeout.
        longest = longest.max(config.handler_timeout?);
    }
    Some(longest)
}
