//! The in-flight counts against the waits: `wait_for_all` and
//! `wait_for_all_blocking` (the process's count), and a service's own count
//! as `wait_for_tasks` waits for it (`InFlight::wait` for the tokio service,
//! `InFlight::wait_blocking` for the executor).
//!
//! An emission here is what the processing services make of one: a `Ticket`
//! taken when the service accepts it, held by the thread that runs it, and
//! dropped when it finishes. The properties:
//!
//! - a wait never returns while an emission accepted before the wait started
//!   is unfinished, including one accepted by a running emission (a handler
//!   that emits) before that emission finished;
//! - a wait always returns once they have all finished: Shuttle fails a
//!   schedule in which every thread is blocked, so a lost wake-up (a waiter
//!   that sleeps after the last emission finished) is a failing schedule.

use shuttle::future::block_on;
use shuttle::thread;

use super::every_schedule;
use crate::lifecycle::in_flight::{ALL, InFlight, Ticket};
use crate::sync::Arc;
use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::{wait_for_all, wait_for_all_blocking};

/// Counts what finished before its ticket was dropped.
fn finishing(finished: &Arc<AtomicUsize>, ticket: Ticket) -> impl FnOnce() + Send + 'static {
    let finished = finished.clone();
    move || {
        finished.fetch_add(1, SeqCst);
        drop(ticket);
    }
}

/// Two emissions accepted by `service`, each run on a thread of its own, and
/// how many of them have finished.
fn two_running(service: &Arc<InFlight>) -> (Arc<AtomicUsize>, Vec<thread::JoinHandle<()>>) {
    let finished = Arc::new(AtomicUsize::new(0));
    let threads = (0..2)
        .map(|_| thread::spawn(finishing(&finished, Ticket::new(service, None))))
        .collect();
    (finished, threads)
}

fn join(threads: Vec<thread::JoinHandle<()>>) {
    for thread in threads {
        thread.join().expect("the emission's thread finishes");
    }
    assert_eq!(ALL.count(), 0, "the process's count is back to zero");
}

#[test]
fn wait_for_all_blocking_returns_once_every_emission_has_finished_and_not_before() {
    every_schedule("in_flight/wait_for_all_blocking", 3, 5_000, || {
        let service = Arc::new(InFlight::new("a service"));
        let (finished, threads) = two_running(&service);
        wait_for_all_blocking().expect("waits");
        assert_eq!(
            finished.load(SeqCst),
            2,
            "returned with an emission unfinished"
        );
        join(threads);
    });
}

#[test]
fn wait_for_all_returns_once_every_emission_has_finished_and_not_before() {
    every_schedule("in_flight/wait_for_all", 3, 5_000, || {
        let service = Arc::new(InFlight::new("a service"));
        let (finished, threads) = two_running(&service);
        block_on(wait_for_all()).expect("waits");
        assert_eq!(
            finished.load(SeqCst),
            2,
            "returned with an emission unfinished"
        );
        join(threads);
    });
}

#[test]
fn a_services_wait_returns_once_its_emissions_have_finished_async_or_blocking() {
    every_schedule("in_flight/service waits", 2, 20_000, || {
        let service = Arc::new(InFlight::new("a service"));
        let (finished, threads) = two_running(&service);
        // The tokio service's `wait_for_tasks` awaits this; the executor's blocks.
        let blocking = {
            let (service, finished) = (service.clone(), finished.clone());
            thread::spawn(move || {
                service.wait_blocking();
                assert_eq!(
                    finished.load(SeqCst),
                    2,
                    "returned with an emission unfinished"
                );
            })
        };
        block_on(service.wait());
        assert_eq!(
            finished.load(SeqCst),
            2,
            "returned with an emission unfinished"
        );
        blocking.join().expect("the blocking waiter returns");
        join(threads);
    });
}

#[test]
fn a_wait_covers_an_emission_that_a_running_emission_accepted() {
    every_schedule("in_flight/chained", 3, 5_000, || {
        let first = Arc::new(InFlight::new("the first service"));
        let second = Arc::new(InFlight::new("the second service"));
        let finished = Arc::new(AtomicUsize::new(0));
        let ticket = Ticket::new(&first, None);
        let running = {
            let (second, finished) = (second.clone(), finished.clone());
            thread::spawn(move || {
                // A handler emits through another service, then returns.
                let child = Ticket::new(&second, None);
                let grandchild = thread::spawn(finishing(&finished, child));
                finishing(&finished, ticket)();
                grandchild
            })
        };
        wait_for_all_blocking().expect("waits");
        assert_eq!(
            finished.load(SeqCst),
            2,
            "returned before the emission it caused finished"
        );
        let grandchild = running.join().expect("the first emission finishes");
        join(vec![grandchild]);
    });
}

#[test]
fn a_run_outside_a_runtime_waits_for_its_own_scope() {
    every_schedule("in_flight/scope", 3, 20_000, || {
        let service = Arc::new(InFlight::new("a service"));
        let scope = Arc::new(InFlight::new("a run outside any runtime"));
        let finished = Arc::new(AtomicUsize::new(0));
        let ours = thread::spawn(finishing(
            &finished,
            Ticket::new(&service, Some(scope.clone())),
        ));
        // Another emission of the same service, outside this run's scope.
        let other = Arc::new(AtomicUsize::new(0));
        let theirs = thread::spawn(finishing(&other, Ticket::new(&service, None)));
        scope.wait_blocking();
        assert_eq!(
            finished.load(SeqCst),
            1,
            "the run returned before its emission finished"
        );
        join(vec![ours, theirs]);
    });
}
