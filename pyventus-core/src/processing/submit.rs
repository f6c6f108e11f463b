//! Handing an emission to a processing service, and telling a refusal (the
//! service dropped it and said so) from a loss (it dropped it and said
//! nothing).

use crate::emission::{Submitting, report_loss, submitting};
use crate::observe::Acceptance;
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
        let handover = Handover::begin(&mut self, processor.name());
        let result = processor.submit(self);
        handover.settle(&result);
        result
    }
}

impl EventEmission {
    /// [`submit_to`](Self::submit_to) from async code: hands the emission to
    /// `processor`'s [`submit_async`](ProcessingService::submit_async) and
    /// awaits what it began (a broker's publish), never blocking the thread.
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
    /// # pyventus_core::runtime::block_on(async {
    /// let linker = EventLinker::new();
    /// linker.on::<Ping>().subscribe(|| println!("ping"))?;
    /// let emission = EventEmission::resolve(&linker, Arc::new(Ping))?;
    /// emission.submit_to_async(&InlineProcessingService::new()).await?;
    /// # Ok::<(), pyventus_core::Error>(()) }).unwrap();
    /// ```
    pub async fn submit_to_async<P: ProcessingService + ?Sized>(
        mut self,
        processor: &P,
    ) -> Result<(), Error> {
        // The service takes the emission at the call: a drop there is a
        // refusal or a loss, as for `submit_to`.
        let handover = Handover::begin(&mut self, processor.name());
        let pending = processor.submit_async(self);
        let handover = handover.taken();
        let result = pending.await;
        handover.settle(&result);
        result
    }
}

/// One emission handed to a processing service: counted as accepted, and
/// watched on this thread while the service takes it, to tell a refusal from
/// a loss once the service answers.
struct Handover {
    id: u64,
    acceptance: Acceptance,
    submitting: Option<Submitting>,
    /// What the service dropped while taking it, once it has.
    dropped: Option<String>,
}

impl Handover {
    fn begin(emission: &mut EventEmission, processor: &'static str) -> Self {
        let acceptance = emission
            .accounting
            .accepted(emission.event.name(), processor);
        emission.processor = processor;
        Handover {
            id: emission.id,
            acceptance,
            submitting: Some(submitting(emission.id)),
            dropped: None,
        }
    }

    /// The service has taken the emission (what remains is its own I/O).
    fn taken(mut self) -> Self {
        self.dropped = self.submitting.take().and_then(Submitting::end);
        self
    }

    fn settle(self, result: &Result<(), Error>) {
        let Handover {
            id,
            acceptance,
            submitting,
            dropped,
        } = self;
        let dropped = match submitting {
            Some(submitting) => submitting.end(),
            None => dropped,
        };
        acceptance.settle(result.is_ok(), dropped.is_some());
        if let (Some(event), Ok(())) = (dropped, result) {
            report_loss(
                id,
                &event,
                "its processing service accepted it, then dropped it",
            );
        }
    }
}
