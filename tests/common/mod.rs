//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use pyventus::{EventEmitter, EventLinker, InlineProcessingService, ProcessingService};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

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

/// What `tracing` printed on this thread while the guard lived.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures the calling thread's `tracing` output (all levels, no colour).
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let guard = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish()
            .set_default();
        (logs, guard)
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

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
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
