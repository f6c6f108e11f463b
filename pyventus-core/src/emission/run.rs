//! Running an emission: its synchronous subscribers in place, the others as
//! tasks (async) or on blocking threads, each through its workflow; then what
//! the run reports, to its waiters and its processing service.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Either};
use tracing::Instrument;

use super::future::RunFuture;
use super::{BlockingThreads, EventEmission};
use crate::lifecycle::context::{self, CurrentEmission, InEmission};
use crate::registry::Registry;
use crate::registry::callback::EventCallback;
use crate::registry::record::SubscriberInner;
use crate::workflow::extract::DeliveryContext;
use crate::workflow::{Dispatch, Run, Settled, panic_error};
use crate::{Error, RunReport};

/// Each subscriber's outcome, as the joined async runs hand them back.
pub(crate) type Joined = Vec<(Arc<SubscriberInner>, Settled)>;

/// A subscriber's run still going when the synchronous ones are done (an
/// async subscriber, or one on a blocking thread).
type Pending = BoxFuture<'static, (Arc<SubscriberInner>, Settled)>;

/// The runs an emission's start left pending: most often none or one, kept
/// without a list.
pub(super) enum Pendings {
    None,
    One(Pending),
    Many(Vec<Pending>),
}

impl Pendings {
    fn push(&mut self, run: Pending) {
        *self = match std::mem::replace(self, Pendings::None) {
            Pendings::None => Pendings::One(run),
            Pendings::One(first) => Pendings::Many(vec![first, run]),
            Pendings::Many(mut runs) => {
                runs.push(run);
                Pendings::Many(runs)
            }
        };
    }

    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Pendings::None)
    }
}

impl EventEmission {
    #[inline]
    pub(super) fn finish(&mut self, result: impl Fn() -> Result<(), Error>) {
        self.settled = true;
        // Uncounted before anyone wakes: a waiter sees its service idle.
        drop(self.ticket.take());
        for tx in self.waiters.drain(..) {
            // A waiter may have stopped waiting; that is its choice.
            let _ = tx.send(result());
        }
    }

    #[inline]
    fn current(&self) -> CurrentEmission {
        CurrentEmission {
            id: self.id,
            event: self.event.clone(),
            context: self.context.clone(),
            remote_answer: self.remote_answer.clone(),
            lineage: self.lineage.clone(),
        }
    }

    #[inline]
    fn delivery(&self) -> Dispatch<'_> {
        Dispatch::shared(
            &self.event,
            &self.registry.settings,
            self.id,
            self.debug,
            &self.parent,
        )
    }

    /// What running one subscriber away from the emission needs.
    #[inline]
    fn job(&self, sub: &Arc<SubscriberInner>) -> Job {
        Job {
            sub: sub.clone(),
            registry: self.registry.clone(),
            debug: self.debug,
            current: self.current(),
            parent: self.parent.clone(),
        }
    }

    /// Runs the subscribers and their success or failure callbacks. Synchronous
    /// subscribers run in order; asynchronous ones (and `blocking` ones, on
    /// blocking threads: see [`BlockingThreads`]) then run concurrently.
    /// Resolves when all have finished, with what each did.
    ///
    /// Nothing runs until the future is first polled. An emission whose
    /// subscribers are all synchronous finishes in that first poll; the future
    /// is little more than the emission itself (what a task spawned on it
    /// copies).
    pub fn run(self) -> impl Future<Output = RunReport> + Send + 'static {
        RunFuture::Start(self)
    }

    /// Runs the synchronous subscribers (and starts the others), in place:
    /// the report so far, and the runs still to join.
    #[inline]
    pub(super) fn start(&mut self) -> (RunReport, Pendings) {
        self.accounting.started(self.event.name(), self.processor);
        let mut report = RunReport::default();
        let mut pending = Pendings::None;
        // Looked up only for a subscriber that wants a blocking thread.
        let mut threads: Option<Option<BlockingPool>> = None;
        let entered = context::enter(self.current());
        {
            let delivery = self.delivery();
            self.subscribers.for_each(|sub| {
                if let EventCallback::Async(_) = &sub.callback {
                    pending.push(self.job(sub).run_async().boxed());
                    return;
                }
                if let EventCallback::Resilient(_) = &sub.callback {
                    let blocking = if sub.blocking || self.blocking {
                        threads.get_or_insert_with(|| self.blocking_pool()).clone()
                    } else {
                        None
                    };
                    pending.push(self.job(sub).run_guarded(blocking).boxed());
                    return;
                }
                if (sub.blocking || self.blocking)
                    && let Some(pool) = threads.get_or_insert_with(|| self.blocking_pool())
                {
                    pending.push(self.spawn_blocking(pool, sub));
                    return;
                }
                report.record(
                    sub.id(),
                    sub.handler_id(),
                    sub.callback.run_sync(Run::new(&sub.workflow, &delivery)),
                );
            });
        }
        drop(entered);
        (report, pending)
    }

    /// Joins the runs [`start`](Self::start) left pending, then finishes.
    pub(super) async fn join(mut self, mut report: RunReport, pending: Pendings) -> RunReport {
        match pending {
            Pendings::None => {}
            // One run (a broker worker's handler on a blocking thread, most
            // often): awaited as it is, without `join_all`'s allocations.
            Pendings::One(run) => {
                let (sub, settled) = run.await;
                report.record(sub.id(), sub.handler_id(), settled);
            }
            Pendings::Many(runs) => {
                for (sub, settled) in futures::future::join_all(runs).await {
                    report.record(sub.id(), sub.handler_id(), settled);
                }
            }
        }
        self.end(&report);
        report
    }

    /// The threads that take the blocking subscribers, when the emission runs
    /// on a runtime (outside one, the calling thread runs them).
    fn blocking_pool(&self) -> Option<BlockingPool> {
        let current = tokio::runtime::Handle::try_current().ok()?;
        Some(match self.blocking_threads {
            BlockingThreads::Runtime => BlockingPool::Runtime(current),
            BlockingThreads::Detached => BlockingPool::Detached,
        })
    }

    /// Runs a synchronous subscriber on a blocking thread of `pool`.
    fn spawn_blocking(
        &self,
        pool: &BlockingPool,
        sub: &Arc<SubscriberInner>,
    ) -> BoxFuture<'static, (Arc<SubscriberInner>, Settled)> {
        let job = self.job(sub);
        let sub = sub.clone();
        pool.run(move || job.run_blocking())
            .map(|settled| (sub, settled))
            .boxed()
    }

    /// Records the run in the metrics and tells the waiters.
    #[inline]
    pub(super) fn end(&mut self, report: &RunReport) {
        self.accounting
            .ran(self.event.name(), self.processor, report);
        self.finish(|| Ok(()));
    }

    /// Runs the subscribers to completion on the calling thread, blocking it.
    /// Asynchronous subscribers run concurrently on a runtime: the current one if
    /// the thread is in one (stepping out of its async context), a private one
    /// otherwise.
    pub fn run_blocking(self) -> RunReport {
        self.run_then_block_on(crate::runtime::block_on)
    }

    /// Runs the synchronous subscribers in order, then hands the asynchronous ones,
    /// joined, to `block_on` (which must run them to completion).
    pub(crate) fn run_then_block_on(
        mut self,
        block_on: impl FnOnce(BoxFuture<'static, Joined>) -> Joined,
    ) -> RunReport {
        self.accounting.started(self.event.name(), self.processor);
        let mut report = RunReport::default();
        let mut pending = Vec::new();
        let entered = context::enter(self.current());
        {
            let delivery = self.delivery();
            self.subscribers.for_each(|sub| {
                if let EventCallback::Async(_) = &sub.callback {
                    pending.push(Either::Left(self.job(sub).run_async()));
                } else if let EventCallback::Resilient(_) = &sub.callback {
                    // The caller's thread runs it, as the other synchronous ones.
                    pending.push(Either::Right(self.job(sub).run_guarded(None)));
                } else {
                    let settled = sub.callback.run_sync(Run::new(&sub.workflow, &delivery));
                    report.record(sub.id(), sub.handler_id(), settled);
                }
            });
        }
        drop(entered);
        if !pending.is_empty() {
            for (sub, settled) in block_on(futures::future::join_all(pending).boxed()) {
                report.record(sub.id(), sub.handler_id(), settled);
            }
        }
        self.end(&report);
        report
    }
}

