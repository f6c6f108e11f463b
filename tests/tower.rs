//! A `tower::Service` as a handler (`subscribe_service`, feature `tower`):
//! tower's own layers (timeout, concurrency limit) around a pyventus handler,
//! their errors at the failure callback with their own type, the service's
//! response at the success callback.

#![cfg(feature = "tower")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyventus::{Event, EventEmitter, EventLinker, TokioProcessingService};
use tower::{ServiceBuilder, service_fn};

#[derive(Debug, Clone, Event)]
struct Charge(u64);

fn emitter(linker: EventLinker) -> (EventEmitter, TokioProcessingService) {
    let tokio = TokioProcessingService::default();
    let emitter = EventEmitter::builder()
        .processor(tokio.clone())
        .linker(linker)
        .build();
    (emitter, tokio)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_timeout_cancels_a_slow_handler_and_its_error_keeps_its_type() {
    let linker = EventLinker::new();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    let slow = service_fn(|_: Arc<Charge>| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<(), tower::BoxError>(())
    });
    linker
        .on::<Charge>()
        .on_failure(move |err: &pyventus::anyhow::Error| {
            // tower's errors are boxed (`tower::BoxError`), as they reach
            // axum's `HandleErrorLayer`.
            let elapsed = err
                .downcast_ref::<tower::BoxError>()
                .is_some_and(|err| err.is::<tower::timeout::error::Elapsed>());
            seen.lock().unwrap().push((elapsed, Instant::now()));
        })
        .subscribe_service(
            ServiceBuilder::new()
                .timeout(Duration::from_millis(50))
                .service(slow),
        )
        .unwrap();
    let (emitter, tokio) = emitter(linker);
    let start = Instant::now();
    emitter.emit(Charge(1)).unwrap();
    tokio::time::timeout(Duration::from_secs(4), tokio.wait_for_tasks())
        .await
        .expect("the timeout cut the 5 s handler short")
        .unwrap();
    let failures = failures.lock().unwrap();
    assert_eq!(failures.len(), 1);
    let (elapsed, at) = failures[0];
    assert!(
        elapsed,
        "the failure callback finds tower's Elapsed in the boxed error"
    );
    let took = at - start;
    eprintln!("tower's 50 ms timeout reached the failure callback after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_concurrency_limit_bounds_the_runs_in_flight_and_every_response_arrives() {
    let linker = EventLinker::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let (flight, high) = (in_flight.clone(), most.clone());
    let handler = service_fn(move |charge: Arc<Charge>| {
        let (flight, high) = (flight.clone(), high.clone());
        async move {
            let now = flight.fetch_add(1, Ordering::SeqCst) + 1;
            high.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            flight.fetch_sub(1, Ordering::SeqCst);
            Ok::<u64, tower::BoxError>(charge.0)
        }
    });
    let sum = total.clone();
    linker
        .on::<Charge>()
        .on_success(move |cents: u64| {
            sum.fetch_add(usize::try_from(cents).unwrap(), Ordering::SeqCst);
        })
        .subscribe_service(ServiceBuilder::new().concurrency_limit(3).service(handler))
        .unwrap();
    let (emitter, tokio) = emitter(linker);
    for n in 1..=200 {
        emitter.emit(Charge(n)).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), tokio.wait_for_tasks())
        .await
        .expect("200 short runs finish")
        .unwrap();
    assert_eq!(
        total.load(Ordering::SeqCst),
        200 * 201 / 2,
        "every response reached the success callback"
    );
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "at most 3 in flight, saw {most}");
}
