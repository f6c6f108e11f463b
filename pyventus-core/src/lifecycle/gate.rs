//! The gate of a guarded subscriber: every run passes it before the handler
//! is called, so that once it is closed no new run starts, and it counts the
//! runs in progress, so that an unsubscribe can wait for them to finish.
//!
//! Concurrency: lock-free. One atomic word holds the closed bit and the count
//! of runs in progress; a run's pass is one increment (refused, and undone,
//! when the bit is set) and one decrement. Closing sets the bit: a pass that
//! comes after it in the word's order sees it, so after `close` returns no
//! run starts. Whoever waits for the runs to drain is woken by the last
//! decrement after the close. Each thread keeps the list of the gates whose
//! runs it is inside, so a wait from inside one of its own runs is refused
//! instead of waiting forever. No user code runs here.

use std::cell::RefCell;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::sync::Notify;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use crate::sync::{Arc, thread_local};

/// Set once the gate is closed.
const CLOSED: usize = 1;
/// Set once its subscriber is unlinked from its last event, however.
const UNLINKED: usize = 2;
/// The count of runs in progress is above the flags.
const ONE_RUN: usize = 4;
const FLAGS: u32 = 2;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The gates whose runs this thread is inside now (nested when a handler
    /// emits inline), innermost last.
    static INSIDE: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// A guarded subscriber's gate.
pub(crate) struct Gate {
    id: u64,
    state: AtomicUsize,
    drained: Notify,
    /// Told when its subscriber is unlinked (a stream ends then). It runs
    /// under the registry's lock: it may only set flags and wake a waker.
    on_unlink: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Gate {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Gate {
            id: NEXT_ID.fetch_add(1, SeqCst),
            state: AtomicUsize::new(0),
            drained: Notify::new(),
            on_unlink: OnceLock::new(),
        })
    }

    /// Lets a run start, unless the gate is closed: the run lasts as long as
    /// the pass, and this thread is inside it until then.
    #[inline]
    pub(crate) fn enter(&self) -> Option<Pass<'_>> {
        let before = self.state.fetch_add(ONE_RUN, SeqCst);
        if before & CLOSED != 0 {
            self.leave();
            return None;
        }
        Some(Pass {
            gate: self,
            _inside: Mark::new(self.id),
        })
    }

    /// [`enter`](Self::enter) for a run that outlives the borrow (an async
    /// handler's future): the pass counts until it drops, but the thread is
    /// inside it only while [`Inside`] polls.
    pub(crate) fn enter_owned(self: &Arc<Self>) -> Option<OwnedPass> {
        let before = self.state.fetch_add(ONE_RUN, SeqCst);
        if before & CLOSED != 0 {
            self.leave();
            return None;
        }
        Some(OwnedPass { gate: self.clone() })
    }

    /// Marks the calling thread inside this gate's run until the mark drops
    /// (an async handler building its future).
    pub(crate) fn enter_mark(&self) -> impl Drop + use<> {
        Mark::new(self.id)
    }

    fn leave(&self) {
        let before = self.state.fetch_sub(ONE_RUN, SeqCst);
        if before & CLOSED != 0 && before >> FLAGS == 1 {
            self.drained.notify_waiters();
        }
    }

    /// Closes the gate: no run starts after this returns. Returns whether it
    /// was open.
    pub(crate) fn close(&self) -> bool {
        self.state.fetch_or(CLOSED, SeqCst) & CLOSED == 0
    }

    /// Whether the gate is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(SeqCst) & CLOSED != 0
    }

    /// Marks its subscriber unlinked from every event (removed by any means:
    /// its guard, `remove_all`, ...), and tells whoever asked.
    pub(crate) fn unlinked(&self) {
        if self.state.fetch_or(UNLINKED, SeqCst) & UNLINKED == 0
            && let Some(tell) = self.on_unlink.get()
        {
            tell();
        }
    }

    /// Whether its subscriber was unlinked from every event.
    pub(crate) fn is_unlinked(&self) -> bool {
        self.state.load(SeqCst) & UNLINKED != 0
    }

    /// Calls `tell` when the subscriber is unlinked (once; under the
    /// registry's lock, so it may only set flags and wake a waker).
    pub(crate) fn on_unlink(&self, tell: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_unlink.set(Box::new(tell));
        // Unlinked before `tell` was set: told now.
        if self.is_unlinked() {
            (self.on_unlink.get().expect("just set"))();
        }
    }

    /// How many runs are in progress.
    pub(crate) fn running(&self) -> usize {
        self.state.load(SeqCst) >> FLAGS
    }

    /// Whether the calling thread is inside one of this gate's runs (waiting
    /// for them to drain would wait for itself).
    pub(crate) fn is_inside(&self) -> bool {
        INSIDE
            .try_with(|inside| inside.try_borrow().is_ok_and(|ids| ids.contains(&self.id)))
            .unwrap_or(false)
    }

    /// Waits until no run is in progress. Only a closed gate drains for good;
    /// an open one may start runs again.
    pub(crate) async fn drained(&self) {
        loop {
            let mut notified = pin!(self.drained.notified());
            notified.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

fn push_inside(id: u64) {
    let _ = INSIDE.try_with(|inside| {
        if let Ok(mut ids) = inside.try_borrow_mut() {
            ids.push(id);
        }
    });
}

fn pop_inside(id: u64) {
    let _ = INSIDE.try_with(|inside| {
        if let Ok(mut ids) = inside.try_borrow_mut()
            && let Some(at) = ids.iter().rposition(|i| *i == id)
        {
            ids.remove(at);
        }
    });
}

/// The calling thread is inside a gate's run until this drops (a panic
/// unwinding included).
struct Mark(u64);

impl Mark {
    fn new(id: u64) -> Self {
        push_inside(id);
        Mark(id)
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        pop_inside(self.0);
    }
}

/// A run of a synchronous handler in progress: the thread is inside it.
pub(crate) struct Pass<'a> {
    gate: &'a Gate,
    _inside: Mark,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.leave();
    }
}

/// A run of an asynchronous handler in progress, until its future is done.
pub(crate) struct OwnedPass {
    gate: Arc<Gate>,
}

impl Drop for OwnedPass {
    fn drop(&mut self) {
        self.gate.leave();
    }
}

/// An async handler's future, counted by its gate until it is done, with the
/// thread inside the gate's run during each poll.
pub(crate) struct Inside<F> {
    pub(crate) pass: Option<OwnedPass>,
    pub(crate) future: F,
}

impl<F: Future + Unpin> Future for Inside<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let mark = this.pass.as_ref().map(|pass| Mark::new(pass.gate.id));
        let poll = Pin::new(&mut this.future).poll(cx);
        drop(mark);
        if poll.is_ready() {
            // The run is over: the gate stops counting it now, not when the
            // future is dropped.
            this.pass = None;
        }
        poll
    }
}
