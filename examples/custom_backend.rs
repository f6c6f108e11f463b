//! A backend written on pyventus's public seam, as a third party would write
//! one: an in-memory "broker" (a queue of envelopes standing in for a message
//! broker, a database outbox or a cloud queue), the processing service that
//! publishes to it, and the worker loop that runs deliveries and acts on their
//! reports: acknowledge, retry the handlers that failed, or dead-letter.
//!
//! ```sh
//! cargo run -p pyventus-examples --example custom_backend --features serde
//! ```
//!
//! Nothing here uses a hidden or private item, and nothing a worker does is
//! written again: `remote::Envelope` carries the emission, and the worker runs
//! what every pyventus worker runs between receiving a message and settling it
//! (`remote::Inbound`: decode, resolve, target the handlers, run them under
//! their deadline in a `remote::delivery_span`), then settles by the
//! `remote::DeliveryFailure` it gets back, after a `remote::Backoff`. The
//! backend is only its transport. See `docs/architecture.md`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyventus::remote::{self, Backoff, DeliveryFailure, Envelope, Inbound};
use pyventus::{
    Error, Event, EventEmission, EventEmitter, EventLinker, ProcessingService, current_emission, on,
};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

// --- The application: an event and its handlers, declared as usual.

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct InvoiceIssued {
    number: u32,
    amount_cents: u64,
}

#[on(InvoiceIssued)]
fn archive(e: &InvoiceIssued) {
    let attempt = current_emission()
        .and_then(|c| c.context::<Delivery>())
        .map_or(0, |d| d.attempt);
    println!("archived invoice {} (attempt {attempt})", e.number);
}

static MAILER_CALLS: AtomicU32 = AtomicU32::new(0);

#[on(InvoiceIssued)]
async fn email_customer(e: InvoiceIssued) -> anyhow::Result<()> {
    // Talking to the mail server; it is down on the first try.
    tokio::task::yield_now().await;
    if MAILER_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        anyhow::bail!("mail server unavailable");
    }
    println!("emailed the customer about invoice {}", e.number);
    Ok(())
}

// --- The backend: a broker, a processing service, a worker.

/// The "broker": envelopes waiting for a worker, and dead letters.
#[derive(Default)]
struct Broker {
    queue: Mutex<VecDeque<(Envelope, u32)>>,
    dead: Mutex<Vec<(Envelope, String)>>,
}

impl Broker {
    fn publish(&self, envelope: Envelope, attempt: u32) {
        lock(&self.queue).push_back((envelope, attempt));
    }

    fn take(&self) -> Option<(Envelope, u32)> {
        lock(&self.queue).pop_front()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Publishes each emission's envelope to the broker.
#[derive(Clone)]
struct BrokerProcessingService {
    broker: Arc<Broker>,
}

impl ProcessingService for BrokerProcessingService {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        // Refuses, before anything is published, what a worker could not run:
        // a closure subscribed at runtime, an event that is not serializable.
        let envelope = Envelope::of(&emission)?;
        self.broker.publish(envelope, 1);
        // The subscribers run elsewhere: whoever awaits it learns so, and
        // dropping the emission reports no loss.
        emission.handed_off();
        Ok(())
    }

    fn runs_remotely(&self) -> bool {
        true
    }
}

/// What a handler can learn about its delivery.
#[derive(Debug)]
struct Delivery {
    attempt: u32,
}

const MAX_ATTEMPTS: u32 = 3;

/// Runs every queued delivery until the queue is empty.
async fn work(broker: &Broker, inbound: &Inbound) {
    let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(100));
    while let Some((envelope, attempt)) = broker.take() {
        let span = remote::delivery_span("invoices", &envelope.id, attempt.into());
        let outcome = inbound
            .run(&envelope, Arc::new(Delivery { attempt }))
            .instrument(span)
            .await;
        match outcome {
            Ok(()) => println!("acknowledged {}", envelope.event),
            Err(failure) if !failure.is_permanent() && attempt < MAX_ATTEMPTS => {
                // Only the handlers that failed run again.
                let handlers: Vec<String> = match &failure {
                    DeliveryFailure::Handlers(report) => report
                        .failures()
                        .iter()
                        .filter_map(|f| f.handler_id().map(str::to_owned))
                        .collect(),
                    _ => envelope.handlers.clone(),
                };
                println!("retrying {handlers:?}: {failure}");
                tokio::time::sleep(backoff.delay(attempt - 1)).await;
                broker.publish(
                    Envelope {
                        handlers,
                        ..envelope
                    },
                    attempt + 1,
                );
            }
            Err(failure) => {
                println!("dead-lettered ({}): {failure}", failure.label());
                lock(&broker.dead).push((envelope, failure.to_string()));
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let broker = Arc::new(Broker::default());
    let emitter = EventEmitter::new(BrokerProcessingService {
        broker: broker.clone(),
    });

    // The emitting side: nothing runs here.
    emitter.emit(InvoiceIssued {
        number: 7,
        amount_cents: 12_500,
    })?;
    println!("published {} envelope(s)", lock(&broker.queue).len());

    // The worker side (another process, in real life): the same handlers,
    // found by the event's name.
    work(
        &broker,
        &Inbound::new(EventLinker::global(), "in-memory-worker"),
    )
    .await;
    assert!(lock(&broker.dead).is_empty());
    Ok(())
}
