//! The cost of one emission, beside the floor (a direct call) and the runtimes'
//! own primitives (a bare `tokio::spawn`, a channel-fed thread pool).
//!
//! Every benchmark delivers one event to N synchronous subscribers that add the
//! event's field into an `AtomicU64`; the baselines do the same work.
//!
//! Run with `cargo bench -p pyventus-benches --bench emit`; `docs/benchmarks.md`
//! has the figures.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pyventus::{
    Event, EventEmitter, EventLinker, ExecutorProcessingService, InlineProcessingService,
    ProcessingService, TokioProcessingService,
};

#[derive(Debug, Clone, Event)]
struct Measured {
    value: u64,
}

static DECLARATIVE_SUM: AtomicU64 = AtomicU64::new(0);

/// The declarative twin of the `inline` subscribers.
#[pyventus::on(Measured, linker = BenchLinker)]
fn declarative_handler(e: &Measured) {
    DECLARATIVE_SUM.fetch_add(e.value, Ordering::Relaxed);
}

#[derive(pyventus::Linker)]
#[linker(debug = false)]
struct BenchLinker;

/// A baseline subscriber: a boxed closure.
type Handler = Box<dyn Fn(&Measured)>;

/// Emissions per batch in the task benchmarks, reported per emission.
const BATCH: u64 = 1_000;

fn linker_with(subscribers: usize, sum: &Arc<AtomicU64>) -> EventLinker {
    let linker = EventLinker::builder().debug(false).build();
    for _ in 0..subscribers {
        let sum = sum.clone();
        linker
            .on::<Measured>()
            .subscribe(move |e: &Measured| {
                sum.fetch_add(e.value, Ordering::Relaxed);
            })
            .unwrap();
    }
    linker
}

fn emitter(linker: EventLinker, processor: impl ProcessingService) -> EventEmitter {
    EventEmitter::builder()
        .processor(processor)
        .linker(linker)
        .debug(false)
        .build()
}

/// The floor: `n` boxed closures doing the subscribers' work, called in a loop.
fn bench_direct_calls(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    n: usize,
    sum: &Arc<AtomicU64>,
) {
    let handlers: Vec<Handler> = (0..n)
        .map(|_| {
            let sum = sum.clone();
            Box::new(move |e: &Measured| {
                sum.fetch_add(e.value, Ordering::Relaxed);
            }) as Handler
        })
        .collect();
    group.bench_function(BenchmarkId::new("direct_call", n), |b| {
        b.iter(|| {
            let event = black_box(Measured { value: 1 });
            for handler in &handlers {
                handler(&event);
            }
        });
    });
}

fn in_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("emit");
    for n in [1_usize, 10] {
        let sum = Arc::new(AtomicU64::new(0));
        bench_direct_calls(&mut group, n, &sum);

        let emitter = emitter(linker_with(n, &sum), InlineProcessingService::default());
        group.bench_function(BenchmarkId::new("inline", n), |b| {
            b.iter(|| emitter.emit(black_box(Measured { value: 1 })).unwrap());
        });
    }

    let sum = Arc::new(AtomicU64::new(0));
    let linker = linker_with(1, &sum);
    for i in 0..10_000 {
        linker
            .on_named(format!("other.{i}"))
            .subscribe(|| {})
            .unwrap();
    }
    let large = emitter(linker, InlineProcessingService::default());
    group.bench_function(BenchmarkId::new("inline_large_registry", 1), |b| {
        b.iter(|| large.emit(black_box(Measured { value: 1 })).unwrap());
    });

    let declarative = emitter(BenchLinker::linker(), InlineProcessingService::default());
    group.bench_function(BenchmarkId::new("declarative", 1), |b| {
        b.iter(|| declarative.emit(black_box(Measured { value: 1 })).unwrap());
    });

    let linker = EventLinker::builder().debug(false).build();
    let named_sum = sum.clone();
    linker
        .on_named("Measured.named")
        .subscribe(move |v: &u64| {
            named_sum.fetch_add(*v, Ordering::Relaxed);
        })
        .unwrap();
    let named = emitter(linker, InlineProcessingService::default());
    group.bench_function(BenchmarkId::new("named", 1), |b| {
        b.iter(|| {
            named
                .emit_named("Measured.named", black_box(1_u64))
                .unwrap();
        });
    });
    pyventus::named_key!(static MEASURED: pyventus::NamedKey<u64> = "Measured.named");
    group.bench_function(BenchmarkId::new("named_key", 1), |b| {
        b.iter(|| named.emit_to(&MEASURED, black_box(1_u64)).unwrap());
    });
    group.finish();
}

/// Signals when a batch's last task has run.
#[derive(Default)]
struct Done {
    left: AtomicUsize,
    lock: Mutex<bool>,
    cvar: Condvar,
    notify: tokio::sync::Notify,
}

impl Done {
    fn arm(&self, n: u64) {
        self.left
            .store(usize::try_from(n).unwrap(), Ordering::SeqCst);
        *self.lock.lock().unwrap() = false;
    }

    fn one_done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.lock.lock().unwrap() = true;
            self.cvar.notify_all();
            self.notify.notify_one();
        }
    }

    fn wait_blocking(&self) {
        let mut done = self.lock.lock().unwrap();
        while !*done {
            done = self.cvar.wait(done).unwrap();
        }
    }
}

