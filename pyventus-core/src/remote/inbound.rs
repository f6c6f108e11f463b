//! `Inbound`: what every worker does with a message's envelope, whatever its
//! broker: decode its event, resolve its subscribers in the worker's linker,
//! keep the handlers it targets, set the emission's options, run it under its
//! deadline, and read the report. The broker crate only receives the message
//! before and settles it after.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::{Future, ready};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Either};

use super::{DeliveryFailure, Envelope, REPLY_BY, REPLY_TO, ReplySender};
use crate::lifecycle::answer::RemoteAnswer;
use crate::{BlockingThreads, Error, EventEmission, EventLinker};

/// A worker's settings for running envelopes, and the step that runs one.
///
/// # Examples
///
/// ```
/// use pyventus_core::EventLinker;
/// use pyventus_core::remote::{DeliveryFailure, Envelope, Inbound};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let inbound = Inbound::new(EventLinker::new(), "my-worker")
///     .handler_timeout(Some(Duration::from_secs(5)));
/// let envelope = Envelope::new("Ping", "null");
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // No type of this process is the event `Ping`: a failure the worker
/// // retries (another worker may know it), or dead-letters with this reason.
/// let failure = inbound.run(&envelope, Arc::new(())).await.unwrap_err();
/// assert!(matches!(failure, DeliveryFailure::Decode(_)));
/// assert!(failure.to_string().starts_with("unknown event `Ping`"));
/// # });
/// ```
#[derive(Clone)]
pub struct Inbound {
    linker: EventLinker,
    processor: &'static str,
    blocking: bool,
    handler_timeout: Option<Duration>,
    handler_timeouts: HashMap<String, Duration>,
    replies: Option<Arc<dyn ReplySender>>,
}

impl Inbound {
    /// Runs envelopes through `linker`'s handlers; `processor` names the
    /// worker in metrics (`redis-worker`, say). Synchronous handlers run on
    /// blocking threads, with no timeout.
    pub fn new(linker: EventLinker, processor: &'static str) -> Self {
        Inbound {
            linker,
            processor,
            blocking: true,
            handler_timeout: None,
            handler_timeouts: HashMap::new(),
            replies: None,
        }
    }

    /// Whether synchronous handlers run on blocking threads (the default), off
    /// the worker's runtime; `false` runs them on it, for handlers known to be
    /// quick. Blocking threads are pyventus's own, which the worker's runtime
    /// does not wait for when it drops: a handler stuck past the shutdown
    /// deadline does not keep the process from exiting (its message is
    /// delivered again).
    #[must_use]
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// How long a delivery's handlers may run (none: no limit), unless
    /// [`handler_timeout_for`](Self::handler_timeout_for) says otherwise.
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How long the handler `handler_id` may run.
    #[must_use]
    pub fn handler_timeout_for(mut self, handler_id: impl Into<String>, timeout: Duration) -> Self {
        self.handler_timeouts.insert(handler_id.into(), timeout);
        self
    }

    /// How this worker answers requests whose caller waits in another
    /// process (an envelope with a [`REPLY_TO`] address): after the request's
    /// emission has run, its responder's answer (its value, its error, its
    /// panic), or `NoResponder` when this worker has none, goes to `sender`,
    /// unless the caller's deadline ([`REPLY_BY`]) has passed. A request
    /// this worker has no handler at all for is answered `NoResponder` and
    /// settled (not retried: its caller has its answer). Without a sender,
    /// such requests run and their callers time out.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::future::BoxFuture;
    /// use pyventus_core::EventLinker;
    /// use pyventus_core::remote::{Inbound, ReplySender};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// /// A broker's way back to the caller (a Redis list, an AMQP reply-to).
    /// struct Outbox;
    /// impl ReplySender for Outbox {
    ///     fn send<'a>(
    ///         &'a self,
    ///         to: &'a str,
    ///         id: &'a str,
    ///         answer: String,
    ///         ttl: Duration,
    ///     ) -> BoxFuture<'a, Result<(), String>> {
    ///         Box::pin(async move {
    ///             println!("{answer} to {to} for {id}, kept {ttl:?} at most");
    ///             Ok(())
    ///         })
    ///     }
    /// }
    ///
    /// let inbound = Inbound::new(EventLinker::new(), "my-worker").reply_sender(Arc::new(Outbox));
    /// # drop(inbound);
    /// ```
    #[must_use]
    pub fn reply_sender(mut self, sender: Arc<dyn ReplySender>) -> Self {
        self.replies = Some(sender);
        self
    }

