//! Instruction counts of one emission: runs one scenario `n` times, so that
//! `benches/instructions/run.sh` can count instructions under valgrind for two
//! run lengths and difference them (setup and teardown cancel out).
//!
//! ```sh
//! bash benches/instructions/run.sh
//! ```
//!
//! Every scenario delivers one `Tick` to its subscribers, which add its field
//! into a plain static counter (no atomic read-modify-write, so the count is
//! pyventus's own work plus the handler's few instructions). The task
//! scenarios (`pool_1`, `executor_1`, `spawn_1`, `tokio_1`) count the work on
//! every thread (valgrind runs them one at a time), not the time threads wait.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use pyventus::{
    Event, EventEmitter, EventKey, EventLinker, ExecutorProcessingService, InlineProcessingService,
    TokioProcessingService,
};

#[derive(Debug, Clone, Event)]
struct Tick {
    value: u64,
}

/// A baseline subscriber: a boxed closure.
type Handler = Box<dyn Fn(&Tick)>;

static SUM: AtomicU64 = AtomicU64::new(0);

/// The handler every scenario runs: a relaxed load and store, no locked RMW.
#[inline(never)]
fn add(e: &Tick) {
    SUM.store(
        SUM.load(Ordering::Relaxed).wrapping_add(e.value),
        Ordering::Relaxed,
    );
}

#[pyventus::on(Tick, linker = Declared)]
fn declared(e: &Tick) {
    add(e);
}

#[derive(pyventus::Linker)]
#[linker(debug = false)]
struct Declared;

/// Three events whose names pick one pair of places in a thread's table of
/// event types' lanes (the core's tests check that "Mark", "Roommate" and
/// "Squatter9" do): once the first two have run, the third finds both
/// places taken, and reads the snapshot at every emit.
#[derive(Debug, Clone, Event)]
#[event(name = "Mark")]
struct PairFirst;

#[derive(Debug, Clone, Event)]
#[event(name = "Roommate")]
struct PairSecond;

#[derive(Debug, Clone, Event)]
#[event(name = "Squatter9")]
struct Crowded {
    value: u64,
}

/// Emits `Crowded { value: i }` for `i` in `0..n`, after one emit of each
/// type that takes a place of its pair.
#[inline(never)]
fn emit_crowded(n: u64) {
    let linker = EventLinker::builder().debug(false).build();
    linker.on::<PairFirst>().subscribe(|| ()).unwrap();
    linker.on::<PairSecond>().subscribe(|| ()).unwrap();
    linker
        .on::<Crowded>()
        .subscribe(|e: &Crowded| add(&Tick { value: e.value }))
        .unwrap();
    let emitter = emitter(linker);
    emitter.emit(PairFirst).unwrap();
    emitter.emit(PairSecond).unwrap();
    for i in 0..n {
        black_box(&emitter).emit(Crowded { value: i }).unwrap();
    }
}

static NAMED: EventKey = EventKey::named_static("Named");

pyventus::named_key!(static NAMED_U64: pyventus::NamedKey<u64> = "Named");

fn emitter(linker: EventLinker) -> EventEmitter {
    EventEmitter::builder()
        .processor(InlineProcessingService::new())
        .linker(linker)
        .debug(false)
        .build()
}

fn linker_with(subscribers: usize) -> EventLinker {
    let linker = EventLinker::builder().debug(false).build();
    for _ in 0..subscribers {
        linker.on::<Tick>().subscribe(|e: &Tick| add(e)).unwrap();
    }
    linker
}

fn named_linker() -> EventLinker {
    named_linker_of(|value: &u64| add(&Tick { value: *value }))
}

/// A linker whose one subscriber of the named event `"Named"` is `handler`,
/// of its payload `P`.
fn named_linker_of<P: Send + Sync + 'static>(
    handler: impl Fn(&P) + Send + Sync + 'static,
) -> EventLinker {
    let linker = EventLinker::builder().debug(false).build();
    linker.on_named("Named").subscribe(handler).unwrap();
    linker
}

/// Emits `Tick { value: i }` for `i` in `0..n`.
fn emit_ticks(emitter: &EventEmitter, n: u64) {
    for i in 0..n {
        black_box(emitter).emit(Tick { value: i }).unwrap();
    }
}

/// Emits the named event `i` for `i` in `0..n`, by name.
#[inline(never)]
fn emit_named_ticks(emitter: &EventEmitter, n: u64) {
    for i in 0..n {
        black_box(emitter).emit_named("Named", i).unwrap();
    }
}