/// Runs whole batches of `BATCH` emissions and returns the time `iters` of them
/// took, as criterion's `iter_custom` wants.
fn per_emission(iters: u64, mut batch: impl FnMut()) -> Duration {
    let batches = iters.div_ceil(BATCH).max(1);
    let start = Instant::now();
    for _ in 0..batches {
        batch();
    }
    #[allow(clippy::cast_precision_loss)]
    start
        .elapsed()
        .mul_f64(iters as f64 / (batches * BATCH) as f64)
}

fn on_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("emit");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let sum = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Done::default());
    group.bench_function(BenchmarkId::new("tokio_spawn_baseline", 1), |b| {
        b.iter_custom(|iters| {
            per_emission(iters, || {
                runtime.block_on(async {
                    done.arm(BATCH);
                    let notified = done.notify.notified();
                    for _ in 0..BATCH {
                        let (sum, done) = (sum.clone(), done.clone());
                        let event = Measured { value: 1 };
                        tokio::spawn(async move {
                            sum.fetch_add(event.value, Ordering::Relaxed);
                            done.one_done();
                        });
                    }
                    notified.await;
                });
            })
        });
    });

    let tokio = TokioProcessingService::default();
    let emitter_tokio = emitter(linker_with(1, &sum), tokio.clone());
    group.bench_function(BenchmarkId::new("tokio", 1), |b| {
        b.iter_custom(|iters| {
            per_emission(iters, || {
                runtime.block_on(async {
                    for _ in 0..BATCH {
                        emitter_tokio.emit(Measured { value: 1 }).unwrap();
                    }
                    tokio.wait_for_tasks().await.unwrap();
                });
            })
        });
    });

    let (sender, receiver) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
    let pool: Vec<_> = (0..2)
        .map(|_| {
            let receiver = receiver.clone();
            std::thread::spawn(move || {
                while let Ok(job) = receiver.recv() {
                    job();
                }
            })
        })
        .collect();
    group.bench_function(BenchmarkId::new("thread_pool_baseline", 1), |b| {
        b.iter_custom(|iters| {
            per_emission(iters, || {
                done.arm(BATCH);
                for _ in 0..BATCH {
                    let (sum, done) = (sum.clone(), done.clone());
                    let event = Measured { value: 1 };
                    sender
                        .send(Box::new(move || {
                            sum.fetch_add(event.value, Ordering::Relaxed);
                            done.one_done();
                        }))
                        .unwrap();
                }
                done.wait_blocking();
            })
        });
    });
    drop(sender);
    for thread in pool {
        thread.join().unwrap();
    }

    let executor = ExecutorProcessingService::with_threads(2);
    let emitter_pool = emitter(linker_with(1, &sum), executor.clone());
    group.bench_function(BenchmarkId::new("executor", 1), |b| {
        b.iter_custom(|iters| {
            per_emission(iters, || {
                for _ in 0..BATCH {
                    emitter_pool.emit(Measured { value: 1 }).unwrap();
                }
                executor.wait_for_tasks().unwrap();
            })
        });
    });
    group.finish();
}

/// Cost per emission from 1 to 1,000 subscribers, for the chart.
fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("scaling");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in [1_usize, 10, 100, 1_000] {
        let sum = Arc::new(AtomicU64::new(0));
        bench_direct_calls(&mut group, n, &sum);
        let inline = emitter(linker_with(n, &sum), InlineProcessingService::default());
        group.bench_function(BenchmarkId::new("inline", n), |b| {
            b.iter(|| inline.emit(black_box(Measured { value: 1 })).unwrap());
        });
        let tokio = TokioProcessingService::default();
        let on_tokio = emitter(linker_with(n, &sum), tokio.clone());
        group.bench_function(BenchmarkId::new("tokio", n), |b| {
            b.iter_custom(|iters| {
                per_emission(iters, || {
                    runtime.block_on(async {
                        for _ in 0..BATCH {
                            on_tokio.emit(Measured { value: 1 }).unwrap();
                        }
                        tokio.wait_for_tasks().await.unwrap();
                    });
                })
            });
        });
    }
    group.finish();
}

/// The cost per subscribe while registering `n` subscribers: all on one event
/// (`scaling/subscribe`), or one on each of `n` events
/// (`scaling/subscribe_events`). Linear registration keeps both flat.
fn registration(c: &mut Criterion) {
    let mut group = c.benchmark_group("scaling");
    group.sample_size(10);
    for n in [1_000_u64, 10_000, 100_000] {
        let names: Vec<String> = (0..n).map(|i| format!("event-{i}")).collect();
        for (id, one_event) in [("subscribe", true), ("subscribe_events", false)] {
            group.bench_function(BenchmarkId::new(id, n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let linker = EventLinker::builder().debug(false).build();
                        let started = Instant::now();
                        for name in &names {
                            let name = if one_event { "One" } else { name.as_str() };
                            linker.on_named(name.to_owned()).subscribe(|| ()).unwrap();
                        }
                        total += started.elapsed();
                        drop(linker);
                    }
                    // Reported per subscribe.
                    total / u32::try_from(n).unwrap_or(u32::MAX)
                });
            });
        }
    }
    group.finish();
}

/// Not budget lines: the parts of `emit/inline/1`, to see where its time goes.
fn diagnostics(c: &mut Criterion) {
    let mut group = c.benchmark_group("diagnostics");
    let nobody = emitter(
        EventLinker::builder().debug(false).build(),
        InlineProcessingService::default(),
    );
    group.bench_function("inline_no_subscriber", |b| {
        b.iter(|| nobody.emit(black_box(Measured { value: 1 })).unwrap());
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = in_process, on_tasks, scaling, registration, diagnostics
}
criterion_main!(benches);
