//! pyventus's own blocking threads: where a broker worker's synchronous
//! handlers run (`BlockingThreads::Detached`). They belong to no runtime, so
//! that no runtime of the program's waits for a handler stuck there.
//!
//! A thread per job, as tokio's `spawn_blocking` gives, costs a wake-up of a
//! parked thread for each one: tokio wakes an idle thread for every job it is
//! handed, and a worker's read batch hands it dozens at once. Here a job goes
//! to a queue that the threads already running take in turn, and a thread is
//! woken (or started) only when none is running, starting or about to run.
//! That wake-up waits for the pushing task's turn to end (a tiny task on the
//! caller's runtime), with every job of its batch queued: a batch of quick
//! handlers costs one wake-up, not one per entry.
//!
//! Queued behind a slow handler, a job would wait for it: a watch thread adds
//! a thread for each job that has waited [`STEAL_AFTER`], until the queue is
//! empty. Handlers that block (on I/O, on each other) get a thread each a
//! millisecond or two later, as `spawn_blocking` gives at once. The watch is
//! an OS thread of its own, so that no busy runtime can hold it up; it ticks
//! while jobs wait, and sleeps while the queue is empty.
//!
//! Built on `std`'s lock and condition variables rather than the
//! model-checked ones of `crate::sync`: its threads are OS threads, which
//! Shuttle does not schedule. No user code runs under the lock, and thread
//! spawns and logging happen outside it.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::HandlerPanic;

/// How long a queued job waits before the watch adds a thread for it: a
/// handler running longer than this no longer holds up the ones queued behind
/// it (much longer than a quick handler, short beside a slow one).
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
    /// Where the watch waits for the pool to have work.
    watch: Condvar,
}

#[derive(Default)]
struct State {
    /// The jobs no thread has taken yet, each with when it was queued.
    queue: VecDeque<(Instant, Task)>,
    /// Threads alive (or being started).
    threads: usize,
    /// Threads started that have not taken the lock yet: each takes a job
    /// when it does.
    starting: usize,
    /// Threads running a job.
    busy: usize,
    /// Threads waiting for a job (including those told to wake that have not
    /// woken yet).
    idle: usize,
    /// Idle threads told to wake and take a job, not yet awake.
    woken: usize,
    /// When a task was spawned to wake a thread for the queued jobs, if one is
    /// pending (a kick older than [`STEAL_AFTER`] no longer counts: its
    /// runtime may never run it).
    kicked: Option<Instant>,
    /// Whether the watch thread runs, and whether it sleeps until told.
    watching: bool,
    watch_asleep: bool,
}

impl State {
    /// Whether a thread is running, starting or woken: it takes what the
    /// queue holds when it is done, without another wake-up.
    fn served(&self) -> bool {
        self.busy + self.starting + self.woken > 0
    }

    /// Whether a kick is pending.
    fn kick_pending(&self, now: Instant) -> bool {
        self.kicked
            .is_some_and(|at| now.duration_since(at) < STEAL_AFTER)
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        watch: Condvar::new(),
    })
}

/// Runs `job` on one of pyventus's own blocking threads. The future resolves
/// to its output, or to its panic's message. Dropped before a thread takes
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
        let output = catch_unwind(AssertUnwindSafe(job))
            .map_err(|panic| HandlerPanic::from_payload(&*panic).message().to_owned());
        let _ = tx.send(output);
    });
    (task, Detached(rx))
}

/// A job's output, once its thread ran it (see [`run`]): `Err` with its
/// panic's message if it panicked.
pub(crate) struct Detached<R>(oneshot::Receiver<Result<R, String>>);

impl<R> Future for Detached<R> {
    type Output = Result<R, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|sent| {
            // The task sends before it ends; unsent, its thread died.
            sent.unwrap_or_else(|_| Err("its thread ended without running it".to_owned()))
        })
    }
}

