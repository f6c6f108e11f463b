//! pyventus's own blocking threads: where a broker worker's synchronous
//! handlers run (`BlockingThreads::Detached`), away from every runtime of the
//! program's, so that none waits for a handler stuck there.
//!
//! A thread per job, as tokio's `spawn_blocking` gives, costs a wake-up of a
//! parked thread for each one: tokio wakes an idle thread for every job it is
//! handed, and a worker's read batch hands it dozens at once. Here a job goes
//! to a queue that the threads already running take in turn, and a thread is
//! woken (or started) only when no thread is running or about to run:
//! a batch of quick handlers costs one wake-up, not one per entry.
//!
//! Queued behind a slow handler, a job would wait for it: a watch on
//! pyventus's runtime adds threads whenever the oldest queued job has waited
//! [`STEAL_AFTER`] (as many as are running: the count doubles each round),
//! until the queue is empty. Handlers that block (on I/O, on each other) get
//! a thread each a few milliseconds later, as `spawn_blocking` gives at once.
//!
//! Built on `std`'s lock and condition variable rather than the model-checked
//! ones of `crate::sync`: its threads are OS threads, which Shuttle does not
//! schedule.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long the oldest queued job waits before the watch adds a thread for
/// it: a handler running longer than this no longer holds up the ones queued
/// behind it (much longer than a quick handler, short beside a slow one).
pub(crate) const STEAL_AFTER: Duration = Duration::from_millis(1);

/// How long a thread with nothing to do waits for a job before it ends.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The most threads the pool runs at once (tokio's default for its blocking
/// threads): past it, jobs wait for a thread to finish.
const MAX_THREADS: usize = 512;

type Task = Box<dyn FnOnce() + Send>;

/// The pool: its queue and threads, under one lock.
struct Pool {
    state: Mutex<State>,
    /// Where idle threads wait to be told of a job.
    work: Condvar,
}

struct State {
    /// The jobs no thread has taken yet, each with when it was queued.
    queue: VecDeque<(Instant, Task)>,
    /// Threads alive.
    threads: usize,
    /// Threads running a job.
    busy: usize,
    /// Threads waiting for a job (including those told to wake that have not
    /// woken yet).
    idle: usize,
    /// Idle threads told to wake and take a job, not yet awake.
    woken: usize,
    /// Whether the watch is running (it ends when the queue is empty).
    watched: bool,
    /// Whether a task is about to wake a thread for the queued jobs.
    kicked: bool,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            threads: 0,
            busy: 0,
            idle: 0,
            woken: 0,
            watched: false,
            kicked: false,
        }),
        work: Condvar::new(),
    })
}

/// Runs `job` on one of pyventus's own blocking threads. The future resolves
/// to its output, or to `None` if it panicked. Dropped before a thread takes
/// the job, the job does not run (nobody waits for its output: a broker
/// delivers it again).
///
/// Inside the job, the current runtime is pyventus's own.
pub(crate) fn run<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> Detached<R> {
    let (task, output) = task(job);
    pool().push(task);
    output
}

/// `job` as the pool runs it, and its output's future.
fn task<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> (Task, Detached<R>) {
    let (tx, rx) = oneshot::channel();
    let task: Task = Box::new(move || {
        if tx.is_closed() {
            return;
        }
        // A panic drops `tx`: the future resolves to `None`.
        let _ = tx.send(job());
    });
    (task, Detached(rx))
}

/// Wakes a thread for the queued jobs, if none is running, when dropped.
struct Kick(&'static Pool);

impl Drop for Kick {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.kicked = false;
        if !state.queue.is_empty() && state.busy + state.woken == 0 {
            self.0.add_thread(&mut state);
        }
    }
}

/// A job's output, once its thread ran it (see [`run`]).
pub(crate) struct Detached<R>(oneshot::Receiver<R>);