    /// The linker whose handlers run.
    pub fn linker(&self) -> &EventLinker {
        &self.linker
    }

    /// Runs `envelope`'s handlers, with `context` attached to the emission
    /// for handlers to read (the broker's delivery: envelope id, attempt), in
    /// the current span, where it records the envelope's id and event.
    ///
    /// # Errors
    ///
    /// The [`DeliveryFailure`]: a payload that does not decode, an event this
    /// worker cannot resolve, targeted handlers it does not have, failed
    /// handlers (with their report), or the deadline passed (the asynchronous
    /// handlers cancelled).
    pub async fn run(
        &self,
        envelope: &Envelope,
        context: Arc<dyn Any + Send + Sync>,
    ) -> Result<(), DeliveryFailure> {
        // Nothing happens before the first poll: a caller instruments the
        // future with its delivery's span, which must be current here.
        tracing::Span::current()
            .record("envelope", envelope.id.as_str())
            .record("event", envelope.event.as_str());
        self.start(envelope, context).await
    }

    /// The delivery's run, built synchronously: its future holds the emission
    /// once. Built within an `async fn` nesting `run_emission`, each level kept
    /// its own copy, and a broker's delivery future grew past 2 KB
    /// (docs/benchmarks.md). The replies of requests, rare, are boxed.
    fn start<'a>(
        &'a self,
        envelope: &'a Envelope,
        context: Arc<dyn Any + Send + Sync>,
    ) -> impl Future<Output = Ran> + Send + 'a {
        let mut emission = match self.resolve(envelope) {
            Ok(emission) => emission,
            Err(Resolved::Failed(failure)) => return Either::Left(ready(Err(failure))),
            Err(Resolved::NoResponder(sender, to)) => {
                // Known at once: the caller need not wait for its timeout.
                // Answered, the request is settled: a redelivery would only
                // answer again.
                return Either::Right(Either::Left(
                    async move {
                        reply_no_responder(envelope, &**sender, to).await;
                        Ok(())
                    }
                    .boxed(),
                ));
            }
        };
        if !envelope.handlers.is_empty() {
            let missing = emission.retain_handlers(&envelope.handlers);
            if !missing.is_empty() {
                // Runs nothing: the delivery fails, so a worker that has every
                // handler it targets takes it (or it is dead-lettered).
                emission.discard();
                return Either::Left(ready(Err(DeliveryFailure::MissingHandlers(missing))));
            }
        }
        Either::Right(self.run_resolved(envelope, emission, context))
    }

    /// Decodes `envelope`'s event and resolves its subscribers.
    fn resolve<'a>(&'a self, envelope: &'a Envelope) -> Result<EventEmission, Resolved<'a>> {
        let event = super::decode(&envelope.event, &envelope.payload)
            .map_err(|err| Resolved::Failed(DeliveryFailure::Decode(err)))?;
        EventEmission::resolve(&self.linker, event).map_err(|err| {
            match (self.reply_to(envelope), &err) {
                (Some((sender, to)), Error::NoHandler { .. }) => Resolved::NoResponder(sender, to),
                _ => Resolved::Failed(DeliveryFailure::Resolve(err)),
            }
        })
    }

    /// Where a request's answer goes: its sender and reply address.
    fn reply_to<'a>(
        &'a self,
        envelope: &'a Envelope,
    ) -> Option<(&'a Arc<dyn ReplySender>, &'a str)> {
        self.replies
            .as_ref()
            .zip(envelope.context.get(REPLY_TO).map(String::as_str))
    }

    /// Runs the resolved emission; a request's then answers its caller.
    fn run_resolved<'a>(
        &'a self,
        envelope: &'a Envelope,
        mut emission: EventEmission,
        context: Arc<dyn Any + Send + Sync>,
    ) -> Either<BoxFuture<'a, Ran>, impl Future<Output = Ran> + Send + 'static> {
        let Some((sender, to)) = self.reply_to(envelope) else {
            return Either::Right(self.emission_run(emission, context));
        };
        let slot = Arc::new(RemoteAnswer::default());
        emission.set_remote_answer(slot.clone());
        let run = self.emission_run(emission, context);
        Either::Left(
            async move {
                let result = run.await;
                match slot.take() {
                    Some(answer) => reply(envelope, &**sender, to, answer).await,
                    // It ran, and nothing answered: it has no responder here.
                    None if result.is_ok() => reply_no_responder(envelope, &**sender, to).await,
                    // Cut short or failed before answering: the caller times
                    // out (or a redelivery answers).
                    None => {}
                }
                result
            }
            .boxed(),
        )
    }

    /// The second half of [`run`](Self::run), for a worker that decodes and
    /// resolves its events itself (from a database row, say) and may narrow
    /// the emission first (leaving out the handlers that already succeeded):
    /// sets the emission's options, runs it under its deadline, and reads its
    /// report.
    ///
    /// # Errors
    ///
    /// [`DeliveryFailure::Handlers`] with the run's report, or
    /// [`DeliveryFailure::TimedOut`].
    pub async fn run_emission(
        &self,
        emission: EventEmission,
        context: Arc<dyn Any + Send + Sync>,
    ) -> Result<(), DeliveryFailure> {
        self.emission_run(emission, context).await
    }

    /// [`run_emission`](Self::run_emission)'s future, built synchronously (in
    /// a runtime: the deadline's timer is made here).
    fn emission_run(
        &self,
        mut emission: EventEmission,
        context: Arc<dyn Any + Send + Sync>,
    ) -> impl Future<Output = Ran> + Send + 'static {
        emission.set_blocking(self.blocking);
        emission.set_blocking_threads(BlockingThreads::Detached);
        emission.set_processor(self.processor);
        // Cut short (its deadline, the worker's shutdown), the message is
        // delivered again: not a loss.
        emission.set_redeliverable(true);
        emission.set_context(context);
        let deadline = self.deadline(&emission);
        let run = emission.run();
        let run = match deadline {
            Some(limit) => Either::Left(
                tokio::time::timeout(limit, run)
                    .map(move |ran| ran.map_err(|_| DeliveryFailure::TimedOut(limit))),
            ),
            None => Either::Right(run.map(Ok)),
        };
        run.map(|ran| match ran {
            Ok(report) if report.is_success() => Ok(()),
            Ok(report) => Err(DeliveryFailure::Handlers(report)),
            Err(timed_out) => Err(timed_out),
        })
    }

    /// How long `emission`'s handlers may run: the longest timeout among them,
    /// or none if any has none.
    fn deadline(&self, emission: &EventEmission) -> Option<Duration> {
        if emission.subscriber_count() == 0 {
            return None;
        }
        let mut longest = Duration::ZERO;
        let mut link_time = 0;
        for id in emission.handler_ids() {
            link_time += 1;
            let limit = self
                .handler_timeouts
                .get(id)
                .copied()
                .or(self.handler_timeout)?;
            longest = longest.max(limit);
        }
        if emission.subscriber_count() > link_time {
            // Closures subscribed at runtime have no id: the worker's timeout.
            longest = longest.max(self.handler_timeout?);
        }
        Some(longest)
    }
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("linker", &self.linker)
            .field("processor", &self.processor)
            .field("blocking", &self.blocking)
            .field("handler_timeout", &self.handler_timeout)
            .field("handler_timeouts", &self.handler_timeouts)
            .field("replies", &self.replies.is_some())
            .finish()
    }
}

