//! A subscriber with a [`Policy`](crate::resilience::Policy), run apart from
//! the emission's in-order synchronous subscribers: its concurrency slot, its
//! attempts, the backoff between them and each attempt's deadline.
//!
//! Every attempt runs as the same delivery of the same emission (its context,
//! its span's fields); only this subscriber runs again. The workflow settles
//! each attempt as usual, except that an attempt the policy will retry is not
//! handed to the callbacks (the `attempt` marker tells it): the last failure
//! reaches them once, with its `Exhausted` context, then the dead-letter sink.
//! The emission waits for this loop, so `wait_for_all` and the services' waits
//! include the retries still scheduled.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{Either, select};
use tracing::Instrument;

use super::run::{BlockingPool, Job};
use crate::lifecycle::context::{self, InEmission};
use crate::registry::callback::{EventCallback, Guarded};
use crate::registry::record::SubscriberInner;
use crate::resilience::attempt::{self, Attempt};
use crate::resilience::{Busy, Delivery, Middleware, Refused, Rejected, TimedOut};
use crate::workflow::extract::DeliveryContext;
use crate::workflow::{Outcome, Run, Settled, panic_error};

impl Job {
    /// Runs a subscriber with a policy to its end: success, or the failure
    /// its policy gave up on. A synchronous one's attempts run on `blocking`'s
    /// blocking threads when given (it is `blocking`, or the emission runs
    /// every synchronous subscriber there, as a broker's worker does).
    pub(super) async fn run_guarded(
        self,
        blocking: Option<BlockingPool>,
    ) -> (Arc<SubscriberInner>, Settled) {
        let sub = self.sub.clone();
        let settled = match &sub.callback {
            EventCallback::Resilient(guarded) => self.deliver(guarded, blocking.as_ref()).await,
            // Routed here only with a policy; anything else runs as it would.
            _ => return self.run_async().await,
        };
        (sub, settled)
    }

