//! A guarded subscriber's gate against the runs that pass it: once `close`
//! has returned no run starts, and the wait for the runs in progress
//! (`drained`, what `SubscriptionGuard::unsubscribe().await` awaits) returns
//! once every run that started has finished, and not before.
//!
//! The properties, each exact:
//!
//! - a run that asks to start after `close` returned is refused;
//! - when `drained` returns, every run that was let in has finished (a run
//!   let in cannot see the wait over while it runs);
//! - `drained` always returns: Shuttle fails a schedule in which every thread
//!   is blocked, so a lost wake-up is a failing schedule.

use shuttle::future::block_on;
use shuttle::thread;

use super::every_schedule;
use crate::lifecycle::gate::Gate;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

#[test]
fn no_run_starts_after_close_and_drained_waits_for_the_runs_in_progress() {
    every_schedule("gate/close_then_drain", 3, 20_000, || {
        let gate = Gate::new();
        let closed = Arc::new(AtomicBool::new(false));
        let drained = Arc::new(AtomicBool::new(false));
        let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (gate, closed, drained) = (gate.clone(), closed.clone(), drained.clone());
                let (started, finished) = (started.clone(), finished.clone());
                thread::spawn(move || {
                    let after_close = closed.load(SeqCst);
                    let Some(pass) = gate.enter() else {
                        return;
                    };
                    assert!(!after_close, "a run started after `close` returned");
                    started.fetch_add(1, SeqCst);
                    assert!(
                        !drained.load(SeqCst),
                        "the wait ended while a run was in progress"
                    );
                    finished.fetch_add(1, SeqCst);
                    drop(pass);
                })
            })
            .collect();
        assert!(gate.close());
        closed.store(true, SeqCst);
        block_on(gate.drained());
        assert_eq!(
            started.load(SeqCst),
            finished.load(SeqCst),
            "the wait ended before a run that had started finished"
        );
        drained.store(true, SeqCst);
        for run in runs {
            run.join().expect("the run's thread finishes");
        }
        assert_eq!(gate.running(), 0);
    });
}

#[test]
fn an_async_run_counts_until_its_future_is_done() {
    every_schedule("gate/async_run", 3, 20_000, || {
        let gate = Gate::new();
        let done = Arc::new(AtomicBool::new(false));
        let pass = gate.enter_owned().expect("the gate is open");
        let run = {
            let done = done.clone();
            thread::spawn(move || {
                done.store(true, SeqCst);
                drop(pass);
            })
        };
        gate.close();
        assert!(
            gate.enter_owned().is_none(),
            "a run started after `close` returned"
        );
        block_on(gate.drained());
        assert!(done.load(SeqCst), "the wait ended before the run did");
        run.join().expect("the run's thread finishes");
    });
}
