//! Model checking of the concurrent core: the registry's per-thread snapshot
//! caches against subscribe and remove (`snapshot_cache`), one-time claims
//! under racing emitters (`once`), the in-flight counts against the waits
//! (`in_flight`), and a guarded subscriber's gate against its runs and the
//! wait for them (`gate`), each explored schedule by schedule by
//! [Shuttle](https://docs.rs/shuttle).
//!
//! The code under test is the crate's own, unchanged: built with
//! `--cfg shuttle`, the atomics, locks, `ArcSwap` and thread-locals it imports
//! from `crate::sync` are Shuttle's, so each of their operations is a point
//! where Shuttle chooses the thread that runs next. Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg shuttle" CARGO_TARGET_DIR=target/shuttle \
//!     cargo test -p pyventus-core --lib interleavings -- --test-threads=1
//! ```
//!
//! (a target directory of their own: the flag changes every fingerprint).
//! `PYVENTUS_SHUTTLE_SCALE=n` multiplies the sampled tests' iterations, for a
//! longer run than CI's.
//!
//! Two kinds of exploration:
//!
//! - [`every_schedule`]: depth-first, **every schedule with at most
//!   `preemptions` preemptions** (a preemption: switching away from a thread
//!   that could go on; switching when it blocks or ends is free), each once.
//!   This is the bound loom's `LOOM_MAX_PREEMPTIONS` and CHESS use: without
//!   one, the schedules of two emitting threads (some thirty scheduling
//!   points each) number in the billions. The test fails if there are more
//!   than its `limit` of schedules, so a change that makes the space grow is
//!   noticed and the limit raised knowingly.
//! - [`sampled`]: PCT (probabilistic concurrency testing), a fixed seed and
//!   iteration count, with no bound on preemptions: each iteration finds a
//!   bug that needs `depth` ordering constraints with a known probability.
//!
//! What Shuttle does not check: weaker memory orderings than sequential
//! consistency (its atomics are sequentially consistent, whatever ordering
//! the code asks for), and what happens inside `arc_swap`, `std::sync::Arc`,
//! `OnceLock` and tokio's `Notify` (each is one step; they are trusted).

mod gate;
mod in_flight;
mod once;
mod snapshot_cache;

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use shuttle::scheduler::{PctScheduler, Schedule, Scheduler, Task, TaskId};
use shuttle::{Config, Runner};

/// Shuttle's schedulers keep global state, and so does the crate (the
/// process-wide in-flight count): one exploration at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn config() -> Config {
    let mut config = Config::new();
    // Handlers run in these threads, through the workflow's `catch_unwind`
    // and `tracing`'s spans: more stack than Shuttle's default 60 KiB.
    config.stack_size = 1 << 20;
    // Shuttle warns that its atomics are sequentially consistent; the module
    // docs say so.
    config.silence_warnings = true;
    config
}

/// Explores every schedule of `test` with at most `preemptions`
/// preemptions, depth-first, and fails if there are more than `limit`.
/// Returns how many there were.
pub(crate) fn every_schedule(
    name: &str,
    preemptions: usize,
    limit: usize,
    test: impl Fn() + Send + Sync + 'static,
) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let started = Instant::now();
    let schedules = Runner::new(Bounded::new(preemptions, limit + 1), config()).run(test);
    eprintln!(
        "{name}: every schedule with at most {preemptions} preemptions: {schedules} in {:.2?}",
        started.elapsed()
    );
    assert!(
        schedules <= limit,
        "{name}: more than {limit} schedules; raise the limit if the growth is meant"
    );
    schedules
}

/// Explores `iterations` schedules of `test` chosen by PCT with `depth`
/// (times `PYVENTUS_SHUTTLE_SCALE`), from a fixed seed.
pub(crate) fn sampled(
    name: &str,
    iterations: usize,
    depth: usize,
    test: impl Fn() + Send + Sync + 'static,
) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let scale = std::env::var("PYVENTUS_SHUTTLE_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1);
    let iterations = iterations * scale;
    let started = Instant::now();
    let scheduler = PctScheduler::new_from_seed(0x7079_7665_6e74_7573, depth, iterations);
    let ran = Runner::new(scheduler, config()).run(test);
    eprintln!(
        "{name}: {ran} PCT schedules (depth {depth}) in {:.2?}",
        started.elapsed()
    );
}

/// A depth-first scheduler over the schedules with at most `bound`
/// preemptions. Each execution replays the choices of the previous one up to
/// its last level with an untried option, takes the next option there, and
/// goes on with the first option of every new level (the running thread,
/// when it can go on: no preemption).
struct Bounded {
    bound: usize,
    limit: usize,
    executions: usize,
    /// The choice points of the current schedule, in order.
    levels: Vec<Level>,
    /// The step of the current execution.
    step: usize,
    /// Preemptions so far in the current execution.
    preempted: usize,
}

/// One choice point: the threads that may run next (the running one first
/// when it can go on), and which of them this schedule runs.
struct Level {
    options: Vec<TaskId>,
    chosen: usize,
}

impl Bounded {
    fn new(bound: usize, limit: usize) -> Self {
        Bounded {
            bound,
            limit,
            executions: 0,
            levels: Vec::new(),
            step: 0,
            preempted: 0,
        }
    }
}

impl Scheduler for Bounded {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.executions > 0 {
            // Backtrack to the deepest level with an option left.
            while self
                .levels
                .last()
                .is_some_and(|level| level.chosen + 1 == level.options.len())
            {
                self.levels.pop();
            }
            self.levels.last_mut()?.chosen += 1;
        }
        if self.executions == self.limit {
            return None;
        }
        self.executions += 1;
        self.step = 0;
        self.preempted = 0;
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        _is_yielding: bool,
    ) -> Option<TaskId> {
        let running = current.filter(|id| runnable.iter().any(|task| task.id() == *id));
        if self.step == self.levels.len() {
            let mut options: Vec<TaskId> = running.into_iter().collect();
            if running.is_none() || self.preempted < self.bound {
                options.extend(
                    runnable
                        .iter()
                        .map(|task| task.id())
                        .filter(|id| Some(*id) != running),
                );
            }
            self.levels.push(Level { options, chosen: 0 });
        }
        let level = &self.levels[self.step];
        let next = level.options[level.chosen];
        assert!(
            runnable.iter().any(|task| task.id() == next),
            "the test is not deterministic: a replayed schedule diverged"
        );
        if running.is_some_and(|id| id != next) {
            self.preempted += 1;
        }
        self.step += 1;
        Some(next)
    }

    fn next_u64(&mut self) -> u64 {
        // No test here asks Shuttle for random data.
        0
    }
}