/// What to do once the lock is released: threads to start.
#[must_use]
struct Start(usize);

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, and nothing under it panics.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&'static self, task: Task) {
        let now = Instant::now();
        let mut state = self.lock();
        state.queue.push_back((now, task));
        self.watch_for_work(&mut state);
        if state.served() || state.kick_pending(now) {
            // A running thread takes it when it is done with its job; the
            // watch adds a thread if that takes too long.
            return;
        }
        match tokio::runtime::Handle::try_current() {
            // The thread is woken once the task pushing ends its turn, with
            // every job it pushed queued: a worker's read batch pushes one
            // per entry, each after some work of its own, and a thread woken
            // at the first would run it and sleep again before the next.
            Ok(current) => {
                state.kicked = Some(now);
                drop(state);
                // Run or dropped unrun (its runtime shutting down), it kicks.
                let kick = Kick(self);
                drop(current.spawn(async move { drop(kick) }));
            }
            Err(_) => {
                let start = self.add_threads(&mut state, 1);
                drop(state);
                self.start(start);
            }
        }
    }

    /// Wakes idle threads to take the next `count` jobs, and says how many
    /// more to start (counted as started already) once the lock is released.
    fn add_threads(&self, state: &mut State, count: usize) -> Start {
        let mut start = 0;
        for _ in 0..count {
            if state.idle > state.woken {
                state.woken += 1;
                self.work.notify_one();
            } else if state.threads < MAX_THREADS {
                state.threads += 1;
                state.starting += 1;
                start += 1;
            }
        }
        Start(start)
    }

    /// Starts the threads [`add_threads`](Self::add_threads) counted, with
    /// the lock released.
    fn start(&'static self, Start(count): Start) {
        for started in 0..count {
            let spawned = std::thread::Builder::new()
                .name("pyventus-blocking".into())
                .spawn(move || self.serve());
            if let Err(err) = spawned {
                let mut state = self.lock();
                state.threads -= count - started;
                state.starting -= count - started;
                drop(state);
                // The watch tries again while the jobs wait.
                tracing::error!(
                    target: "pyventus",
                    error = %err,
                    "cannot start a blocking thread for a synchronous handler"
                );
                return;
            }
        }
    }

    /// Starts the watch thread, or wakes it, for the job just queued.
    fn watch_for_work(&'static self, state: &mut State) {
        if state.watch_asleep {
            state.watch_asleep = false;
            self.watch.notify_one();
        } else if !state.watching {
            let spawned = std::thread::Builder::new()
                .name("pyventus-blocking-watch".into())
                .spawn(move || self.watch());
            // Without it, jobs queued behind a stuck one wait for it to
            // return; the next push tries again.
            state.watching = spawned.is_ok();
        }
    }

    /// The watch: while jobs wait, adds a thread for each one queued
    /// [`STEAL_AFTER`] ago or more, less the threads starting or woken that
    /// will take them; sleeps while the queue is empty.
    fn watch(&'static self) {
        let mut state = self.lock();
        loop {
            if state.queue.is_empty() {
                state.watch_asleep = true;
                while state.watch_asleep {
                    state = self
                        .watch
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                continue;
            }
            state = self
                .watch
                .wait_timeout(state, STEAL_AFTER)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            let now = Instant::now();
            let waited = state
                .queue
                .iter()
                .take_while(|(queued, _)| now.duration_since(*queued) >= STEAL_AFTER)
                .count();
            let coming = state.starting + state.woken;
            if waited > coming {
                let start = self.add_threads(&mut state, waited - coming);
                drop(state);
                self.start(start);
                state = self.lock();
            }
        }
    }

    /// A thread's life: takes jobs while there are some, waits for more up to
    /// [`KEEP_ALIVE`], then ends.
    fn serve(&'static self) {
        // A handler here that asks for the current runtime gets pyventus's.
        let _runtime = super::own_handle().enter();
        let mut state = self.lock();
        state.starting -= 1;
        loop {
            if let Some((_, task)) = state.queue.pop_front() {
                state.busy += 1;
                drop(state);
                // The task contains the job's panics; this one would be its
                // own (dropping a panic's payload that panics), forgotten.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(task))
                    && let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(panic)))
                {
                    std::mem::forget(again);
                }
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

/// Wakes a thread for the queued jobs, if none is running, when dropped.
struct Kick(&'static Pool);

impl Drop for Kick {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.kicked = None;
        if state.queue.is_empty() || state.served() {
            return;
        }
        let start = self.0.add_threads(&mut state, 1);
        drop(state);
        self.0.start(start);
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
        assert_eq!(out, Ok((true, Some("pyventus-blocking".to_owned()))));
    }

    #[test]
    fn a_panicking_job_hands_back_its_message_and_the_pool_goes_on() {
        assert_eq!(
            crate::runtime::block_on(run(|| -> () { panic!("boom") })),
            Err("boom".to_owned())
        );
        assert_eq!(crate::runtime::block_on(run(|| 7)), Ok(7));
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
            assert!(crate::runtime::block_on(other).is_ok());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the queued jobs waited for the stuck one"
        );
        release.send(()).unwrap();
        assert_eq!(crate::runtime::block_on(first), Ok(true));
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
            assert_eq!(crate::runtime::block_on(job), Ok(true));
        }
    }

    #[test]
    fn jobs_pushed_from_plain_threads_are_freed_from_behind_a_stuck_one() {
        // Pushed and awaited from plain threads: the first blocks until the
        // second ran.
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let first = run(move || stuck.recv_timeout(Duration::from_secs(10)).is_ok());
        let second = run(move || release.send(()).is_ok());
        let (done, outputs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // A runtime of its own, only to wait: the jobs were pushed
            // outside any.
            let waiting = tokio::runtime::Builder::new_current_thread().build();
            let waiting = waiting.unwrap();
            let second = waiting.block_on(second);
            let first = waiting.block_on(first);
            let _ = done.send((first, second));
        });
        let outputs = outputs.recv_timeout(Duration::from_secs(5));
        assert_eq!(outputs, Ok((Ok(true), Ok(true))));
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
