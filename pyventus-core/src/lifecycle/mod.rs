//! The life of emissions among the processing services: who runs each one,
//! who waits for it, and when every one has finished.
//!
//! - [`wait_for_all`](crate::wait_for_all) (this file): waits for every
//!   emission of the process before it shuts down (Pyventus's guard), and
//!   [`Unfinished`](crate::Unfinished) counts work backends hold before it
//!   becomes an emission.
//! - `in_flight`: the counts (`InFlight`, one per service and one for the
//!   process) and the `Ticket` an accepted emission holds until it finishes.
//! - `gate`: the gate a guarded subscriber's runs pass (`Gate`): closed, no
//!   run starts; its runs in progress can be waited for.
//! - `context`: the emission a thread runs now
//!   ([`current_emission`](crate::current_emission)) and its `Lineage` (the
//!   service that runs it, the ones that wait for it), which refuses the waits
//!   that could never end.

pub(crate) mod answer;
pub(crate) mod context;
pub(crate) mod gate;
pub(crate) mod in_flight;

use crate::Error;
use crate::lifecycle::in_flight::ALL;

/// Waits until every emission accepted by a processing service of this process
/// has finished: tokio tasks, thread-pool jobs, what backends count with
/// [`Unfinished`], and everything those emissions emit while this waits.
///
/// Call it before a runtime shuts down: returning from `#[tokio::main]` drops
/// the tasks still running, and their emissions are lost (and reported).
///
/// # Errors
///
/// [`Error::WouldDeadlock`] when called from inside a handler whose emission a
/// processing service counts (or from one such an emission waits for): it would
/// wait for itself.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, TokioProcessingService};
/// use std::time::Duration;
///
/// #[tokio::main]
/// async fn main() -> Result<(), pyventus_core::Error> {
///     let linker = EventLinker::new();
///     linker.on_named("Slow").subscribe_async(|| async {
///         tokio::time::sleep(Duration::from_millis(10)).await;
///         println!("done");
///     })?;
///     let emitter = EventEmitter::builder()
///         .processor(TokioProcessingService::default())
///         .linker(linker)
///         .build();
///     emitter.emit_named("Slow", ())?; // a task: `main` would return before it ran
///     pyventus_core::wait_for_all().await // prints "done" first
/// }
/// ```
pub async fn wait_for_all() -> Result<(), Error> {
    refuse_inside_handlers()?;
    ALL.wait().await;
    Ok(())
}

/// Blocks until every emission accepted by a processing service of this process
/// has finished, as [`wait_for_all`] does, for synchronous code.
///
/// # Errors
///
/// As [`wait_for_all`].
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, ExecutorProcessingService};
///
/// let linker = EventLinker::new();
/// linker.on_named("Work").subscribe(|| println!("working"))?;
/// let emitter = EventEmitter::builder()
///     .processor(ExecutorProcessingService::with_threads(2))
///     .linker(linker)
///     .build();
/// emitter.emit_named("Work", ())?;
/// pyventus_core::wait_for_all_blocking()?; // "working" was printed
/// # Ok::<(), pyventus_core::Error>(())
/// ```
pub fn wait_for_all_blocking() -> Result<(), Error> {
    refuse_inside_handlers()?;
    ALL.wait_blocking();
    Ok(())
}

fn refuse_inside_handlers() -> Result<(), Error> {
    if context::is_counted() {
        return Err(Error::WouldDeadlock(
            "`wait_for_all` inside a handler would wait for the emission running that handler, \
             which cannot finish first: call it where the program shuts down, outside handlers"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Work a backend has accepted but not yet handed to a processing service (a
/// request's emissions waiting for its response, an outbox being flushed):
/// [`wait_for_all`] waits for it until this is dropped.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let held = pyventus_core::Unfinished::new();
/// let waiting = tokio::spawn(pyventus_core::wait_for_all());
/// tokio::task::yield_now().await;
/// assert!(!waiting.is_finished()); // waits for the held work
/// drop(held);
/// waiting.await.unwrap().unwrap();
/// # }
/// ```
#[must_use = "the work counts as unfinished only while this lives"]
#[derive(Debug)]
pub struct Unfinished(());

impl Unfinished {
    /// Counts one piece of unfinished work until dropped.
    pub fn new() -> Self {
        ALL.begin();
        Unfinished(())
    }
}

impl Default for Unfinished {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        ALL.end();
    }
}
