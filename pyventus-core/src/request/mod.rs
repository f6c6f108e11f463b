//! Requests: an event that asks for an answer, and the one responder (or the
//! several, for `collect`) that gives it.
//!
//! - [`Request`] (this file): what a request type declares, its response and
//!   error types; [`RequestError`], every way a request can go unanswered.
//! - `reply`: where a responder's answer goes, carried by the request's
//!   emission.
//! - `responder`: `linker.respond::<R>(f)`, `respond_async`, and what
//!   `#[respond]` registers.
//! - `ask`: `emitter.request(r).timeout(d)`, one answer.
//! - `collect`: `emitter.collect(r).timeout(d)`, every answer that arrives in
//!   time.
//!
//! A request is an event like any other: `#[on]` handlers of its type see it
//! too. What makes it a request is its responder, a subscriber the registry
//! knows as one (and keeps unique when the request takes one), and the reply
//! its emission carries as its context.

pub(crate) mod ask;
pub(crate) mod collect;
pub(crate) mod remote;
pub(crate) mod reply;
pub(crate) mod responder;

use std::fmt;
use std::time::Duration;

use crate::{Error, Event, HandlerPanic};

/// An event that asks for an answer: its responder's `Ok` value is the
/// [`Response`](Self::Response), its `Err` the [`Error`](Self::Error).
///
/// Derive it with `#[derive(Event, Request)]` and
/// `#[request(response = Quote, error = QuoteError)]` (`error` defaults to
/// [`Infallible`](std::convert::Infallible); `many` lets several responders
/// answer, for [`collect`](crate::EventEmitter::collect)), or implement it.
///
/// # Examples
///
/// ```
/// use pyventus_core::{Event, EventEmitter, EventLinker, Request};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct GetQuote {
///     symbol: &'static str,
/// }
/// impl Event for GetQuote {
///     const NAME: &'static str = "GetQuote";
/// }
/// impl Request for GetQuote {
///     type Response = u32;
///     type Error = String;
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pyventus_core::RequestError<String>> {
/// let linker = EventLinker::new();
/// linker
///     .respond(|q: &GetQuote| match q.symbol {
///         "ACME" => Ok(42),
///         other => Err(format!("unknown symbol {other}")),
///     })
///     .unwrap();
/// let emitter = EventEmitter::builder().linker(linker).build();
/// let price = emitter
///     .request(GetQuote { symbol: "ACME" })
///     .timeout(Duration::from_secs(1))
///     .await?;
/// assert_eq!(price, 42);
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a request",
    label = "not a request",
    note = "derive it: `#[derive(Event, Request)]` with `#[request(response = YourResponse, error = YourError)]`, or implement `Request` for it"
)]
pub trait Request: Event {
    /// What its responder answers.
    type Response: Send + 'static;
    /// What its responder fails with.
    type Error: Send + 'static;
    /// Whether several responders may answer it (asked with
    /// [`collect`](crate::EventEmitter::collect)); by default a second
    /// responder is refused.
    const MANY_RESPONDERS: bool = false;

    /// How its answers cross a process, for a worker to answer it: written
    /// by `#[derive(Request)]` for a request declared `remote`. Not public
    /// API.
    #[doc(hidden)]
    fn __pyventus_answer_codec() -> Option<remote::AnswerCodec<Self>>
    where
        Self: Sized,
    {
        None
    }
}

/// Why a request went unanswered. `E` is the request's
/// [`Error`](Request::Error): the responder's own failure.
///
/// Each cause is distinct, and each is known as soon as it can be: no
/// responder at once, before anything is emitted; a responder unsubscribed
/// while the request waited as soon as its run is skipped.
///
/// # Examples
///
/// ```
/// use pyventus_core::{Event, EventEmitter, EventLinker, Request, RequestError};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct Ping;
/// impl Event for Ping {
///     const NAME: &'static str = "Ping";
/// }
/// impl Request for Ping {
///     type Response = ();
///     type Error = std::convert::Infallible;
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let emitter = EventEmitter::builder().linker(EventLinker::new()).build();
/// let err = emitter.request(Ping).timeout(Duration::from_secs(1)).await.unwrap_err();
/// assert!(matches!(err, RequestError::NoResponder { request: "Ping" }));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError<E> {
    /// Nothing answers this request: nothing was emitted.
    NoResponder {
        /// The request's event name.
        request: &'static str,
    },

    /// `request` asks one responder, and this request (declared `many`) has
    /// several: nothing was emitted.
    ManyResponders {
        /// The request's event name.
        request: &'static str,
        /// How many responders it has.
        count: usize,
    },

    /// No answer within the caller's timeout. The responder may still be
    /// running; its answer, if it comes, is dropped.
    Timeout {
        /// The request's event name.
        request: &'static str,
        /// The timeout the caller set.
        timeout: Duration,
    },

    /// The responder answered with its error.
    Responder {
        /// The request's event name.
        request: &'static str,
        /// Its error.
        error: E,
    },

    /// The responder panicked.
    Panicked {
        /// The request's event name.
        request: &'static str,
        /// The panic.
        panic: HandlerPanic,
    },

    /// The responder was unsubscribed while the request waited, before its
    /// run started.
    Unsubscribed {
        /// The request's event name.
        request: &'static str,
    },

    /// The emitter could not emit the request (the processing service
    /// refused it, another type owns its name).
    Emit {
        /// The request's event name.
        request: &'static str,
        /// Why.
        source: Error,
    },

    /// The request's emission was dropped before its responder ran (its
    /// runtime shut down, its processing service dropped it).
    Dropped {
        /// The request's event name.
        request: &'static str,
    },

    /// The emitter's processing service runs emissions in another process,
    /// and this request cannot be answered there: it is not declared
    /// `#[request(..., remote)]`, or the service has no way back for answers.
    /// Nothing was emitted.
    Remote {
        /// The request's event name.
        request: &'static str,
    },
}