    async fn deliver(&self, guarded: &Guarded, blocking: Option<&BlockingPool>) -> Settled {
        let policy = guarded.policy;
        let subscriber = self.sub.id();
        // Held across the attempts and the pauses between them.
        let _permit = match &guarded.permits {
            None => None,
            Some(permits) if policy.busy() == Busy::Refuse => match permits.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let limit = policy.concurrency_limit().unwrap_or_default();
                    return self.give_up(0, anyhow::Error::new(Refused { limit }));
                }
            },
            // The semaphore is never closed.
            Some(permits) => permits.acquire().await.ok(),
        };
        let attempts = policy.max_attempts();
        let mut number = 1;
        loop {
            let attempt = Attempt {
                subscriber,
                number,
                last: number >= attempts,
            };
            let delivery = Delivery {
                event: &self.current.event,
                handler: self.sub.handler_id(),
                subscriber,
                emission: self.current.id,
                attempt: number,
                max_attempts: attempts,
            };
            if let Err(err) = self.before(&guarded.middleware, &delivery) {
                return self.give_up(number - 1, err.context(Rejected));
            }
            // Middleware that enriches the attempt gives it a span of its own,
            // the parent of its delivery span.
            let enriched = self.enrich(&guarded.middleware, &delivery);
            let job = enriched.as_ref().unwrap_or(self);
            let started = Instant::now();
            let settled = job
                .attempt(&guarded.inner, policy.timeout_after(), blocking, attempt)
                .await;
            self.after(
                &guarded.middleware,
                &delivery,
                settled.as_ref().err().map_or(Ok(()), Err),
                started.elapsed(),
            );
            match settled {
                Ok(()) => return Ok(()),
                Err(err) if attempt.last => return Err(err),
                Err(err) => {
                    let delay = policy.retry_backoff().delay(number - 1);
                    crate::observe::retried(self.current.event.name(), self.sub.workflow.handler());
                    tracing::warn!(
                        target: "pyventus",
                        parent: &self.parent,
                        handler = self.sub.workflow.handler(),
                        subscriber,
                        emission = self.current.id,
                        attempt = number,
                        attempts,
                        retry_in = ?delay,
                        "attempt failed, retrying: {err:#}"
                    );
                    crate::runtime::sleep(delay).await;
                    number += 1;
                }
            }
        }
    }

    /// One attempt, settled by the workflow as `attempt`.
    async fn attempt(
        &self,
        inner: &EventCallback,
        timeout: Option<Duration>,
        blocking: Option<&BlockingPool>,
        attempt: Attempt,
    ) -> Settled {
        match inner {
            EventCallback::Async(f) => {
                let delivery = self.delivery();
                let run = Run::new(&self.sub.workflow, &delivery);
                let span = run.span();
                let started = {
                    let _entered = context::enter(self.current.clone());
                    let _in_span = span.enter();
                    crate::observe::trace::started(delivery.debug);
                    catch_unwind(AssertUnwindSafe(|| {
                        f(self.current.event.clone(), &DeliveryContext::new(run))
                    }))
                };
                let outcome = match started {
                    Ok(fut) => {
                        let running = AssertUnwindSafe(
                            InEmission::new(self.current.clone(), fut).instrument(span.clone()),
                        )
                        .catch_unwind()
                        .map(|ended| ended.unwrap_or_else(|panic| Err(panic_error(&*panic))));
                        match timeout {
                            None => running.await,
                            Some(after) => deadline(running, after).await,
                        }
                    }
                    Err(panic) => Err(panic_error(&*panic)),
                };
                span.in_scope(|| attempt::during(attempt, || run.settle(outcome)))
            }
            _ => match blocking {
                Some(pool) => {
                    let job = self.clone();
                    pool.run(move || job.attempt_sync(attempt)).await
                }
                None => self.attempt_sync(attempt),
            },
        }
    }

    /// One attempt of a synchronous subscriber, on the calling thread.
    fn attempt_sync(&self, attempt: Attempt) -> Settled {
        let EventCallback::Resilient(guarded) = &self.sub.callback else {
            return Err(anyhow::anyhow!(
                "pyventus internal error: a subscriber without a policy was retried"
            ));
        };
        let _entered = context::enter(self.current.clone());
        let delivery = self.delivery();
        let run = Run::new(&self.sub.workflow, &delivery);
        attempt::during(attempt, || guarded.inner.run_sync(run))
    }

    /// Fails a delivery that will not run (again): refused at its
    /// concurrency limit, or rejected by middleware, after `ran` attempts.
    fn give_up(&self, ran: u32, err: anyhow::Error) -> Settled {
        let _entered = context::enter(self.current.clone());
        let delivery = self.delivery();
        let run = Run::new(&self.sub.workflow, &delivery);
        let _span = run.span().entered();
        let attempt = Attempt {
            subscriber: self.sub.id(),
            number: ran,
            last: true,
        };
        Err(attempt::during(attempt, || run.fail(err)))
    }

    /// Runs each middleware's `before`, outermost first, in the delivery's
    /// context: the first error rejects the delivery (a panic is one).
    fn before(
        &self,
        layers: &[Arc<dyn Middleware>],
        delivery: &Delivery<'_>,
    ) -> anyhow::Result<()> {
        if layers.is_empty() {
            return Ok(());
        }
        let _entered = context::enter(self.current.clone());
        let _span = self.parent.enter();
        for layer in layers {
            catch_unwind(AssertUnwindSafe(|| layer.before(delivery)))
                .unwrap_or_else(|panic| Err(panic_error(&*panic)))?;
        }
        Ok(())
    }

    /// The job with its parent span replaced by the middlewares' spans, each
    /// made inside the one before (outermost first), if any gives one.
    fn enrich(&self, layers: &[Arc<dyn Middleware>], delivery: &Delivery<'_>) -> Option<Job> {
        if layers.is_empty() {
            return None;
        }
        let _entered = context::enter(self.current.clone());
        let mut parent: Option<tracing::Span> = None;
        for layer in layers {
            let made = {
                let _inside = parent.as_ref().unwrap_or(&self.parent).enter();
                catch_unwind(AssertUnwindSafe(|| layer.span(delivery)))
            };
            match made {
                Ok(Some(span)) => parent = Some(span),
                Ok(None) => {}
                Err(panic) => tracing::error!(
                    target: "pyventus",
                    handler = self.sub.workflow.handler(),
                    emission = self.current.id,
                    "middleware panicked making its span: {}",
                    crate::HandlerPanic::from_payload(&*panic).message()
                ),
            }
        }
        let mut job = self.clone();
        job.parent = parent?;
        Some(job)
    }

    /// Runs each middleware's `after`, innermost first, in the delivery's
    /// context; a panic is logged.
    fn after(
        &self,
        layers: &[Arc<dyn Middleware>],
        delivery: &Delivery<'_>,
        outcome: Result<(), &anyhow::Error>,
        took: Duration,
    ) {
        if layers.is_empty() {
            return;
        }
        let _entered = context::enter(self.current.clone());
        let _span = self.parent.enter();
        for layer in layers.iter().rev() {
            if let Err(panic) =
                catch_unwind(AssertUnwindSafe(|| layer.after(delivery, outcome, took)))
            {
                tracing::error!(
                    target: "pyventus",
                    handler = self.sub.workflow.handler(),
                    emission = self.current.id,
                    "middleware panicked after an attempt: {}",
                    crate::HandlerPanic::from_payload(&*panic).message()
                );
            }
        }
    }
}

/// `running`'s outcome, or [`TimedOut`] if it is still running `after` from
/// now (it is then dropped: cancelled).
async fn deadline(running: impl Future<Output = Outcome>, after: Duration) -> Outcome {
    let running = std::pin::pin!(running);
    let timer = std::pin::pin!(crate::runtime::sleep(after));
    match select(running, timer).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(((), _)) => Err(anyhow::Error::new(TimedOut { after })),
    }
}
