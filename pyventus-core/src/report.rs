//! What running an emission did, as a value: how many subscribers ran and how
//! each failure happened.

use std::fmt;

use crate::HandlerPanic;

/// The outcome of running one emission: how many subscribers ran, and the
/// failures among them, each with the error its failure callback saw.
///
/// Returned by [`EventEmission::run`](crate::EventEmission::run) and
/// [`run_blocking`](crate::EventEmission::run_blocking), so that whoever runs an
/// emission (a broker's worker deciding to acknowledge or retry) acts on typed
/// values, not on logs. Failures were already handled by their callbacks and
/// logged by the time the report exists.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmission, EventLinker, FailureKind};
/// use std::sync::Arc;
///
/// #[derive(Debug)]
/// struct Charge(u64);
/// impl pyventus_core::Event for Charge {
///     const NAME: &'static str = "Charge";
/// }
///
/// let linker = EventLinker::new();
/// linker.on::<Charge>().subscribe(|c: &Charge| c.0)?;
/// linker.on::<Charge>().subscribe(|_: &Charge| -> anyhow::Result<()> { anyhow::bail!("card declined") })?;
/// linker.on::<Charge>().subscribe(|_: &Charge| -> () { panic!("bug") })?;
///
/// let emission = EventEmission::resolve(&linker, Arc::new(Charge(10)))?;
/// let report = emission.run_blocking();
/// assert_eq!(report.ran(), 3);
/// assert!(!report.is_success());
/// let kinds: Vec<_> = report.failures().iter().map(|f| f.kind()).collect();
/// assert_eq!(kinds, [FailureKind::Error, FailureKind::Panic]);
/// assert_eq!(report.failures()[0].error().to_string(), "card declined");
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct RunReport {
    ran: usize,
    failures: Vec<SubscriberFailure>,
}

impl RunReport {
    pub(crate) fn record(
        &mut self,
        subscriber: u64,
        handler_id: Option<&'static str>,
        settled: Result<(), anyhow::Error>,
    ) {
        self.ran += 1;
        if let Err(error) = settled {
            self.failures.push(SubscriberFailure {
                subscriber,
                handler_id,
                error,
            });
        }
    }

    /// How many subscribers ran.
    pub fn ran(&self) -> usize {
        self.ran
    }

    /// Whether every subscriber that ran succeeded.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    /// The subscribers that failed, in the order they ran.
    pub fn failures(&self) -> &[SubscriberFailure] {
        &self.failures
    }

    /// The failures, owned.
    pub fn into_failures(self) -> Vec<SubscriberFailure> {
        self.failures
    }
}

/// How a subscriber failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The handler returned an error.
    Error,
    /// The handler panicked; the error is a [`HandlerPanic`].
    Panic,
}

/// One subscriber's failure in a [`RunReport`] (see its example).
pub struct SubscriberFailure {
    subscriber: u64,
    handler_id: Option<&'static str>,
    error: anyhow::Error,
}

impl SubscriberFailure {
    /// The subscriber's id ([`EventSubscriber::id`](crate::EventSubscriber::id)).
    pub fn subscriber(&self) -> u64 {
        self.subscriber
    }

    /// The link-time handler's id, or `None` for a closure subscribed at runtime.
    pub fn handler_id(&self) -> Option<&'static str> {
        self.handler_id
    }

    /// Whether the handler returned an error or panicked.
    pub fn kind(&self) -> FailureKind {
        if self.error.is::<HandlerPanic>() {
            FailureKind::Panic
        } else {
            FailureKind::Error
        }
    }

    /// The error, as the failure callback saw it (with its source chain).
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }

    /// The error, owned.
    pub fn into_error(self) -> anyhow::Error {
        self.error
    }
}

/// The report in one line, as a dead letter's reason gives it: its one
/// failure, or how many failed and the first, or that none did.
///
/// ```
/// # use pyventus_core::{Event, EventEmission, EventLinker};
/// # use std::sync::Arc;
/// # #[derive(Debug)] struct Charge;
/// # impl Event for Charge { const NAME: &'static str = "Charge"; }
/// let linker = EventLinker::new();
/// linker.on::<Charge>().subscribe(|| -> anyhow::Result<()> { anyhow::bail!("declined") })?;
/// let report = EventEmission::resolve(&linker, Arc::new(Charge))?.run_blocking();
/// assert!(report.to_string().ends_with("declined"), "{report}");
/// # Ok::<(), pyventus_core::Error>(())
/// ```
impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failures.as_slice() {
            [one] => one.fmt(f),
            [first, ..] => write!(
                f,
                "{} handlers failed; the first: {first}",
                self.failures.len()
            ),
            [] => write!(f, "{} subscribers ran, none failed", self.ran),
        }
    }
}

impl fmt::Debug for SubscriberFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberFailure")
            .field("subscriber", &self.subscriber)
            .field("handler_id", &self.handler_id)
            .field("kind", &self.kind())
            .field("error", &format_args!("{:#}", self.error))
            .finish()
    }
}

impl fmt::Display for SubscriberFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let handler = self.handler_id.unwrap_or("<runtime>");
        match self.error.downcast_ref::<HandlerPanic>() {
            Some(panic) => write!(f, "handler `{handler}` panicked: {}", panic.message()),
            None => write!(f, "handler `{handler}` failed: {:#}", self.error),
        }
    }
}
