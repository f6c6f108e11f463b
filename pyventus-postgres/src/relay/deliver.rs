//! Running one delivery: a claimed row becomes an event, its emission runs
//! the handlers that have not succeeded yet (or a processing service takes
//! it), and the outcome comes back as a value, per handler.
//!
//! This is the relay's whole use of the worker seam (`remote::decode`,
//! `EventEmission::resolve`, `retain_handlers`, `set_context`, `run`,
//! `submit_to`), kept in this one module so that it can move into the
//! pipeline `pyventus_core::remote` shares between backends. Per-handler
//! completion is the part the brokers lack: the row's `done` list says which
//! handlers succeeded already, and they are left out of the emission.

use std::sync::Arc;
use std::time::Duration;

use pyventus_core::{AnyEvent, BlockingThreads, EventEmission, ProcessingService};
use tracing::Instrument;

use super::claim::Claimed;
use super::interim::Failure;
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
    pub(crate) linker: &'a pyventus_core::EventLinker,
    pub(crate) named: &'a NamedTypes,
    pub(crate) target: &'a Target,
    pub(crate) timeout: Option<Duration>,
    pub(crate) sync_inline: bool,
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
        failure: Failure,
    },
}

impl Outcome {
    fn failed(failure: Failure) -> Self {
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
) -> Result<Outcome, Failure> {
    let event = decode(claimed, settings.named)?;
    let mut emission = EventEmission::resolve(settings.linker, event).map_err(Failure::Resolve)?;
    emission.set_context(Arc::new(Delivery::new(
        claimed.id,
        claimed.seq,
        u32::try_from(claimed.attempts).unwrap_or(0),
        claimed.partition_key.clone(),
        lease,
    )));
    match settings.target {
        Target::Handlers => run_handlers(emission, claimed, settings).await,
        Target::Service(service) => forward(emission, &**service, settings.timeout).await,
    }
}

/// The event, decoded by the type registered for its name.
fn decode(claimed: &Claimed, named: &NamedTypes) -> Result<Arc<AnyEvent>, Failure> {
    match named.get(&claimed.event) {
        Some(decoder) => {
            decoder(&claimed.event, &claimed.payload).map_err(|source| Failure::NamedPayload {
                event: claimed.event.clone(),
                source,
            })
        }
        None => {
            pyventus_core::remote::decode(&claimed.event, &claimed.payload).map_err(Failure::Decode)
        }
    }
}

/// Runs the handlers that have not succeeded yet.
async fn run_handlers(
    mut emission: EventEmission,
    claimed: &Claimed,
    settings: &Settings<'_>,
) -> Result<Outcome, Failure> {
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
    // Synchronous handlers on blocking threads (unless declared quick), off
    // the relay's runtime, and on threads that runtime does not own: one stuck
    // past the shutdown deadline does not keep the process from exiting.
    emission.set_blocking(!settings.sync_inline);
    emission.set_blocking_threads(BlockingThreads::Detached);
    emission.set_processor("postgres-relay");
    // Cut short (timeout, shutdown), the row stays in the outbox: not a loss.
    emission.set_redeliverable(true);
    let report = match settings.timeout {
        Some(limit) => match tokio::time::timeout(limit, emission.run()).await {
            Ok(report) => report,
            Err(_) => {
                return Ok(Outcome::Failed {
                    succeeded: Vec::new(),
                    failed: to_run,
                    failure: Failure::TimedOut(limit),
                });
            }
        },
        None => emission.run().await,
    };
    if report.is_success() {
        return Ok(Outcome::Done);
    }
    let mut failed: Vec<String> = report
        .failures()
        .iter()
        .filter_map(|f| f.handler_id().map(str::to_owned))
        .collect();
    failed.sort_unstable();
    failed.dedup();
    let succeeded = to_run
        .into_iter()
        .filter(|id| failed.binary_search(id).is_err())
        .collect();
    Ok(Outcome::Failed {
        succeeded,
        failed,
        failure: Failure::Handlers(report),
    })
}

/// Hands the event to a processing service, and waits until it ran there
/// (a local service) or was handed to another process (a broker).
async fn forward(
    mut emission: EventEmission,
    service: &dyn ProcessingService,
    timeout: Option<Duration>,
) -> Result<Outcome, Failure> {
    let done = emission.completion();
    emission.submit_to(service).map_err(Failure::Forward)?;
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, done).await {
            Ok(result) => result,
            Err(_) => return Err(Failure::TimedOut(limit)),
        },
        None => done.await,
    };
    match result {
        Ok(()) | Err(pyventus_core::Error::NotAwaitable) => Ok(Outcome::Done),
        Err(err) => Err(Failure::Forward(err)),
    }
}
