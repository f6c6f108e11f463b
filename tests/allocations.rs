//! How many heap allocations one emission makes, counted by a global allocator
//! (dhat, in testing mode). One test in this binary, so nothing else allocates
//! while it counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pyventus::{Event, EventEmitter, EventLinker, InlineProcessingService, TokioProcessingService};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[derive(Debug, Clone, Event)]
struct Measured {
    value: u64,
}

const EMISSIONS: u64 = 1_000;

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
    // Warm up what is built once per thread or process.
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
    dhat::assert_eq!(
        sum.load(Ordering::Relaxed),
        2 + 3 * 11 * EMISSIONS + EMISSIONS
    );
}
