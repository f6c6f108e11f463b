//! An in-process request on tokio beside the floor it is built on: a bare
//! `tokio::sync::oneshot` round trip, where a spawned task sends the answer to
//! the awaiting caller. Both on the same runtime, in the same run: a 2-worker
//! runtime (where each round trip wakes another worker, and the machine's load
//! shows), and a current-thread one (the overhead alone).
//!
//! Run with `cargo bench -p pyventus-benches --bench requests`; it ends with
//! the ratio of the two medians on each runtime, from rounds taken in turn
//! (`docs/benchmarks.md` has the figures).

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use pyventus::{Event, EventEmitter, EventLinker, Request, TokioProcessingService};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

#[derive(Debug, Event, Request)]
#[request(response = u64)]
struct Double(u64);

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn emitter() -> EventEmitter {
    let linker = EventLinker::builder().debug(false).build();
    linker.respond(|d: &Double| Ok(d.0 * 2)).unwrap();
    EventEmitter::builder()
        .processor(TokioProcessingService::default())
        .linker(linker)
        .debug(false)
        .build()
}

/// `iters` bare round trips: a task answers through a oneshot.
async fn oneshot_round_trips(iters: u64) -> Duration {
    let started = Instant::now();
    for n in 0..iters {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(black_box(n) * 2);
        });
        black_box(rx.await.unwrap());
    }
    started.elapsed()
}

/// `iters` requests, each answered by the responder on a task of the
/// emitter's tokio service.
async fn requests(emitter: &EventEmitter, iters: u64) -> Duration {
    let started = Instant::now();
    for n in 0..iters {
        let answer = emitter
            .request(Double(black_box(n)))
            .timeout(Duration::from_secs(5))
            .await;
        black_box(answer.unwrap());
    }
    started.elapsed()
}

fn bench(c: &mut Criterion, flavor: &str, runtime: &Runtime, emitter: &EventEmitter) {
    let mut group = c.benchmark_group(format!("request_round_trip/{flavor}"));
    group.bench_function("tokio_oneshot", |b| {
        b.iter_custom(|iters| runtime.block_on(oneshot_round_trips(iters)));
    });
    group.bench_function("pyventus_request", |b| {
        b.iter_custom(|iters| runtime.block_on(requests(emitter, iters)));
    });
    group.finish();
}

/// The medians of rounds of 10,000 of each, taken in turn, and their ratio.
fn ratio(flavor: &str, runtime: &Runtime, emitter: &EventEmitter) {
    const ROUNDS: usize = 9;
    const PER_ROUND: u64 = 10_000;
    let (mut bare, mut asked) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bare.push(runtime.block_on(oneshot_round_trips(PER_ROUND)) / 10_000);
        asked.push(runtime.block_on(requests(emitter, PER_ROUND)) / 10_000);
    }
    bare.sort_unstable();
    asked.sort_unstable();
    let (bare, asked) = (bare[ROUNDS / 2], asked[ROUNDS / 2]);
    println!(
        "request round trip ({flavor}): tokio oneshot {bare:?}, pyventus request {asked:?}, ratio {:.2}x",
        asked.as_secs_f64() / bare.as_secs_f64()
    );
}

fn main() {
    let runtimes = [
        ("multi_thread", multi_thread()),
        ("current_thread", current_thread()),
    ];
    let emitter = emitter();
    let mut criterion = Criterion::default().configure_from_args();
    for (flavor, runtime) in &runtimes {
        bench(&mut criterion, flavor, runtime, &emitter);
    }
    criterion.final_summary();
    for (flavor, runtime) in &runtimes {
        ratio(flavor, runtime, &emitter);
    }
}
