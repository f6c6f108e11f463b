//! The inline processing service: emissions run in the caller.

use crate::lifecycle::context;
use crate::{Error, EventEmission, ProcessingService};

/// Runs each emission in the caller, to completion, before `emit` returns.
///
/// Synchronous subscribers run on the calling thread in subscription order;
/// asynchronous ones run concurrently on a runtime while the caller blocks (the
/// current runtime if there is one, a private one otherwise). Events whose
/// subscribers are all synchronous are delivered without any allocation.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, InlineProcessingService};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let linker = EventLinker::new();
/// let total = Arc::new(AtomicU64::new(0));
/// let sum = total.clone();
/// linker.on_named("Add").subscribe(move |n: &u64| {
///     sum.fetch_add(*n, Ordering::Relaxed);
/// })?;
///
/// let emitter = EventEmitter::builder()
///     .processor(InlineProcessingService::default())
///     .linker(linker)
///     .build();
/// emitter.emit_named("Add", 2_u64)?;
/// emitter.emit_named("Add", 3_u64)?;
/// assert_eq!(total.load(Ordering::Relaxed), 5); // already ran
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct InlineProcessingService {
    _private: (),
}

impl InlineProcessingService {
    /// The inline processing service.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ProcessingService for InlineProcessingService {
    fn submit(&self, mut emission: EventEmission) -> Result<(), Error> {
        // The caller waits for it: whoever waits for the caller waits for it too.
        emission.track(context::inherited(true), None);
        // The failures went to their callbacks; the caller of `emit` asked for
        // nothing more.
        drop(emission.run_blocking());
        Ok(())
    }

    fn runs_inline(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "inline"
    }
}
