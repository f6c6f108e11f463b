//! Processing services: where and how an emission's subscribers run.
//!
//! - [`ProcessingService`](crate::ProcessingService) (this file): the trait.
//! - `inline`, `tokio`, `executor`: the services pyventus ships.
//! - `submit`: [`EventEmission::submit_to`](crate::EventEmission::submit_to),
//!   handing an emission to a service and telling a refusal from a loss.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{Error, EventEmission};

mod executor;
mod inline;
mod submit;
#[cfg(feature = "tokio")]
mod tokio;

pub use executor::ExecutorProcessingService;
pub use inline::InlineProcessingService;
#[cfg(feature = "tokio")]
pub use tokio::{TokioProcessingService, TokioProcessingServiceBuilder};

/// Decides where and how emissions run: Pyventus's `ProcessingService`.
///
/// The emitter resolves an event's subscribers into an [`EventEmission`] and
/// submits it here. Implement this trait for a strategy of your own; returning
/// an error hands it back to the caller of `emit`, so nothing is lost silently.
/// An emission accepted (`Ok`) and later dropped without running reports its
/// own loss. Work held before it reaches a processing service can be counted
/// for [`wait_for_all`](crate::wait_for_all) with [`Unfinished`](crate::Unfinished).
///
/// # Examples
///
/// ```
/// use pyventus_core::{Error, EventEmission, EventEmitter, EventLinker, ProcessingService};
/// use std::sync::Mutex;
///
/// /// Holds emissions until `flush`.
/// #[derive(Default)]
/// struct Deferred(Mutex<Vec<EventEmission>>);
///
/// impl ProcessingService for Deferred {
///     fn submit(&self, emission: EventEmission) -> Result<(), Error> {
///         self.0.lock().unwrap().push(emission);
///         Ok(())
///     }
/// }
///
/// impl Deferred {
///     fn flush(&self) {
///         for emission in self.0.lock().unwrap().drain(..) {
///             emission.run_blocking();
///         }
///     }
/// }
///
/// let linker = EventLinker::new();
/// linker.on_named("Saved").subscribe(|| println!("saved"))?;
/// let deferred = std::sync::Arc::new(Deferred::default());
/// let emitter = EventEmitter::builder().processor(deferred.clone()).linker(linker).build();
/// emitter.emit_named("Saved", ())?; // nothing printed yet
/// deferred.flush(); // prints "saved"
/// # Ok::<(), Error>(())
/// ```
pub trait ProcessingService: Send + Sync + 'static {
    /// Takes an emission to run.
    fn submit(&self, emission: EventEmission) -> Result<(), Error>;

    /// Takes an emission to run, from async code: what
    /// [`EventEmitter::emit_async`](crate::EventEmitter::emit_async) awaits. A
    /// service whose `submit` waits on I/O (a broker's publish) takes the
    /// emission here, at the call, and returns the I/O as a future, so that
    /// async code never blocks its thread on it. By default, `submit`, done
    /// at the call.
    ///
    /// The emission is taken (run, handed off, refused) when the call
    /// returns; the future only finishes what it began. A refusal it reports
    /// comes with the emission [discarded](EventEmission::discard), not lost.
    fn submit_async(&self, emission: EventEmission) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(std::future::ready(self.submit(emission)))
    }

    /// Whether `submit` always runs the emission to completion on the calling
    /// thread before returning. When it does, the emitter may skip building an
    /// `EventEmission` for events whose subscribers are all synchronous and run
    /// them on the borrowed event instead (no allocation), with the same results.
    fn runs_inline(&self) -> bool {
        false
    }

    /// Whether the emissions run in other processes, which resolve the
    /// subscribers themselves. The emitter then submits every emission, even one
    /// with no local subscriber, and claims no one-time subscriber locally.
    fn runs_remotely(&self) -> bool {
        false
    }

    /// How the service sends a request to a worker and waits for its answer,
    /// if it [runs emissions remotely](Self::runs_remotely) and can carry
    /// answers back; `None` (the default) refuses remote requests with
    /// [`RequestError::Remote`](crate::RequestError::Remote).
    ///
    /// ```
    /// use pyventus_core::{InlineProcessingService, ProcessingService};
    /// // It runs emissions here: requests are answered here, not through it.
    /// assert!(InlineProcessingService::new().remote_requests().is_none());
    /// ```
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    fn remote_requests(&self) -> Option<Arc<dyn crate::remote::RemoteRequests>> {
        None
    }

    /// Whether the service wants emissions that have no subscriber here too
    /// (a recorder in tests, a metrics tap); services that run emissions
    /// [remotely](Self::runs_remotely) always get them.
    fn wants_every_emission(&self) -> bool {
        false
    }

    /// The service's name in metrics (the `processor` label) and logs: short,
    /// lowercase, stable. By default the type's name without its path
    /// (`Deferred` above).
    ///
    /// ```
    /// use pyventus_core::{InlineProcessingService, ProcessingService};
    /// assert_eq!(InlineProcessingService::new().name(), "inline");
    /// ```
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
}

/// `a::b::C<d::E>` as `C`.
fn short_type_name(full: &'static str) -> &'static str {
    let path = full.split('<').next().unwrap_or(full);
    path.rsplit("::").next().unwrap_or(path)
}

impl<P: ProcessingService + ?Sized> ProcessingService for Arc<P> {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        (**self).submit(emission)
    }

    fn submit_async(&self, emission: EventEmission) -> BoxFuture<'static, Result<(), Error>> {
        (**self).submit_async(emission)
    }

    fn runs_inline(&self) -> bool {
        (**self).runs_inline()
    }

    fn runs_remotely(&self) -> bool {
        (**self).runs_remotely()
    }

    fn wants_every_emission(&self) -> bool {
        (**self).wants_every_emission()
    }

    #[cfg(feature = "serde")]
    fn remote_requests(&self) -> Option<Arc<dyn crate::remote::RemoteRequests>> {
        (**self).remote_requests()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}
