//! The `BackgroundEmitter` extractor, and the processing service that records a
//! request's emissions into its queue.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use pyventus_core::{Error, EventEmission, EventEmitter, ProcessingService};

use crate::request_queue::RequestQueue;

/// A processing service that records a request's emissions for
/// [`BackgroundEmitterLayer`](crate::BackgroundEmitterLayer) to run after the
/// response. It is what makes a [`BackgroundEmitter`] an ordinary
/// [`EventEmitter`]; it exists only inside a request.
///
/// One-time subscribers are claimed when the handler emits, as by any emitter,
/// so an emission that is discarded does not give them back (Pyventus's `FastAPI`
/// emitter behaves the same way).
#[derive(Clone)]
pub struct AxumProcessingService {
    queue: Arc<RequestQueue>,
}

impl ProcessingService for AxumProcessingService {
    fn submit(&self, emission: EventEmission) -> Result<(), Error> {
        self.queue.record(emission)
    }

    // What the layer's processor needs from the emitter, it needs through this
    // service too: a remote one gets every emission, and claims no one-time
    // subscriber here.
    fn runs_remotely(&self) -> bool {
        self.queue.shared.processor.runs_remotely()
    }

    fn wants_every_emission(&self) -> bool {
        self.queue.shared.processor.wants_every_emission()
    }

    fn name(&self) -> &'static str {
        "axum"
    }
}

impl fmt::Debug for AxumProcessingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AxumProcessingService")
            .finish_non_exhaustive()
    }
}

/// The extractor of an [`EventEmitter`] whose emissions run after the response
/// is sent. It derefs to `EventEmitter`, so code that takes `&EventEmitter` takes
/// it too.
///
/// Needs [`BackgroundEmitterLayer`](crate::BackgroundEmitterLayer) on the route;
/// without it, extraction fails with a 500 that names the layer.
///
/// # Examples
///
/// ```
/// use axum::http::StatusCode;
/// use pyventus_core::EventEmitter;
/// use pyventus_axum::BackgroundEmitter;
///
/// fn register_user(emitter: &EventEmitter, email: &str) -> Result<(), pyventus_core::Error> {
///     emitter.emit_named("UserRegistered", email.to_string())
/// }
///
/// async fn sign_up(emitter: BackgroundEmitter) -> StatusCode {
///     if register_user(&emitter, "user@example.com").is_err() {
///         emitter.discard(); // nothing this request emitted will run
///         return StatusCode::INTERNAL_SERVER_ERROR;
///     }
///     StatusCode::CREATED
/// }
/// # drop(sign_up);
/// ```
#[derive(Clone)]
pub struct BackgroundEmitter {
    emitter: EventEmitter,
    queue: Arc<RequestQueue>,
}

impl BackgroundEmitter {
    /// Drops everything this request emitted so far, and anything it emits
    /// later: none of it will run, whatever the response.
    pub fn discard(&self) {
        self.queue.discard();
    }

    /// The emitter.
    pub fn emitter(&self) -> &EventEmitter {
        &self.emitter
    }
}

impl Deref for BackgroundEmitter {
    type Target = EventEmitter;

    fn deref(&self) -> &EventEmitter {
        &self.emitter
    }
}

impl fmt::Debug for BackgroundEmitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundEmitter")
            .field("emitter", &self.emitter)
            .finish_non_exhaustive()
    }
}

/// The rejection of a [`BackgroundEmitter`] on a route without
/// `BackgroundEmitterLayer`: a 500 saying so.
///
/// # Examples
///
/// ```
/// use axum::response::IntoResponse;
/// use pyventus_axum::MissingLayer;
///
/// let response = MissingLayer.into_response();
/// assert_eq!(response.status(), 500);
/// assert!(MissingLayer.to_string().contains("BackgroundEmitterLayer"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MissingLayer;

impl fmt::Display for MissingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "BackgroundEmitter needs BackgroundEmitterLayer on this route: \
             add `.layer(BackgroundEmitterLayer::new())` to the router, after this \
             route (a layer covers only the routes added before it)",
        )
    }
}

impl std::error::Error for MissingLayer {}

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        tracing::error!(target: "pyventus", "{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BackgroundEmitter {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let queue = parts
            .extensions
            .get::<Arc<RequestQueue>>()
            .ok_or(MissingLayer)?
            .clone();
        let emitter = EventEmitter::builder()
            .processor(AxumProcessingService {
                queue: queue.clone(),
            })
            .linker(queue.shared.linker.clone())
            .debug(queue.shared.debug)
            .build();
        Ok(BackgroundEmitter { emitter, queue })
    }
}
