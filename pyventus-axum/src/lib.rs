//! axum integration: handlers that run after the response is sent (Pyventus's
//! `FastAPI` emitter).
//!
//! [`BackgroundEmitterLayer`] gives each request a queue of emissions; the
//! [`BackgroundEmitter`] extractor is an [`EventEmitter`](pyventus_core::EventEmitter)
//! whose processing service ([`AxumProcessingService`]) only records into that
//! queue. When the handler returns a response the layer's policy accepts (status
//! below 400 by default; [`BackgroundEmitter::discard`] cancels), the emissions are
//! committed, and they run once the response body has been handed to the server
//! in full, or dropped because the client went away: one after the other, in
//! emission order, through the layer's processing service, on a
//! [`TaskTracker`](tokio_util::task::TaskTracker) the connection cannot cancel.
//!
//! With [`detach_from_client`](BackgroundEmitterLayer::detach_from_client) (on by
//! default), the handler itself runs on its own task, so a client that
//! disconnects mid-handler does not cancel it and its committed emissions still
//! run. [`close`](BackgroundEmitterLayer::close) and
//! [`wait`](BackgroundEmitterLayer::wait) drain everything at shutdown.
//!
//! `emit_and_wait` in the route itself would wait for its own response: it
//! returns `Error::WouldDeadlock` at once. Anywhere else (a task the route
//! spawned), it waits until the response is sent and the emission has run.
//!
//! # Examples
//!
//! ```
//! use axum::{Router, routing::get};
//! use pyventus_axum::{BackgroundEmitter, BackgroundEmitterLayer};
//!
//! async fn send_email(emitter: BackgroundEmitter) -> &'static str {
//!     // Recorded now; runs after the response is sent.
//!     emitter.emit_named("SendEmail", "email@pyventus.com".to_string()).unwrap();
//!     "Email sent!"
//! }
//!
//! let layer = BackgroundEmitterLayer::new();
//! let app: Router = Router::new().route("/", get(send_email)).layer(layer.clone());
//! # drop(app);
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod extractor;
#[cfg(feature = "remote")]
mod health;
mod layer;
mod request_queue;

pub use body::BackgroundBody;
pub use extractor::{AxumProcessingService, BackgroundEmitter, MissingLayer};
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use health::health_routes;
pub use layer::{BackgroundEmitterLayer, BackgroundEmitterService};