/// Emits the named event `Tick { value: i }` for `i` in `0..n`, by name: the
/// payload and the handler of the typed scenarios, so the difference to
/// `inline_1` is the named path's alone.
#[inline(never)]
fn emit_named_tick_payloads(emitter: &EventEmitter, n: u64) {
    for i in 0..n {
        black_box(emitter)
            .emit_named("Named", Tick { value: i })
            .unwrap();
    }
}

/// The payload of the `String`-named scenario: a type of its own, so that
/// no other scenario's emits share its code (a payload type emitted both by
/// a literal and by a `String` in one binary took the literal's lookup out of
/// line: `named_1` 103 -> 142 when this scenario emitted `u64`).
struct Label(u64);

/// Emits the named event `Label(i)` for `i` in `0..n` by a `String` name (a
/// name known only at run time), cloned for each emit as a caller holding
/// one would.
#[inline(never)]
fn emit_named_string_ticks(emitter: &EventEmitter, n: u64) {
    let name = String::from("Named");
    for i in 0..n {
        black_box(emitter)
            .emit_named(name.clone(), Label(i))
            .unwrap();
    }
}

/// Emits the named event `i` for `i` in `0..n`, through its key.
#[inline(never)]
fn emit_keyed_ticks(emitter: &EventEmitter, n: u64) {
    for i in 0..n {
        black_box(emitter).emit_to(&NAMED, i).unwrap();
    }
}

/// The payload of the shared-key scenario: a type of its own, as `Label`.
struct Tag(u64);

/// Emits the named event `Tag(i)` for `i` in `0..n`, through a key built at
/// run time (a shared name, not a `&'static str`).
#[inline(never)]
fn emit_shared_keyed_ticks(emitter: &EventEmitter, n: u64) {
    let key = EventKey::named(String::from("Named"));
    for i in 0..n {
        black_box(emitter).emit_to(&key, Tag(i)).unwrap();
    }
}

/// Emits the named event `i` for `i` in `0..n`, through its typed key.
#[inline(never)]
fn emit_typed_keyed_ticks(emitter: &EventEmitter, n: u64) {
    for i in 0..n {
        black_box(emitter).emit_to(&NAMED_U64, i).unwrap();
    }
}

fn direct(count: usize, n: u64) {
    let handlers: Vec<Handler> = (0..count).map(|_| Box::new(add) as Handler).collect();
    for i in 0..n {
        let event = black_box(Tick { value: i });
        for handler in black_box(&handlers) {
            handler(&event);
        }
    }
}

/// What a task service's contract asks of every emission, done by hand: the
/// floor of `pool_shared_1` and `spawn_shared_1`. The event is shared (an
/// `Arc`, as `current_emission()`, async subscribers and dead letters hold
/// it), counted in flight until its handler ends (what `wait_for_tasks`
/// waits on), and current on the thread while its handler runs.
mod contract {
    use std::any::Any;
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::{Tick, add};

    pub(super) type Shared = Arc<dyn Any + Send + Sync>;

    thread_local! {
        static CURRENT: RefCell<Option<Shared>> = const { RefCell::new(None) };
    }

    static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

    /// The event `i`, shared and counted in flight.
    pub(super) fn accept(i: u64) -> Shared {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Arc::new(Tick { value: i })
    }

    /// Runs the handler with the event current, then counts it finished.
    pub(super) fn run(event: &Shared) {
        let previous = CURRENT
            .try_with(|c| c.replace(Some(event.clone())))
            .ok()
            .flatten();
        if let Some(tick) = event.downcast_ref::<Tick>() {
            add(tick);
        }
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
        IN_FLIGHT.fetch_sub(1, Ordering::Release);
    }

    /// Whether every accepted event has run.
    pub(super) fn idle() -> bool {
        IN_FLIGHT.load(Ordering::Acquire) == 0
    }
}

/// A bare pool of one thread fed boxed closures through a channel: what an
/// executor emission is measured against.
fn pool(n: u64) {
    let (sender, receiver) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
    let thread = std::thread::spawn(move || {
        while let Ok(job) = receiver.recv() {
            job();
        }
    });
    for i in 0..n {
        let event = Tick { value: i };
        sender.send(Box::new(move || add(&event))).unwrap();
    }
    drop(sender);
    thread.join().unwrap();
}