/// What running a delivery's handlers gives.
type Ran = Result<(), DeliveryFailure>;

/// Why an envelope's emission was not resolved.
enum Resolved<'a> {
    Failed(DeliveryFailure),
    /// A request for an event no handler here takes: its caller is told.
    NoResponder(&'a Arc<dyn ReplySender>, &'a str),
}

/// Tells the caller that nothing here responds to its request.
async fn reply_no_responder(envelope: &Envelope, sender: &dyn ReplySender, to: &str) {
    reply(envelope, sender, to, RemoteAnswer::NO_RESPONDER.to_owned()).await;
}

/// Sends a request's encoded answer to its caller's reply address, while the
/// caller still waits; a failure is logged (the caller times out).
async fn reply(envelope: &Envelope, sender: &dyn ReplySender, to: &str, answer: String) {
    let now = super::millis(std::time::SystemTime::now());
    let by = envelope
        .context
        .get(REPLY_BY)
        .and_then(|by| by.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    if now >= by {
        tracing::debug!(target: "pyventus", envelope = %envelope.id, "the caller stopped waiting: no answer sent");
        return;
    }
    // Unread, it goes within a second of the caller's deadline.
    let ttl = Duration::from_millis(by.saturating_sub(now).saturating_add(1_000));
    if let Err(reason) = sender.send(to, &envelope.id, answer, ttl).await {
        tracing::warn!(target: "pyventus", envelope = %envelope.id, reply_to = %to, "could not send the answer: {reason}");
    }
}

/// The span one delivery runs in, `pyventus.delivery` at info level: the
/// queue, the broker's id of the message (a Redis entry id, a RabbitMQ
/// delivery tag), its attempt, and, once [`Inbound::run`] has read the
/// envelope, its id and event.
///
/// # Examples
///
/// ```
/// let span = pyventus_core::remote::delivery_span("orders", &"1700000000000-0", 1);
/// # drop(span);
/// ```
pub fn delivery_span(queue: &str, message: &dyn fmt::Display, attempt: u64) -> tracing::Span {
    tracing::info_span!(
        "pyventus.delivery",
        queue = %queue,
        message = %message,
        attempt,
        envelope = tracing::field::Empty,
        event = tracing::field::Empty,
    )
}

/// What the worker running the calling handler attached to its emission
/// (the `context` of [`Inbound::run`]), if it is a `T`: a broker's delivery,
/// whose `current_delivery()` this is.
///
/// # Examples
///
/// ```
/// // Outside a worker's handler there is none.
/// assert!(pyventus_core::remote::attached::<String>().is_none());
/// ```
pub fn attached<T: Clone + Send + Sync + 'static>() -> Option<T> {
    crate::current_emission()?
        .context::<T>()
        .map(|attached| (*attached).clone())
}