/// The blocking threads an emission's blocking subscribers run on (see
/// [`BlockingThreads`]).
#[derive(Clone)]
pub(super) enum BlockingPool {
    /// The current runtime's (`spawn_blocking`).
    Runtime(tokio::runtime::Handle),
    /// pyventus's own, detached from every runtime (`runtime::blocking`),
    /// where a batch of quick handlers costs one thread's wake-up.
    Detached,
}

impl BlockingPool {
    /// Runs a synchronous subscriber's `job` (which contains its own panics)
    /// on one of the pool's threads.
    pub(super) fn run(
        &self,
        job: impl FnOnce() -> Settled + Send + 'static,
    ) -> impl Future<Output = Settled> + Send + 'static {
        // An error can only mean the job never finished: its runtime shutting
        // down, or a panic it did not contain.
        let unfinished = |why: &dyn std::fmt::Display| -> Settled {
            Err(anyhow::anyhow!("the blocking task did not finish: {why}"))
        };
        match self {
            BlockingPool::Runtime(handle) => Either::Left(
                handle
                    .spawn_blocking(job)
                    .map(move |joined| joined.unwrap_or_else(|err| unfinished(&err))),
            ),
            BlockingPool::Detached => Either::Right(
                crate::runtime::blocking::run(job)
                    .map(move |ran| ran.unwrap_or_else(|why| unfinished(&why))),
            ),
        }
    }
}

/// One subscriber of an emission, run away from it: on a task of its own
/// (async), a blocking thread, or its policy's retry loop.
#[derive(Clone)]
pub(super) struct Job {
    pub(super) sub: Arc<SubscriberInner>,
    registry: Arc<Registry>,
    debug: bool,
    pub(super) current: CurrentEmission,
    pub(super) parent: tracing::Span,
}

impl Job {
    pub(super) fn delivery(&self) -> Dispatch<'_> {
        Dispatch::shared(
            &self.current.event,
            &self.registry.settings,
            self.current.id,
            self.debug,
            &self.parent,
        )
    }

    /// Runs a synchronous subscriber on the calling (blocking) thread.
    fn run_blocking(self) -> Settled {
        let _entered = context::enter(self.current.clone());
        let delivery = self.delivery();
        self.sub
            .callback
            .run_sync(Run::new(&self.sub.workflow, &delivery))
    }

    /// Runs an asynchronous subscriber to completion.
    pub(super) async fn run_async(self) -> (Arc<SubscriberInner>, Settled) {
        let settled = {
            let delivery = self.delivery();
            let run = Run::new(&self.sub.workflow, &delivery);
            match &self.sub.callback {
                EventCallback::Async(f) => {
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
                        Ok(fut) => AssertUnwindSafe(
                            InEmission::new(self.current.clone(), fut).instrument(span.clone()),
                        )
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| Err(panic_error(&*panic))),
                        Err(panic) => Err(panic_error(&*panic)),
                    };
                    span.in_scope(|| run.settle(outcome))
                }
                sync => {
                    let _entered = context::enter(self.current.clone());
                    sync.run_sync(run)
                }
            }
        };
        (self.sub, settled)
    }
}
