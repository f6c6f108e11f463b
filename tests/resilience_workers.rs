//! Handlers' policies in the brokers' workers (Redis with `--features redis`,
//! RabbitMQ with `--features amqp`): a policy's retries run inside one
//! delivery of the message, before the broker's own redelivery; exhaustion
//! reaches the failure callback and the in-process dead-letter sink once,
//! then the broker dead-letters the message; timeouts cancel async handlers;
//! concurrency limits hold across the worker's concurrent deliveries.
#![cfg(any(feature = "redis", feature = "amqp"))]

mod common;

/// The same tests on each broker: `$broker` is its module in `common`,
/// `$worker` builds a worker of `queue` on `linker` that dead-letters a
/// message after one failed delivery, and the literals name its events.
macro_rules! worker_tests {
    (
        $module:ident, $feature:literal, $broker:ident,
        url: $url:path,
        worker: $worker:expr,
        service: $service:expr,
        events: $order:literal, $doomed:literal, $sleepy:literal, $burst:literal
    ) => {
        #[cfg(feature = $feature)]
        mod $module {
            use std::collections::HashMap;
            use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
            use std::sync::{LazyLock, Mutex};
            use std::time::{Duration, Instant};

            use pyventus::resilience::{DeadLetter, Exhausted, FailureReason};
            use pyventus::{Event, EventEmitter, Linker, on, on_failure};
            use serde::{Deserialize, Serialize};

            use super::common::$broker::{cleanup, fresh_queue, spawn_run, stop};
            use super::common::until;

            #[derive(Linker)]
            struct Policies;

            #[derive(Debug, Clone, Event, Serialize, Deserialize)]
            #[event(name = $order)]
            struct Order {
                id: u64,
            }

            #[derive(Debug, Clone, Event, Serialize, Deserialize)]
            #[event(name = $doomed)]
            struct Doomed;

            #[derive(Debug, Clone, Event, Serialize, Deserialize)]
            #[event(name = $sleepy)]
            struct Sleepy;

            #[derive(Debug, Clone, Event, Serialize, Deserialize)]
            #[event(name = $burst)]
            struct Burst(u32);

            static FLAKY_RUNS: LazyLock<Mutex<HashMap<u64, u32>>> = LazyLock::new(Mutex::default);
            static SIBLING_RUNS: AtomicU32 = AtomicU32::new(0);
            static DOOMED_RUNS: AtomicU32 = AtomicU32::new(0);
            static GAVE_UP: Mutex<Vec<(&'static str, u32, FailureReason)>> = Mutex::new(Vec::new());
            static SINK: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
            static SLEEPY: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));
            static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
            static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);
            static BURST_DONE: AtomicUsize = AtomicUsize::new(0);

            /// Fails the first two attempts at each order.
            #[on(Order, linker = Policies, retries = 3, backoff = "1ms..5ms")]
            fn flaky(e: &Order) -> anyhow::Result<()> {
                let mut runs = FLAKY_RUNS.lock().unwrap();
                let run = runs.entry(e.id).or_default();
                *run += 1;
                if *run <= 2 {
                    anyhow::bail!("attempt {run} at order {} fails", e.id);
                }
                Ok(())
            }

            #[on(Order, linker = Policies)]
            fn sibling() {
                SIBLING_RUNS.fetch_add(1, Ordering::SeqCst);
            }

            #[on(Doomed, linker = Policies, retries = 2, backoff = "1ms..2ms")]
            fn doomed() -> anyhow::Result<()> {
                DOOMED_RUNS.fetch_add(1, Ordering::SeqCst);
                anyhow::bail!("the remote end is gone")
            }

            #[on_failure(doomed)]
            fn doomed_failed(err: &anyhow::Error) {
                let exhausted = err.downcast_ref::<Exhausted>().unwrap();
                GAVE_UP.lock().unwrap().push(("doomed", exhausted.attempts(), exhausted.reason()));
            }

            struct Dropped;

            impl Drop for Dropped {
                fn drop(&mut self) {
                    SLEEPY.lock().unwrap().1 = Some(Instant::now());
                }
            }

            #[on(Sleepy, linker = Policies, timeout = "100ms")]
            async fn sleepy() {
                SLEEPY.lock().unwrap().0 = Some(Instant::now());
                let _dropped = Dropped;
                tokio::time::sleep(Duration::from_secs(10)).await;
            }

            #[on_failure(sleepy)]
            fn sleepy_failed(err: &anyhow::Error) {
                let exhausted = err.downcast_ref::<Exhausted>().unwrap();
                GAVE_UP.lock().unwrap().push(("sleepy", exhausted.attempts(), exhausted.reason()));
            }

            #[on(Burst, linker = Policies, concurrency = 4)]
            async fn burst() {
                let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
                HIGH_WATER.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                BURST_DONE.fetch_add(1, Ordering::SeqCst);
            }

            fn sink() {
                Policies::linker().set_dead_letters(Some(|letter: &DeadLetter<'_>| {
                    SINK.lock()
                        .unwrap()
                        .push((letter.event().name().to_owned(), letter.exhausted().attempts()));
                }));
            }

            async fn emitter(url: &str, queue: &str) -> EventEmitter {
                EventEmitter::builder()
                    .processor(($service)(url, queue).await)
                    .linker(Policies::linker())
                    .build()
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_policys_retries_run_inside_one_delivery_and_the_sibling_runs_once() {
                let Some(url) = $url().await else { return };
                let queue = fresh_queue("policy-retries");
                emitter(&url, &queue).await.emit(Order { id: 1 }).unwrap();
                let worker = ($worker)(&url, &queue).await;
                let running = spawn_run(&worker);
                until(Duration::from_secs(20), "the order", async || {
                    worker.stats().processed == 1
                })
                .await;
                stop(&worker, running).await;
                assert_eq!(FLAKY_RUNS.lock().unwrap()[&1], 3);
                assert_eq!(SIBLING_RUNS.load(Ordering::SeqCst), 1);
                let stats = worker.stats();
                assert_eq!((stats.retried, stats.dead_lettered), (0, 0), "no redelivery");
                cleanup(&url, &queue).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_exhausted_policy_reaches_the_callback_and_sink_once_then_the_broker_dead_letters() {
                let Some(url) = $url().await else { return };
                sink();
                let queue = fresh_queue("policy-exhausted");
                emitter(&url, &queue).await.emit(Doomed).unwrap();
                let worker = ($worker)(&url, &queue).await;
                let running = spawn_run(&worker);
                until(Duration::from_secs(20), "the broker's dead letter", async || {
                    worker.stats().dead_lettered == 1
                })
                .await;
                stop(&worker, running).await;
                assert_eq!(DOOMED_RUNS.load(Ordering::SeqCst), 3, "1 + 2 retries, one delivery");
                let gave_up: Vec<_> =
                    GAVE_UP.lock().unwrap().iter().filter(|g| g.0 == "doomed").copied().collect();
                assert_eq!(gave_up, [("doomed", 3, FailureReason::Failed)]);
                let sunk: Vec<_> =
                    SINK.lock().unwrap().iter().filter(|s| s.0 == $doomed).cloned().collect();
                assert_eq!(sunk, [($doomed.to_owned(), 3)]);
                cleanup(&url, &queue).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_timed_out_handler_is_cancelled_at_its_deadline_in_the_worker() {
                let Some(url) = $url().await else { return };
                let queue = fresh_queue("policy-timeout");
                emitter(&url, &queue).await.emit(Sleepy).unwrap();
                let worker = ($worker)(&url, &queue).await;
                let running = spawn_run(&worker);
                until(Duration::from_secs(20), "the timeout", async || {
                    GAVE_UP.lock().unwrap().iter().any(|g| g.0 == "sleepy")
                })
                .await;
                stop(&worker, running).await;
                let (started, dropped) = *SLEEPY.lock().unwrap();
                let ran = dropped.unwrap().duration_since(started.unwrap());
                let late = ran.saturating_sub(Duration::from_millis(100));
                eprintln!("{}: cancelled {late:?} after its deadline", $feature);
                assert!(ran + Duration::from_millis(1) >= Duration::from_millis(100));
                assert!(late < Duration::from_millis(500), "{late:?} late");
                let gave_up: Vec<_> =
                    GAVE_UP.lock().unwrap().iter().filter(|g| g.0 == "sleepy").copied().collect();
                assert_eq!(gave_up, [("sleepy", 1, FailureReason::TimedOut)]);
                cleanup(&url, &queue).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_thousand_deliveries_never_exceed_the_handlers_concurrency() {
                let Some(url) = $url().await else { return };
                let queue = fresh_queue("policy-concurrency");
                let emitter = emitter(&url, &queue).await;
                for i in 0..1_000 {
                    emitter.emit(Burst(i)).unwrap();
                }
                let worker = ($worker)(&url, &queue).await;
                let running = spawn_run(&worker);
                until(Duration::from_mins(1), "a thousand bursts", async || {
                    BURST_DONE.load(Ordering::SeqCst) == 1_000
                })
                .await;
                stop(&worker, running).await;
                let most = HIGH_WATER.load(Ordering::SeqCst);
                eprintln!("{}: at most {most} runs in flight", $feature);
                assert!((1..=4).contains(&most), "{most} runs in flight");
                cleanup(&url, &queue).await;
            }
        }
    };
}

worker_tests!(
    redis, "redis", redis,
    url: super::common::redis::redis_url,
    worker: async |url: &str, queue: &str| {
        pyventus::redis::Worker::builder(url)
            .queue(queue)
            .linker(Policies::linker())
            .concurrency(16)
            .max_deliveries(1)
            .block(Duration::from_millis(50))
            .connect()
            .await
            .unwrap()
    },
    service: super::common::redis::service,
    events: "redis.Order", "redis.Doomed", "redis.Sleepy", "redis.Burst"
);

worker_tests!(
    amqp, "amqp", amqp,
    url: super::common::amqp::amqp_url,
    worker: async |url: &str, queue: &str| {
        pyventus::amqp::Worker::builder(url)
            .queue(queue)
            .linker(Policies::linker())
            .concurrency(16)
            .max_deliveries(1)
            .retry_delay(Duration::from_millis(10))
            .connect()
            .await
            .unwrap()
    },
    service: async |url: &str, queue: &str| {
        pyventus::amqp::AmqpProcessingService::builder(url)
            .queue(queue)
            .max_deliveries(1)
            .connect()
            .await
            .unwrap()
    },
    events: "amqp.Order", "amqp.Doomed", "amqp.Sleepy", "amqp.Burst"
);
