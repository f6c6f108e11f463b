//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "amqp")]
pub mod amqp;

use std::fmt::Debug;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyventus::{EventEmitter, EventLinker, InlineProcessingService, ProcessingService};
use tracing_subscriber::fmt::MakeWriter;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "amqp", feature = "postgres", feature = "redis"))]
pub mod proxy;
#[cfg(feature = "redis")]
pub mod redis;

/// Waits until `done` holds, or fails after `limit`.
pub async fn until(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `run` (a worker's or a relay's `run()`) until `started` holds, then
/// drops it, as a `select!` that took another branch would: what a dropped
/// run leaves behind is under test. Fails if the run ends first, or after
/// a few seconds.
pub async fn drop_run_once<T: Debug>(
    run: impl Future<Output = T>,
    what: &str,
    started: impl AsyncFnMut() -> bool,
) {
    let run = std::pin::pin!(run);
    tokio::select! {
        ran = run => panic!("the run ended on its own: {ran:?}"),
        () = until(Duration::from_secs(5), what, started) => {}
    }
}

/// An emitter on `linker` with the given processor.
pub fn emitter(linker: &EventLinker, processor: impl ProcessingService) -> EventEmitter {
    EventEmitter::builder()
        .processor(processor)
        .linker(linker.clone())
        .build()
}

/// An inline emitter on `linker`.
pub fn inline(linker: &EventLinker) -> EventEmitter {
    emitter(linker, InlineProcessingService::default())
}

/// An inline emitter on `linker` that takes the fast path whatever
/// `PYVENTUS_DEBUG` says (debug mode runs every emission on the general path):
/// what tests of the per-thread caches use.
pub fn inline_fast(linker: &EventLinker) -> EventEmitter {
    EventEmitter::builder()
        .processor(InlineProcessingService::new())
        .linker(linker.clone())
        .debug(false)
        .build()
}

/// What `tracing` printed on this thread while the guard lived.
///
/// One global subscriber, enabled at every level, writes each thread's output to
/// the buffer that thread is capturing into. (Scoped per-thread subscribers race
/// with tracing's per-callsite interest cache when tests run in parallel: a
/// callsite first hit on a thread without one can stay disabled for all.)
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURING: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Stops the calling thread's capture when dropped.
pub struct Capturing(());

impl Drop for Capturing {
    fn drop(&mut self) {
        let _ = CAPTURING.try_with(|c| c.borrow_mut().take());
    }
}

/// Captures of the threads pyventus starts, by thread name prefix.
static BY_THREAD_NAME: Mutex<Vec<(String, Logs)>> = Mutex::new(Vec::new());

/// Stops a capture by thread name when dropped.
pub struct CapturingThreads(String);

impl Drop for CapturingThreads {
    fn drop(&mut self) {
        BY_THREAD_NAME
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(prefix, _)| *prefix != self.0);
    }
}

/// Routes writes to the calling thread's capture, if any.
struct ToCapture;

impl<'a> MakeWriter<'a> for ToCapture {
    type Writer = Box<dyn Write>;
    fn make_writer(&'a self) -> Box<dyn Write> {
        if let Some(logs) = CAPTURING.try_with(|c| c.borrow().clone()).ok().flatten() {
            return Box::new(logs);
        }
        let name = std::thread::current().name().unwrap_or_default().to_owned();
        let by_name = BY_THREAD_NAME
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match by_name
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
        {
            Some((_, logs)) => Box::new(logs.clone()),
            None => Box::new(std::io::sink()),
        }
    }
}

impl Logs {
    /// Captures the calling thread's `tracing` output (all levels, no colour).
    pub fn capture() -> (Logs, Capturing) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            tracing_subscriber::fmt()
                .with_writer(ToCapture)
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .try_init()
                .expect("no other global tracing subscriber in the tests");
        });
        let logs = Logs::default();
        CAPTURING
            .try_with(|c| *c.borrow_mut() = Some(logs.clone()))
            .expect("a test thread's locals live while it runs");
        (logs, Capturing(()))
    }

    /// Also captures what threads whose name starts with `prefix` print (the
    /// threads a processing service starts), until the guard drops.
    pub fn capture_threads(&self, prefix: &str) -> CapturingThreads {
        BY_THREAD_NAME
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((prefix.to_owned(), self.clone()));
        CapturingThreads(prefix.to_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A list that handlers append to, for asserting what ran in which order.
#[derive(Clone, Default)]
pub struct Record(Arc<Mutex<Vec<String>>>);

impl Record {
    pub fn push(&self, entry: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Runs `f` on its own thread and returns its result, or panics with `what` if
/// it has not finished within `limit`: a hang fails the test instead of stalling
/// it (the stuck thread is left behind). A panic in `f` is the test's panic.
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().expect_err("it sent nothing, so it panicked"))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {limit:?}")
        }
    }
}

/// Says that the current test is skipped, and why, where `cargo test` shows
/// it: written to the process's standard error directly, which libtest's
/// output capture does not hold back (an `eprintln!` would be shown only if
/// the test failed, and a skipped test passes).
pub fn skip(why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
