//! How many heap allocations one emission makes, counted by a global allocator
//! (dhat, in testing mode). One test in this binary, so nothing else allocates
//! while it counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pyventus::{
    Event, EventEmitter, EventKey, EventLinker, ExecutorProcessingService, InlineProcessingService,
    TokioProcessingService,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[derive(Debug, Clone, Event)]
struct Measured {
    value: u64,
}

const EMISSIONS: u64 = 1_000;

/// A named event's key with a static name.
static STATIC_KEY: EventKey = EventKey::named_static("Shared");

fn linker(sum: &Arc<AtomicU64>, subscribers: usize) -> EventLinker {
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

fn emitter(linker: EventLinker, processor: impl pyventus::ProcessingService) -> EventEmitter {
    EventEmitter::builder()
        .processor(processor)
        .linker(linker)
        .debug(false)
        .build()
}

/// Heap blocks allocated while `f` ran.
fn blocks_during(f: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    f();
    dhat::HeapStats::get().total_blocks - before
}

#[test]
fn allocations_per_emission() {
    let sum = Arc::new(AtomicU64::new(0));
    let inline_one = emitter(linker(&sum, 1), InlineProcessingService::default());
    let inline_ten = emitter(linker(&sum, 10), InlineProcessingService::default());
    let tokio = TokioProcessingService::default();
    let on_tokio = emitter(linker(&sum, 1), tokio.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let executor = ExecutorProcessingService::with_threads(1);
    let on_executor = emitter(linker(&sum, 1), executor.clone());
    // Named events, by a literal, a static key and a key made at run time.
    let named_sum = Arc::new(AtomicU64::new(0));
    let named_linker = EventLinker::builder().debug(false).build();
    let counted = named_sum.clone();
    named_linker
        .on_named("Shared")
        .subscribe(move |n: &u64| {
            counted.fetch_add(*n, Ordering::Relaxed);
        })
        .unwrap();
    let on_named = emitter(named_linker, InlineProcessingService::default());
    let shared_key = EventKey::named(String::from("Shared"));
    let emit_named = || {
        on_named.emit_named("Shared", 1_u64).unwrap();
        on_named.emit_to(&STATIC_KEY, 1_u64).unwrap();
        on_named.emit_to(&shared_key, 1_u64).unwrap();
    };
    // Warm up what is built once per thread or process (and each named
    // event's slot in this thread's caches).
    emit_named();
    on_executor.emit(Measured { value: 1 }).unwrap();
    executor.wait_for_tasks().unwrap();
    inline_one.emit(Measured { value: 1 }).unwrap();
    runtime.block_on(async {
        on_tokio.emit(Measured { value: 1 }).unwrap();
        tokio.wait_for_tasks().await.unwrap();
    });

    let _profiler = dhat::Profiler::builder()
        .testing()
        .file_name(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dhat-heap.json"))
        .build();

    // Inline, typed event, sync subscribers: no allocation at all. dhat counts
    // the whole process, and a background thread (a runtime's worker) may
    // allocate now and then: the least of three windows is the emissions' own
    // count (one allocation per emission would show in every window).
    let inline = (0..3)
        .map(|_| {
            blocks_during(|| {
                for _ in 0..EMISSIONS {
                    inline_one.emit(Measured { value: 1 }).unwrap();
                    inline_ten.emit(Measured { value: 1 }).unwrap();
                }
            })
        })
        .min()
        .unwrap_or(u64::MAX);
    dhat::assert_eq!(inline, 0);

    // Inline, named events: none either (a key made at run time carries its
    // shared name without copying it).
    let named = (0..3)
        .map(|_| {
            blocks_during(|| {
                for _ in 0..EMISSIONS {
                    emit_named();
                }
            })
        })
        .min()
        .unwrap_or(u64::MAX);
    dhat::assert_eq!(named, 0);
    dhat::assert_eq!(named_sum.load(Ordering::Relaxed), 3 + 3 * 3 * EMISSIONS);

    // Tokio: two per emission, the shared event (`Arc<E>`) and the spawned task;
    // plus the runtime's run queue growing while a thousand tasks wait (a few
    // in all, not per emission).
    let on_tasks = runtime.block_on(async {
        blocks_during(|| {
            for _ in 0..EMISSIONS {
                on_tokio.emit(Measured { value: 1 }).unwrap();
            }
        }) + {
            let before = dhat::HeapStats::get().total_blocks;
            tokio.wait_for_tasks().await.unwrap();
            dhat::HeapStats::get().total_blocks - before
        }
    });
    println!("tokio: {on_tasks} allocations for {EMISSIONS} emissions");
    dhat::assert!((2 * EMISSIONS..=2 * EMISSIONS + 16).contains(&on_tasks));

    // Executor: one per emission, the shared event, and the channel's blocks
    // (one per 31 messages); the box an emission crosses to a pool thread in
    // comes back for the next one (a pool keeps up to 256), so emissions
    // spaced out reuse one: each waits for the last to finish, so its box is
    // back.
    let on_pool = blocks_during(|| {
        for _ in 0..EMISSIONS {
            on_executor.emit(Measured { value: 1 }).unwrap();
            executor.wait_for_tasks().unwrap();
        }
    });
    println!("executor: {on_pool} allocations for {EMISSIONS} emissions");
    let blocks = EMISSIONS.div_ceil(31);
    dhat::assert!((EMISSIONS..=EMISSIONS + blocks + 16).contains(&on_pool));
    dhat::assert_eq!(
        sum.load(Ordering::Relaxed),
        3 + 3 * 11 * EMISSIONS + 2 * EMISSIONS
    );

    // Blocking: the shared event and the task, then the hop: the pending
    // run's box, the blocking task, and the box of the emission joining its
    // run. The one pending run is neither listed nor joined with `join_all`
    // (three more allocations, before).
    let on_blocking_threads = blocking_allocations(&runtime);
    println!("blocking: {on_blocking_threads} allocations for {EMISSIONS} emissions");
    dhat::assert!((5 * EMISSIONS..=5 * EMISSIONS + 16).contains(&on_blocking_threads));
}

/// Allocations for [`EMISSIONS`] emissions to a synchronous subscriber on a
/// blocking thread (the tokio service's `blocking`, as a broker worker's
/// handlers run by default), each waited for: the least of three windows,
/// as the blocking thread is another thread.
fn blocking_allocations(runtime: &tokio::runtime::Runtime) -> u64 {
    let sum = Arc::new(AtomicU64::new(0));
    let tokio = TokioProcessingService::builder().blocking(true).build();
    let on_blocking = emitter(linker(&sum, 1), tokio.clone());
    let emit = |count: u64| {
        runtime.block_on(async {
            for _ in 0..count {
                on_blocking.emit(Measured { value: 1 }).unwrap();
                tokio.wait_for_tasks().await.unwrap();
            }
        });
    };
    // The blocking thread started, and what it builds once.
    emit(1);
    let least = (0..3)
        .map(|_| blocks_during(|| emit(EMISSIONS)))
        .min()
        .unwrap_or(u64::MAX);
    dhat::assert_eq!(sum.load(Ordering::Relaxed), 1 + 3 * EMISSIONS);
    least
}
