//! Running one delivery: a claimed row becomes an event, its emission runs
//! the handlers that have not succeeded yet (or a processing service takes
//! it), and the outcome comes back as a value, per handler.
//!
//! The relay decodes a row itself (a named event by the type it was told),
//! leaves out the handlers that succeeded already (per-handler completion,
//! the part the brokers lack: the row's `done` list), then hands the emission
//! to the step every pyventus worker shares, `pyventus_core::remote::Inbound`
//! (its options, its deadline, its run, its report), and answers with the
//! shared `DeliveryFailure`.

use std::sync::Arc;
use std::time::Duration;

use pyventus_core::remote::{DecodeError, DeliveryFailure, Inbound};
use pyventus_core::{AnyEvent, EventEmission, ProcessingService};
use tracing::Instrument;

use super::claim::Claimed;
use crate::delivery::{Delivery, Lease};
use crate::named::NamedTypes;

/// Where a relay's events go.
#[derive(Clone)]
pub(crate) enum Target {
    /// The link-time handlers of the relay's linker, run by the relay itself.
    Handlers,
    /// A processing service (inline, tokio, thread pool, Redis, RabbitMQ...).
    Service(Arc<dyn ProcessingService>),
}

/// What a delivery needs besides its row.
pub(crate) struct Settings<'a> {
    /// The relay's linker, options and deadline, as every worker runs them.
    pub(crate) inbound: &'a Inbound,
    pub(crate) named: &'a NamedTypes,
    pub(crate) target: &'a Target,
    /// How long a service it forwards to may take.
    pub(crate) timeout: Option<Duration>,
}

/// How one delivery ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every handler has now succeeded (or the service took the event).
    Done,
    /// Something failed: the handlers that succeeded this time (recorded, never
    /// run again), the ids of those that failed, and why.
    Failed {
        succeeded: Vec<String>,
        failed: Vec<String>,
        failure: DeliveryFailure,
    },
}

impl Outcome {
    fn failed(failure: DeliveryFailure) -> Self {
        Outcome::Failed {
            succeeded: Vec::new(),
            failed: Vec::new(),
            failure,
        }
    }
}

/// Runs one claimed event, in its span.
pub(crate) async fn deliver(claimed: &Claimed, settings: &Settings<'_>, lease: Lease) -> Outcome {
    let span = tracing::info_span!(
        "pyventus.delivery",
        backend = "postgres",
        seq = claimed.seq,
        event_id = %claimed.id,
        event = %claimed.event,
        attempt = claimed.attempts,
    );
    // Before the span is entered: a started span's parent is fixed.
    #[cfg(feature = "opentelemetry")]
    pyventus_core::remote::trace::set_parent(&span, &claimed.trace_context());
    execute(claimed, settings, lease)
        .instrument(span)
        .await
        .unwrap_or_else(Outcome::failed)
}

async fn execute(
    claimed: &Claimed,
    settings: &Settings<'_>,
    lease: Lease,
) -> Result<Outcome, DeliveryFailure> {
    let event = decode(claimed, settings.named)?;
    let emission = EventEmission::resolve(settings.inbound.linker(), event)
        .map_err(DeliveryFailure::Resolve)?;
    let delivery = Arc::new(Delivery::new(
        claimed.id,
        claimed.seq,
        u32::try_from(claimed.attempts).unwrap_or(0),
        claimed.partition_key.clone(),
        lease,
    ));
    match settings.target {
        Target::Handlers => run_handlers(emission, claimed, settings.inbound, delivery).await,
        Target::Service(service) => {
            let mut emission = emission;
            emission.set_context(delivery);
            forward(emission, &**service, settings.timeout).await
        }
    }
}

/// The event, decoded by the type registered for its name.
fn decode(claimed: &Claimed, named: &NamedTypes) -> Result<Arc<AnyEvent>, DeliveryFailure> {
    match named.get(&claimed.event) {
        Some(decoder) => decoder(&claimed.event, &claimed.payload).map_err(|source| {
            DeliveryFailure::Decode(DecodeError::Malformed {
                event: claimed.event.clone(),
                source,
            })
        }),
        None => pyventus_core::remote::decode(&claimed.event, &claimed.payload)
            .map_err(DeliveryFailure::Decode),
    }
}

/// Runs the handlers that have not succeeded yet, through the shared step.
async fn run_handlers(
    mut emission: EventEmission,
    claimed: &Claimed,
    inbound: &Inbound,
    delivery: Arc<Delivery>,
) -> Result<Outcome, DeliveryFailure> {
    let mut to_run: Vec<String> = emission
        .handler_ids()
        .filter(|id| !claimed.done.iter().any(|done| done == id))
        .map(str::to_owned)
        .collect();
    to_run.sort_unstable();
    to_run.dedup();
    if !claimed.done.is_empty() {
        if to_run.is_empty() {
            // All succeeded before; only their settlement was lost.
            emission.discard();
            return Ok(Outcome::Done);
        }
        // Closures subscribed at runtime have no id to record: they run on
        // the attempts before any handler succeeded, not after.
        emission.retain_handlers(&to_run);
    }
    let failure = match inbound.run_emission(emission, delivery).await {
        Ok(()) => return Ok(Outcome::Done),
        Err(failure) => failure,
    };
    let mut failed: Vec<String> = match &failure {
        DeliveryFailure::Handlers(report) => report
            .failures()
            .iter()
            .filter_map(|f| f.handler_id().map(str::to_owned))
            .collect(),
        // Cut short at the deadline: none is known to have succeeded.
        _ => to_run.clone(),
    };
    failed.sort_unstable();
    failed.dedup();
    let succeeded = to_run
        .into_iter()
        .filter(|id| failed.binary_search(id).is_err())
        .collect();
    Ok(Outcome::Failed {
        succeeded,
        failed,
        failure,
    })
}

/// Hands the event to a processing service, and waits until it ran there
/// (a local service) or was handed to another process (a broker).
async fn forward(
    mut emission: EventEmission,
    service: &dyn ProcessingService,
    timeout: Option<Duration>,
) -> Result<Outcome, DeliveryFailure> {
    let done = emission.completion();
    emission
        .submit_to(service)
        .map_err(DeliveryFailure::Forward)?;
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, done).await {
            Ok(result) => result,
            Err(_) => return Err(DeliveryFailure::TimedOut(limit)),
        },
        None => done.await,
    };
    match result {
        Ok(()) | Err(pyventus_core::Error::NotAwaitable) => Ok(Outcome::Done),
        Err(err) => Err(DeliveryFailure::Forward(err)),
    }
}
