//! Counting unfinished emissions (per processing service, per run outside a
//! runtime, and for the whole process) and reporting, one batch at a time, the
//! accepted ones that were dropped before they finished.
//!
//! Concurrency: counting is lock-free; finishing an emission takes a lock only
//! when someone waits for the count to reach zero, or when losses wait to be
//! reported. No user code runs under a lock here (the loss report is logged
//! after the batch is taken out).

use std::fmt::Write as _;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::Notify;

use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::sync::{Arc, Condvar, Mutex, PoisonError};

/// Every emission a processing service of this process has accepted and not
/// finished, plus the work backends count with [`Unfinished`](crate::Unfinished).
pub(crate) static ALL: InFlight = InFlight::new("pyventus");

/// How long losses may wait for their batch to close (the service running out
/// of work) before they are reported anyway.
const REPORT_AFTER: Duration = Duration::from_millis(200);

/// How many event names a loss report lists before summing up the rest.
const LISTED_EVENTS: usize = 10;

/// A count of unfinished emissions that can be waited on, and the batch of
/// those lost since the last report.
pub(crate) struct InFlight {
    count: AtomicUsize,
    waiters: AtomicUsize,
    notify: Notify,
    lock: Mutex<()>,
    idle: Condvar,
    /// Who accepted these emissions, as loss reports name it.
    owner: &'static str,
    has_lost: AtomicBool,
    lost: Mutex<Lost>,
}

/// Emissions lost since the last report.
#[derive(Default)]
struct Lost {
    total: usize,
    /// Per event name, in the order first lost.
    by_event: Vec<(String, usize)>,
    /// A reporter thread is on its way.
    reporter: bool,
}

impl InFlight {
    pub(crate) const fn new(owner: &'static str) -> Self {
        InFlight {
            count: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            notify: Notify::const_new(),
            lock: Mutex::new(()),
            idle: Condvar::new(),
            owner,
            has_lost: AtomicBool::new(false),
            lost: Mutex::new(Lost {
                total: 0,
                by_event: Vec::new(),
                reporter: false,
            }),
        }
    }

    /// This counter's identity: what marks an emission as run by its service.
    pub(crate) fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Counts one more emission; the caller must `end` it.
    pub(crate) fn begin(&self) {
        self.count.fetch_add(1, SeqCst);
    }

    /// Counts one emission finished.
    pub(crate) fn end(&self) {
        if self.count.fetch_sub(1, SeqCst) != 1 {
            return;
        }
        // Out of work: the batch of losses closes here, before any waiter wakes,
        // so that whoever waited sees the report first.
        if self.has_lost.load(SeqCst) {
            self.report_lost();
        }
        // Pairs with `wait*`: a waiter registers, then reads the count; a finisher
        // decrements, then reads the waiters. SeqCst means one sees the other.
        if self.waiters.load(SeqCst) > 0 {
            self.notify.notify_waiters();
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(SeqCst)
    }

    /// Waits until the count is zero.
    pub(crate) async fn wait(&self) {
        let _waiting = Waiting::new(self);
        loop {
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            if self.count.load(SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Blocks until the count is zero.
    pub(crate) fn wait_blocking(&self) {
        let _waiting = Waiting::new(self);
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.count.load(SeqCst) > 0 {
            guard = self
                .idle
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Adds an accepted emission of `event` that was dropped unfinished to the
    /// current batch. The batch is reported when this service runs out of work
    /// (a runtime shutting down drops all its tasks at once), or after
    /// [`REPORT_AFTER`] at the latest.
    #[cold]
    pub(crate) fn lose(self: &Arc<Self>, event: &str) {
        let start_reporter = {
            let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
            lost.total += 1;
            match lost.by_event.iter_mut().find(|(name, _)| name == event) {
                Some((_, n)) => *n += 1,
                None => lost.by_event.push((event.to_owned(), 1)),
            }
            self.has_lost.store(true, SeqCst);
            !std::mem::replace(&mut lost.reporter, true)
        };
        if start_reporter {
            let this = self.clone();
            let spawned = std::thread::Builder::new()
                .name("pyventus-loss-report".to_owned())
                .spawn(move || {
                    std::thread::sleep(REPORT_AFTER);
                    this.report_lost();
                });
            if spawned.is_err() {
                self.report_lost();
            }
        }
    }

    /// Logs the current batch of losses, if any, as one error event.
    #[cold]
    fn report_lost(&self) {
        let lost = {
            let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
            self.has_lost.store(false, SeqCst);
            std::mem::take(&mut *lost)
        };
        if lost.total == 0 {
            return;
        }
        let mut events = String::new();
        for (i, (name, n)) in lost.by_event.iter().enumerate() {
            if i == LISTED_EVENTS {
                let _ = write!(events, ", and {} more", lost.by_event.len() - i);
                break;
            }
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(events, "{sep}{name} ×{n}");
        }
        let plural = if lost.total == 1 { "" } else { "s" };
        tracing::error!(
            target: "pyventus",
            lost = lost.total,
            events = %events,
            "{} emission{plural} accepted by {} {} dropped before {} subscribers finished \
             (its runtime shut down, or its threads stopped): {events}; wait for them before \
             shutting down, with `pyventus::wait_for_all().await`",
            lost.total,
            self.owner,
            if lost.total == 1 { "was" } else { "were" },
            if lost.total == 1 { "its" } else { "their" },
        );
    }
}

struct Waiting<'a>(&'a InFlight);

impl<'a> Waiting<'a> {
    fn new(in_flight: &'a InFlight) -> Self {
        in_flight.waiters.fetch_add(1, SeqCst);
        Waiting(in_flight)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, SeqCst);
    }
}

/// One accepted, unfinished emission, counted by its service, by the run that
/// waits for it (if any) and by the process. The emission holds it and lets it
/// go when it finishes, is handed off, discarded or lost.
pub(crate) struct Ticket {
    service: Arc<InFlight>,
    scope: Option<Arc<InFlight>>,
    /// Whatever else must last exactly as long as the emission is unfinished.
    hold: Option<Box<dyn Send + Sync>>,
}

impl Ticket {
    pub(crate) fn new(service: &Arc<InFlight>, scope: Option<Arc<InFlight>>) -> Self {
        ALL.begin();
        service.begin();
        if let Some(scope) = &scope {
            scope.begin();
        }
        Ticket {
            service: service.clone(),
            scope,
            hold: None,
        }
    }

    /// Keeps `value` until the emission is finished.
    pub(crate) fn hold(&mut self, value: Box<dyn Send + Sync>) {
        self.hold = Some(value);
    }

    /// Reports the emission of `event` lost, in its service's batch.
    pub(crate) fn lose(&self, event: &str) {
        self.service.lose(event);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        drop(self.hold.take());
        // The service first: whoever waits for the run or the process then sees
        // the service idle, and its losses reported.
        self.service.end();
        if let Some(scope) = &self.scope {
            scope.end();
        }
        ALL.end();
    }
}