/// [`attached`] for a handler parameter (a broker's
/// [`FromDelivery`](crate::FromDelivery) for its delivery): outside one of
/// `worker`'s workers, an error saying that the handler takes `type_path`
/// there.
///
/// # Errors
///
/// Nothing of type `T` is attached to the handler's emission.
///
/// # Examples
///
/// ```
/// let err = pyventus_core::remote::attached_in_worker::<String>("my::Delivery", "Kafka")
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "the handler takes a `my::Delivery` but runs outside a Kafka worker"
/// );
/// ```
pub fn attached_in_worker<T: Clone + Send + Sync + 'static>(
    type_path: &str,
    worker: &str,
) -> Result<T, anyhow::Error> {
    attached().ok_or_else(|| {
        anyhow::anyhow!("the handler takes a `{type_path}` but runs outside a {worker} worker")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker's task holds one delivery's future per entry in flight (a
    /// Redis worker, 64 in one task): built synchronously, it holds its
    /// emission once, with the deadline's timer, and not once per nested
    /// step (it was 2,176 bytes with every feature, and a Redis delivery's
    /// 2,512).
    #[test]
    fn a_delivery_future_holds_its_emission_once() {
        let inbound =
            Inbound::new(EventLinker::new(), "test").handler_timeout(Some(Duration::from_secs(1)));
        let envelope = Envelope::new("Ping", "null");
        let run = inbound.run(&envelope, Arc::new(()));
        let (future, emission) = (size_of_val(&run), size_of::<EventEmission>());
        // A second copy of the emission would pass the bound.
        assert!(
            future <= emission + 256,
            "the delivery's future is {future} bytes, its emission {emission}"
        );
    }
}