/// The bare pool doing what the executor's contract asks of an emission
/// (see `contract`).
fn pool_shared(n: u64) {
    let (sender, receiver) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
    let thread = std::thread::spawn(move || {
        while let Ok(job) = receiver.recv() {
            job();
        }
    });
    for i in 0..n {
        let event = contract::accept(i);
        sender
            .send(Box::new(move || contract::run(&event)))
            .unwrap();
    }
    drop(sender);
    thread.join().unwrap();
}

/// An executor of one thread: every emission crosses to it and back.
fn executor(n: u64) {
    let executor = ExecutorProcessingService::with_threads(1);
    let emitter = EventEmitter::builder()
        .processor(executor.clone())
        .linker(linker_with(1))
        .debug(false)
        .build();
    emit_ticks(&emitter, n);
    executor.wait_for_tasks().unwrap();
}

/// A current-thread runtime: the work of a task, without threads in between.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Bare tasks, each adding one `Tick`: what a tokio emission is measured
/// against.
fn spawn(n: u64) {
    static RAN: AtomicU64 = AtomicU64::new(0);
    current_thread().block_on(async {
        for i in 0..n {
            let event = Tick { value: i };
            drop(tokio::spawn(async move {
                add(&event);
                // One thread: a load and a store, as in `add`.
                RAN.store(RAN.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }));
        }
        // Current-thread: the tasks run while this task yields; every one runs
        // (a task still queued when the runtime drops would be cancelled, which
        // is not the work an emission does).
        while RAN.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
    });
}

/// Bare tasks doing what the tokio service's contract asks of an emission
/// (see `contract`).
fn spawn_shared(n: u64) {
    current_thread().block_on(async {
        for i in 0..n {
            let event = contract::accept(i);
            drop(tokio::spawn(async move { contract::run(&event) }));
        }
        while !contract::idle() {
            tokio::task::yield_now().await;
        }
    });
}

/// Emissions through the tokio service, on a current-thread runtime.
fn tokio_service(n: u64) {
    current_thread().block_on(async {
        let tokio = TokioProcessingService::default();
        let emitter = EventEmitter::builder()
            .processor(tokio.clone())
            .linker(linker_with(1))
            .debug(false)
            .build();
        emit_ticks(&emitter, n);
        tokio.wait_for_tasks().await.unwrap();
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "inline_1".to_owned());
    let n: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    match scenario.as_str() {
        "direct_1" => direct(1, n),
        "direct_10" => direct(10, n),
        "inline_1" => emit_ticks(&emitter(linker_with(1)), n),
        "inline_10" => emit_ticks(&emitter(linker_with(10)), n),
        "inline_40" => emit_ticks(&emitter(linker_with(40)), n),
        "inline_large_registry_1" => {
            let linker = linker_with(1);
            for j in 0..10_000 {
                linker
                    .on_named(format!("filler-{j}"))
                    .subscribe(|| ())
                    .unwrap();
            }
            emit_ticks(&emitter(linker), n);
        }
        "inline_crowded_1" => emit_crowded(n),
        "named_1" => emit_named_ticks(&emitter(named_linker()), n),
        "named_tick_1" => {
            emit_named_tick_payloads(&emitter(named_linker_of(|e: &Tick| add(e))), n);
        }
        "named_key_1" => emit_keyed_ticks(&emitter(named_linker()), n),
        "named_shared_key_1" => {
            let linker = named_linker_of(|tag: &Tag| add(&Tick { value: tag.0 }));
            emit_shared_keyed_ticks(&emitter(linker), n);
        }
        "named_string_1" => {
            let linker = named_linker_of(|label: &Label| add(&Tick { value: label.0 }));
            emit_named_string_ticks(&emitter(linker), n);
        }
        "named_typed_key_1" => emit_typed_keyed_ticks(&emitter(named_linker()), n),
        "declarative_1" => emit_ticks(&emitter(Declared::linker()), n),
        "pool_1" => pool(n),
        "pool_shared_1" => pool_shared(n),
        "executor_1" => executor(n),
        "spawn_1" => spawn(n),
        "spawn_shared_1" => spawn_shared(n),
        "tokio_1" => tokio_service(n),
        "runtime_same_fn_1" => {
            let linker = EventLinker::builder().debug(false).build();
            linker.on::<Tick>().subscribe(declared).unwrap();
            emit_ticks(&emitter(linker), n);
        }
        other => {
            eprintln!("unknown scenario `{other}`");
            std::process::exit(2);
        }
    }
    black_box(SUM.load(Ordering::Relaxed));
}