impl<E: fmt::Display> fmt::Display for RequestError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NoResponder { request } => write!(
                f,
                "no responder for request `{request}`: subscribe one with `linker.respond(...)` \
                 or declare one with `#[respond]`"
            ),
            RequestError::ManyResponders { request, count } => write!(
                f,
                "request `{request}` has {count} responders and `request` asks one: \
                 ask them all with `collect`"
            ),
            RequestError::Timeout { request, timeout } => {
                write!(f, "request `{request}` got no answer within {timeout:?}")
            }
            RequestError::Responder { request, error } => {
                write!(f, "the responder of `{request}` failed: {error}")
            }
            RequestError::Panicked { request, panic } => write!(
                f,
                "the responder of `{request}` panicked: {}",
                panic.message()
            ),
            RequestError::Unsubscribed { request } => write!(
                f,
                "the responder of `{request}` was unsubscribed before it answered"
            ),
            RequestError::Emit { request, source } => {
                write!(f, "request `{request}` could not be emitted: {source}")
            }
            RequestError::Dropped { request } => {
                write!(
                    f,
                    "request `{request}` was dropped before its responder ran"
                )
            }
            RequestError::Remote { request } => write!(
                f,
                "request `{request}` was not emitted: its emitter's processing service runs \
                 emissions in another process, and its answer cannot come back from there; \
                 declare it `#[request(..., remote)]` (its response and error then derive \
                 `Serialize` and `Deserialize`) on a service that carries answers (Redis, RabbitMQ), \
                 or use an emitter with a local processing service"
            ),
        }
    }
}

/// An error whatever the responder's error type (`anyhow::Error`, a
/// `String`, an error enum): `?` takes a request's error into
/// `anyhow::Result` or `Box<dyn Error>`. The responder's own error is in the
/// message, and typed in [`responder_error`](Self::responder_error);
/// [`source`](std::error::Error::source) gives the panic, or the emitter's
/// error.
impl<E: fmt::Debug + fmt::Display> std::error::Error for RequestError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestError::Panicked { panic, .. } => Some(panic),
            RequestError::Emit { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl<E> RequestError<E> {
    /// The responder's own error, when it answered with one.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::RequestError;
    ///
    /// let err: RequestError<&str> = RequestError::Responder { request: "Divide", error: "by zero" };
    /// assert_eq!(err.responder_error(), Some(&"by zero"));
    /// assert_eq!(RequestError::<&str>::Dropped { request: "Divide" }.responder_error(), None);
    /// ```
    pub fn responder_error(&self) -> Option<&E> {
        match self {
            RequestError::Responder { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// One answer to a request of type `R`, as its responder gave it: what
/// `request(r).timeout(d)` resolves to, and each item `collect` gathers.
///
/// # Examples
///
/// ```
/// use pyventus_core::{Answer, Event, Request, RequestError};
///
/// #[derive(Debug)]
/// struct Ping;
/// impl Event for Ping {
///     const NAME: &'static str = "Ping";
/// }
/// impl Request for Ping {
///     type Response = &'static str;
///     type Error = std::convert::Infallible;
/// }
///
/// let answer: Answer<Ping> = Ok("pong");
/// let none: Answer<Ping> = Err(RequestError::NoResponder { request: "Ping" });
/// assert!(answer.is_ok() && none.is_err());
/// ```
pub type Answer<R> = Result<<R as Request>::Response, RequestError<<R as Request>::Error>>;
