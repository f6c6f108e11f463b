//! A program exits cleanly whatever a handler captures.
//!
//! A runtime-subscribed handler may own a processing service, or an emitter on
//! one (a handler that waits for, inspects or shuts down its service). Once it
//! is unsubscribed, the last reference to it may live in a per-thread cache of
//! pyventus (the snapshot cache, the event types' lanes, the named lanes, a
//! `NamedKey`'s slot; the metrics key cache beside them), which releases it when
//! its thread exits: inside a thread-local destructor, where any `with` on a
//! thread-local already gone panics, and a panic aborts the process.
//!
//! Each case is a child process (this binary again, with `PYVENTUS_EXIT_PROBE`
//! naming the case) that makes the last handle of a service, or of an emitter
//! on it, die in one cache, inside a service thread's exit (a pool thread, a
//! runtime worker, a plain thread for the inline service) or at process exit
//! (the main thread's cache, after `main` returned). Every case runs ten rounds;
//! each must exit with status 0, and the handler's captures must have dropped
//! where the case says.
//!
//! No test harness: "process exit" means returning from a real `main`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pyventus::{
    Event, EventEmitter, EventLinker, ExecutorProcessingService, InlineProcessingService, NamedKey,
    ProcessingService, TokioProcessingService, named_key,
};

/// The processing services whose last handle a handler may hold.
const SERVICES: &[&str] = &[
    "inline",
    "tokio",
    "ordered-tokio",
    "executor",
    #[cfg(feature = "axum")]
    "axum",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "amqp")]
    "amqp",
];
/// The per-thread caches that may hold the last reference to a handler.
const CACHES: &[&str] = &["snapshot", "lane", "named", "named-key", "metrics"];
/// What the handler owns: a clone of the service, an emitter on it, or (with
/// a broker) a running worker of the same queue.
fn holders(service: &str) -> &'static [&'static str] {
    match service {
        "redis" | "amqp" => &["service", "emitter", "worker"],
        _ => &["service", "emitter"],
    }
}
/// Where the cache lets the handler go.
const PLACES: &[&str] = &["thread-exit", "process-exit"];
const ROUNDS: usize = 10;

#[derive(Debug, Event)]
struct Ping;

named_key!(static PING_KEY: NamedKey<u32> = "PingKey");

/// Set when the handler's captures have dropped.
static DROPPED: AtomicBool = AtomicBool::new(false);

/// Dropped after the holder (fields drop in order): marks that the holder's
/// `Drop` ran to its end, in the file the parent reads after the exit.
struct Canary(PathBuf);

impl Drop for Canary {
    fn drop(&mut self) {
        DROPPED.store(true, Ordering::SeqCst);
        let _ = std::fs::write(&self.0, b"dropped");
    }
}

/// What the handler captures: the holder first, so it drops first.
struct Held {
    _holder: Holder,
    _canary: Canary,
}

fn main() -> ExitCode {
    match std::env::var("PYVENTUS_EXIT_PROBE") {
        Ok(case) => probe(&case),
        Err(_) => parent(),
    }
}

// ---------------------------------------------------------------------------
// The parent: every case, ten rounds each.