impl<R> Future for Detached<R> {
    type Output = Option<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<R>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, and nothing under it panics.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&'static self, task: Task) {
        let mut state = self.lock();
        state.queue.push_back((Instant::now(), task));
        // A running thread takes it when it is done with its job; the watch
        // adds a thread if that takes too long.
        let idle = state.busy + state.woken == 0 && !state.kicked;
        let watch = !state.watched;
        state.watched = true;
        let kick = match tokio::runtime::Handle::try_current() {
            // The thread is woken once the task pushing ends its turn, with
            // every job it pushed queued: a worker's read batch pushes one
            // per entry, each after some work of its own, and a thread woken
            // at the first would run it and sleep again before the next.
            Ok(current) if idle => {
                state.kicked = true;
                Some(current)
            }
            Ok(_) => None,
            Err(_) => {
                if idle {
                    self.add_thread(&mut state);
                }
                None
            }
        };
        drop(state);
        if let Some(current) = kick {
            // Run or dropped unrun (its runtime shutting down), it kicks.
            let kick = Kick(self);
            drop(current.spawn(async move { drop(kick) }));
        }
        if watch {
            drop(super::spawn_on_io_runtime(self.watch()));
        }
    }

    /// Wakes an idle thread to take the next job, or starts one.
    fn add_thread(&'static self, state: &mut State) {
        if state.idle > state.woken {
            state.woken += 1;
            self.work.notify_one();
        } else if state.threads < MAX_THREADS {
            let started = std::thread::Builder::new()
                .name("pyventus-blocking".into())
                .spawn(move || self.serve());
            match started {
                Ok(_detached) => state.threads += 1,
                // The watch tries again while the job waits.
                Err(err) => tracing::error!(
                    target: "pyventus",
                    error = %err,
                    "cannot start a blocking thread for a synchronous handler"
                ),
            }
        }
    }

    /// Adds threads each time the oldest queued job has waited
    /// [`STEAL_AFTER`], until the queue is empty.
    async fn watch(&'static self) {
        let mut wait = STEAL_AFTER;
        loop {
            tokio::time::sleep(wait).await;
            let mut state = self.lock();
            let Some((queued, _)) = state.queue.front() else {
                state.watched = false;
                return;
            };
            let waited = queued.elapsed();
            if waited >= STEAL_AFTER {
                // As many more as are running (one if none), as many as the
                // queue holds at most: handlers that all block get threads
                // of their own in a few rounds.
                let more = state.busy.max(1).min(state.queue.len());
                for _ in 0..more {
                    self.add_thread(&mut state);
                }
                wait = STEAL_AFTER;
            } else {
                wait = STEAL_AFTER.saturating_sub(waited);
            }
        }
    }

    /// A thread's life: takes jobs while there are some, waits for more up to
    /// [`KEEP_ALIVE`], then ends.
    fn serve(&'static self) {
        // A handler here that asks for the current runtime gets pyventus's.
        let _runtime = super::own_handle().enter();
        let mut state = self.lock();
        loop {
            if let Some((_, task)) = state.queue.pop_front() {
                state.busy += 1;
                drop(state);
                // The job contains its own panics; a panic here only drops
                // its sender, and the thread goes on.
                let _ = catch_unwind(AssertUnwindSafe(task));
                state = self.lock();
                state.busy -= 1;
                continue;
            }
            state.idle += 1;
            let mut told = false;
            let deadline = Instant::now() + KEEP_ALIVE;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let (next, timeout) = self
                    .work
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner);
                state = next;
                if state.woken > 0 {
                    state.woken -= 1;
                    told = true;
                    break;
                }
                if timeout.timed_out() {
                    break;
                }
            }
            state.idle -= 1;
            if !told && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_job_runs_on_a_pool_thread_in_a_runtime_and_hands_back_its_output() {
        let out = crate::runtime::block_on(run(|| {
            let in_runtime = tokio::runtime::Handle::try_current().is_ok();
            (in_runtime, std::thread::current().name().map(str::to_owned))
        }));
        assert_eq!(out, Some((true, Some("pyventus-blocking".to_owned()))));
    }

    #[test]
    fn a_panicking_job_resolves_to_none_and_the_pool_goes_on() {
        assert_eq!(crate::runtime::block_on(run(|| panic!("boom"))), None::<()>);
        assert_eq!(crate::runtime::block_on(run(|| 7)), Some(7));
    }

    #[test]
    fn jobs_queued_behind_a_stuck_one_get_threads_of_their_own() {
        // The first job blocks until the last one ran: on one thread, in
        // turn, they would never finish.
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let first = run(move || stuck.recv_timeout(Duration::from_secs(10)).is_ok());
        let ran = Arc::new(AtomicUsize::new(0));
        let others: Vec<_> = (0..8)
            .map(|_| {
                let ran = ran.clone();
                run(move || ran.fetch_add(1, Ordering::SeqCst))
            })
            .collect();
        let started = Instant::now();
        for other in others {
            assert!(crate::runtime::block_on(other).is_some());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the queued jobs waited for the stuck one"
        );
        release.send(()).unwrap();
        assert_eq!(crate::runtime::block_on(first), Some(true));
        assert_eq!(ran.load(Ordering::SeqCst), 8);
    }

    #[test]
    fn jobs_that_all_wait_for_each_other_all_get_threads() {
        // Each returns once all 16 have started: only 16 threads at once
        // finish them.
        const JOBS: usize = 16;
        let started = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..JOBS)
            .map(|_| {
                let started = started.clone();
                run(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while started.load(Ordering::SeqCst) < JOBS && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    started.load(Ordering::SeqCst) == JOBS
                })
            })
            .collect();
        for job in jobs {
            assert_eq!(crate::runtime::block_on(job), Some(true));
        }
    }

    #[test]
    fn a_job_whose_future_was_dropped_before_it_started_does_not_run() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = ran.clone();
        let (task, output) = task(move || counted.fetch_add(1, Ordering::SeqCst));
        drop(output);
        task();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
