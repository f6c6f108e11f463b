//! Handing an emission to a processing service, and telling a refusal (the
//! service dropped it and said so) from a loss (it dropped it and said
//! nothing).

use crate::emission::{report_loss, submitting};
use crate::{Error, EventEmission, ProcessingService};

impl EventEmission {
    /// Hands the emission to `processor`. If the processor drops it without
    /// running it or handing it off, that is its refusal when `submit` returns
    /// an error (the caller learns), and a loss, reported, when it returns `Ok`.
    ///
    /// # Errors
    ///
    /// The processor's.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmission, EventLinker, InlineProcessingService};
    /// # use std::sync::Arc;
    /// # #[derive(Debug)] struct Ping;
    /// # impl Event for Ping { const NAME: &'static str = "Ping"; }
    /// let linker = EventLinker::new();
    /// linker.on::<Ping>().subscribe(|| println!("ping"))?;
    /// let emission = EventEmission::resolve(&linker, Arc::new(Ping))?;
    /// emission.submit_to(&InlineProcessingService::new())?;
    /// # Ok::<(), pyventus_core::Error>(())
    /// ```
    pub fn submit_to<P: ProcessingService + ?Sized>(mut self, processor: &P) -> Result<(), Error> {
        let id = self.id;
        let name = processor.name();
        let acceptance = self.accounting.accepted(self.event.name(), name);
        self.processor = name;
        let submitting = submitting(id);
        let result = processor.submit(self);
        let dropped = submitting.end();
        acceptance.settle(result.is_ok(), dropped.is_some());
        if let (Some(event), Ok(())) = (dropped, &result) {
            report_loss(
                id,
                &event,
                "its processing service accepted it, then dropped it",
            );
        }
        result
    }
}