fn parent() -> ExitCode {
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut cases = 0;
    for service in SERVICES {
        let broker = match broker_url(service) {
            Broker::None => None,
            Broker::At(url) => Some(url),
            Broker::Missing => continue, // not required: said so
        };
        for cache in CACHES {
            for holder in holders(service) {
                for place in PLACES {
                    let case = format!("{service}/{cache}/{holder}/{place}");
                    cases += 1;
                    if let Err(failure) = rounds(&exe, &case, broker.as_ref()) {
                        eprintln!("FAILED {case}: {failure}");
                        failures.push(case);
                    }
                }
            }
        }
    }
    eprintln!(
        "clean_exit: {cases} cases x {ROUNDS} rounds in {:.1} s, {} failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Where a case's service lives.
enum Broker {
    /// In this process.
    None,
    /// At this URL.
    At(String),
    /// On a broker that is not reachable (and not required): skipped, said so.
    Missing,
}

fn broker_url(service: &str) -> Broker {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    match service {
        #[cfg(feature = "redis")]
        "redis" => runtime()
            .block_on(common::redis::redis_url())
            .map_or(Broker::Missing, Broker::At),
        #[cfg(feature = "amqp")]
        "amqp" => runtime()
            .block_on(common::amqp::amqp_url())
            .map_or(Broker::Missing, Broker::At),
        _ => {
            let _ = runtime;
            Broker::None
        }
    }
}

/// Runs `case` in ten children, four at a time, then deletes the queues
/// they used on the broker, if any.
fn rounds(exe: &Path, case: &str, broker: Option<&String>) -> Result<(), String> {
    let mut used = Vec::new();
    let result = run_rounds(exe, case, broker, &mut used);
    cleanup(case, &used);
    result
}

fn run_rounds(
    exe: &Path,
    case: &str,
    broker: Option<&String>,
    used: &mut Vec<(String, String)>,
) -> Result<(), String> {
    for pair in (0..ROUNDS).collect::<Vec<_>>().chunks(4) {
        let children: Vec<_> = pair
            .iter()
            .map(|round| {
                let mark = std::env::temp_dir().join(format!(
                    "pyventus-clean-exit-{}-{}-{round}",
                    std::process::id(),
                    case.replace('/', "-")
                ));
                let _ = std::fs::remove_file(&mark);
                let mut command = Command::new(exe);
                command
                    .env("PYVENTUS_EXIT_PROBE", case)
                    .env("PYVENTUS_EXIT_MARK", &mark)
                    .env("PYVENTUS_DEBUG", "0")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let queue = format!("clean-exit-{}", uuid::Uuid::new_v4().simple());
                if let Some(url) = broker {
                    command
                        .env("PYVENTUS_EXIT_BROKER", url)
                        .env("PYVENTUS_EXIT_QUEUE", &queue);
                }
                (
                    round,
                    mark,
                    queue,
                    command.spawn().expect("a child process"),
                )
            })
            .collect();
        for (round, mark, queue, child) in children {
            let output = wait_bounded(child, Duration::from_secs(30));
            if let Some(url) = broker {
                used.push((url.clone(), queue));
            }
            let output = output?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let dropped = std::fs::remove_file(&mark).is_ok();
            if !output.status.success() {
                return Err(format!(
                    "round {round}: exit status {}; stderr:\n{stderr}",
                    output.status
                ));
            }
            if !dropped {
                return Err(format!(
                    "round {round}: the handler's captures never dropped; stderr:\n{stderr}"
                ));
            }
        }
    }
    Ok(())
}

/// Deletes what a broker case's children left on their broker, all at once.
fn cleanup(case: &str, used: &[(String, String)]) {
    if used.is_empty() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let service = case.split('/').next().unwrap_or_default();
    runtime.block_on(futures::future::join_all(used.iter().map(
        |(url, queue)| async move {
            match service {
                #[cfg(feature = "redis")]
                "redis" => common::redis::cleanup(url, queue).await,
                #[cfg(feature = "amqp")]
                "amqp" => common::amqp::cleanup(url, queue).await,
                _ => {
                    let _ = (url, queue);
                }
            }
        },
    )));
}

/// Waits for `child`, killing it after `limit`: a hang fails, it does not block.
fn wait_bounded(
    mut child: std::process::Child,
    limit: Duration,
) -> Result<std::process::Output, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let output = child.wait_with_output().map_err(|e| e.to_string())?;
                return Err(format!(
                    "hung for {limit:?} and was killed; stderr:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Err(err) => return Err(err.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------
// The child: one case.

fn probe(case: &str) -> ExitCode {
    let parts: Vec<&str> = case.split('/').collect();
    let [service, cache, holder, place] = parts[..] else {
        eprintln!("probe: a case is service/cache/holder/place, not {case}");
        return ExitCode::from(2);
    };
    #[cfg(feature = "metrics")]
    metrics_util::debugging::DebuggingRecorder::new()
        .install()
        .expect("the only recorder");
    let mark = PathBuf::from(std::env::var_os("PYVENTUS_EXIT_MARK").expect("a mark path"));
    let linker = EventLinker::builder().debug(false).build();
    let mut world = World::start(service);
    let held = Held {
        _holder: world.holder(holder, &linker),
        _canary: Canary(mark),
    };
    let subscriber = subscribe(cache, &linker, held);
    let thread_exit = match place {
        "thread-exit" => true,
        "process-exit" => false,
        other => panic!("unknown place {other}"),
    };
    if thread_exit {
        world.fill_on_service_thread(cache, &linker);
    } else {
        fill(cache, &linker);
    }
    // Only the cache that was filled holds the handler now.
    assert!(subscriber.unsubscribe());
    drop((subscriber, linker));
    world.finish(thread_exit);
    if thread_exit {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !DROPPED.load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                eprintln!("probe: the service thread never released the handler");
                return ExitCode::from(3);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    } else {
        assert!(
            !DROPPED.load(Ordering::SeqCst),
            "the handler must still be in the main thread's cache"
        );
    }
    ExitCode::SUCCESS
}

/// Subscribes the handler that owns `held` to the event `cache` is filled by.
fn subscribe(cache: &str, linker: &EventLinker, held: Held) -> pyventus::EventSubscriber {
    let subscribed = match cache {
        "snapshot" | "lane" | "metrics" => linker.on::<Ping>().subscribe(move |_: &Ping| {
            let _ = &held;
        }),
        "named" => linker.on_named("PingNamed").subscribe(move |_: &u32| {
            let _ = &held;
        }),
        "named-key" => linker.on_named("PingKey").subscribe(move |_: &u32| {
            let _ = &held;
        }),
        other => panic!("unknown cache {other}"),
    };
    subscribed.expect("subscribed")
}

/// An inline emitter on `linker`: `fast` takes the borrowed-event fast path
/// (and its lane caches); otherwise every emit takes the general path, which
/// caches only the linker's snapshot.
fn inline(linker: &EventLinker, fast: bool) -> EventEmitter {
    EventEmitter::builder()
        .processor(InlineProcessingService::new())
        .linker(linker.clone())
        .debug(!fast)
        .build()
}

/// Makes this thread's cache `cache`, and only it, hold the handler.
fn fill(cache: &str, linker: &EventLinker) {
    match cache {
        // The general path: the snapshot cache only (and, with metrics on, the
        // metrics key cache, for the counted emission).
        "snapshot" | "metrics" => inline(linker, false).emit(Ping).expect("emitted"),
        "lane" => inline(linker, true).emit(Ping).expect("emitted"),
        "named" => inline(linker, true)
            .emit_named("PingNamed", 1_u32)
            .expect("emitted"),
        "named-key" => inline(linker, true)
            .emit_to(&PING_KEY, 1_u32)
            .expect("emitted"),
        other => panic!("unknown cache {other}"),
    }
    if !matches!(cache, "snapshot" | "metrics") {
        // The snapshot cache moves on to another linker's snapshot.
        let other = EventLinker::builder().debug(false).build();
        inline(&other, false).emit(Ping).expect("emitted");
    }
}

/// A service, what runs it, and the threads it runs on.
enum World {
    Inline {
        service: InlineProcessingService,
        thread: Option<(std::thread::JoinHandle<()>, Arc<Barrier>)>,
    },
    Executor {
        pool: ExecutorProcessingService,
        go: Option<Arc<Barrier>>,
    },
    /// A service used inside a multi-thread runtime: tokio's, axum's layer and
    /// the brokers'. The runtime's workers are the service threads.
    OnRuntime {
        runtime: tokio::runtime::Runtime,
        /// Makes a holder of a kind, from the main thread's own handles.
        make: MakeHolder,
    },
}

/// What a handler may own.
type Holder = Box<dyn Send + Sync>;
/// Makes a holder of a kind (`service`, `emitter`, `worker`).
type MakeHolder = Box<dyn Fn(&str, &EventLinker) -> Holder>;
/// Starts a worker running on a runtime, and hands back a handle to it.
type StartWorker = Box<dyn Fn(&tokio::runtime::Handle) -> Holder>;

/// A world of `service` used inside `runtime`; `worker` starts a worker of
/// the service's queue running there.
fn on_runtime<S: ProcessingService + Clone>(
    runtime: tokio::runtime::Runtime,
    service: S,
    worker: Option<StartWorker>,
) -> World {
    let handle = runtime.handle().clone();
    World::OnRuntime {
        runtime,
        make: Box::new(move |holder, linker| match (holder, &worker) {
            ("service", _) => Box::new(service.clone()),
            ("emitter", _) => emitter_on(service.clone(), linker),
            ("worker", Some(worker)) => worker(&handle),
            (other, _) => panic!("unknown holder {other}"),
        }),
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// An emitter on `linker` with `processor`, boxed as a holder.
fn emitter_on(processor: impl ProcessingService, linker: &EventLinker) -> Holder {
    Box::new(
        EventEmitter::builder()
            .processor(processor)
            .linker(linker.clone())
            .build(),
    )
}

impl World {
    fn start(service: &str) -> World {
        match service {
            "inline" => World::Inline {
                service: InlineProcessingService::new(),
                thread: None,
            },
            "executor" => World::Executor {
                pool: ExecutorProcessingService::with_threads(1),
                go: None,
            },
            "tokio" | "ordered-tokio" => {
                let tokio = TokioProcessingService::builder()
                    .enforce_submission_order(service == "ordered-tokio")
                    .build();
                let runtime = multi_thread();
                warm_up(&runtime, &tokio);
                on_runtime(runtime, tokio, None)
            }
            #[cfg(feature = "axum")]
            "axum" => axum_world(),
            #[cfg(feature = "redis")]
            "redis" => {
                let runtime = multi_thread();
                let url = std::env::var("PYVENTUS_EXIT_BROKER").expect("a broker URL");
                let queue = std::env::var("PYVENTUS_EXIT_QUEUE").expect("a queue");
                let redis = runtime.block_on(async {
                    pyventus::redis::RedisProcessingService::builder(&url)
                        .queue(&queue)
                        .connect()
                        .await
                        .expect("connected to Redis")
                });
                let worker = move |handle: &tokio::runtime::Handle| -> Holder {
                    let worker = handle.block_on(async {
                        pyventus::redis::Worker::builder(&url)
                            .queue(&queue)
                            .linker(EventLinker::builder().debug(false).build())
                            .connect()
                            .await
                            .expect("a worker")
                    });
                    let running = worker.clone();
                    handle.spawn(async move { running.run().await });
                    Box::new(worker)
                };
                on_runtime(runtime, redis, Some(Box::new(worker)))
            }
            #[cfg(feature = "amqp")]
            "amqp" => {
                let runtime = multi_thread();
                let url = std::env::var("PYVENTUS_EXIT_BROKER").expect("a broker URL");
                let queue = std::env::var("PYVENTUS_EXIT_QUEUE").expect("a queue");
                let amqp = runtime.block_on(async {
                    pyventus::amqp::AmqpProcessingService::builder(&url)
                        .queue(&queue)
                        .connect()
                        .await
                        .expect("connected to RabbitMQ")
                });
                let worker = move |handle: &tokio::runtime::Handle| -> Holder {
                    let worker = handle.block_on(async {
                        pyventus::amqp::Worker::builder(&url)
                            .queue(&queue)
                            .linker(EventLinker::builder().debug(false).build())
                            .connect()
                            .await
                            .expect("a worker")
                    });
                    let running = worker.clone();
                    handle.spawn(async move { running.run().await });
                    Box::new(worker)
                };
                on_runtime(runtime, amqp, Some(Box::new(worker)))
            }
            other => panic!("unknown service {other}"),
        }
    }

    /// What the handler owns: a clone of the service, or an emitter on it.
    fn holder(&self, holder: &str, linker: &EventLinker) -> Holder {
        match (self, holder) {
            (World::Inline { service, .. }, "service") => Box::new(*service),
            (World::Inline { service, .. }, "emitter") => emitter_on(*service, linker),
            (World::Executor { pool, .. }, "service") => Box::new(pool.clone()),
            (World::Executor { pool, .. }, "emitter") => emitter_on(pool.clone(), linker),
            (World::OnRuntime { make, .. }, holder) => make(holder, linker),
            (_, other) => panic!("unknown holder {other}"),
        }
    }

    /// Fills `cache` on a thread of the service, which stays until `finish`.
    fn fill_on_service_thread(&mut self, cache: &str, linker: &EventLinker) {
        let cache = cache.to_owned();
        let linker = linker.clone();
        match self {
            World::Inline { thread, .. } => {
                let (filled, go) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
                let (f, g) = (filled.clone(), go.clone());
                let handle = std::thread::spawn(move || {
                    fill(&cache, &linker);
                    drop(linker);
                    f.wait();
                    g.wait();
                });
                filled.wait();
                *thread = Some((handle, go));
            }
            World::Executor { pool, go } => {
                // A pool thread runs the filling, then waits there until the
                // main thread let go of every handle.
                let (filled, wait) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
                let (f, g) = (filled.clone(), wait.clone());
                let helper = EventLinker::builder().debug(false).build();
                let linker = std::sync::Mutex::new(Some(linker));
                helper
                    .on_named("Fill")
                    .subscribe(move || {
                        if let Some(linker) = linker.lock().unwrap().take() {
                            fill(&cache, &linker);
                        }
                        f.wait();
                        g.wait();
                    })
                    .expect("subscribed");
                let emitter = EventEmitter::builder()
                    .processor(pool.clone())
                    .linker(helper)
                    .build();
                emitter.emit_named("Fill", ()).expect("submitted");
                filled.wait();
                *go = Some(wait);
            }
            World::OnRuntime { runtime, .. } => {
                let task = runtime.spawn(async move { fill(&cache, &linker) });
                runtime.block_on(task).expect("filled on a worker");
            }
        }
    }

    /// Lets go of the main thread's handles, then of the service threads
    /// (with `thread_exit`, the handler's captures drop as one exits).
    fn finish(self, thread_exit: bool) {
        match self {
            World::Inline { thread, .. } => {
                if let Some((handle, go)) = thread {
                    go.wait();
                    handle.join().expect("the thread exited");
                }
            }
            World::Executor { pool, go } => {
                if thread_exit {
                    // The pool thread exits once the pool is shut down and it
                    // is let go: its caches hold the last handle.
                    pool.shutdown(false);
                }
                drop(pool);
                if let Some(go) = go {
                    go.wait();
                }
            }
            World::OnRuntime { runtime, make } => {
                drop(make);
                // The workers exit: with `thread_exit`, one of them holds the
                // handler in its cache.
                drop(runtime);
            }
        }
    }
}

/// Runs an emission on `tokio`, so that its last handle has had work.
fn warm_up(runtime: &tokio::runtime::Runtime, tokio: &TokioProcessingService) {
    let linker = EventLinker::builder().debug(false).build();
    linker
        .on_named("Warm")
        .subscribe_async(|| async {})
        .expect("subscribed");
    let emitter = EventEmitter::builder()
        .processor(tokio.clone())
        .linker(linker)
        .build();
    runtime.block_on(async {
        emitter.emit_named("Warm", ()).expect("emitted");
        tokio.wait_for_tasks().await.expect("waited");
    });
}

/// The axum layer (the service a user keeps), on its default tokio
/// processing service; an emitter is a `BackgroundEmitter` that a request
/// handed out.
#[cfg(feature = "axum")]
fn axum_world() -> World {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};

    let runtime = multi_thread();
    let layer = BackgroundEmitterLayer::new();
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/",
            get(move |emitter: BackgroundEmitter| {
                let sender = sender.clone();
                async move {
                    let _ = sender.send(emitter);
                    StatusCode::OK
                }
            }),
        )
        .layer(layer.clone());
    let emitter = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connected");
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n",
        )
        .await
        .expect("sent");
        let mut response = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response)
            .await
            .expect("answered");
        server.abort();
        received.recv().await.expect("the handler's emitter")
    });
    World::OnRuntime {
        runtime,
        make: Box::new(move |holder, _| match holder {
            "emitter" => Box::new(emitter.clone()),
            "service" => Box::new(layer.clone()),
            other => panic!("unknown holder {other}"),
        }),
    }
}
