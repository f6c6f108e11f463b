//! Asking one responder: `emitter.request(r).timeout(d)`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::EventEmitter;
use crate::lifecycle::gate::Gate;
use crate::request::reply::ReplyTo;
use crate::request::{Answer, Request, RequestError};

/// A request about to be asked: [`timeout`](Self::timeout) sends it. What
/// [`EventEmitter::request`] returns.
///
/// There is no default timeout: each caller says how long its answer may
/// take.
///
/// # Examples
///
/// ```
/// use pyventus_core::{Event, EventEmitter, EventLinker, Request};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct Add(u32, u32);
/// impl Event for Add {
///     const NAME: &'static str = "Add";
/// }
/// impl Request for Add {
///     type Response = u32;
///     type Error = std::convert::Infallible;
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pyventus_core::RequestError<std::convert::Infallible>> {
/// let linker = EventLinker::new();
/// linker.respond(|a: &Add| Ok(a.0 + a.1)).unwrap();
/// let emitter = EventEmitter::builder().linker(linker).build();
/// let ask = emitter.request(Add(2, 3)); // nothing sent yet
/// assert_eq!(ask.timeout(Duration::from_millis(100)).await?, 5);
/// # Ok(()) }
/// ```
#[must_use = "a request is sent by `.timeout(duration)`, then awaited"]
pub struct RequestBuilder<R> {
    emitter: EventEmitter,
    request: R,
}

impl<R: Request> RequestBuilder<R> {
    /// Sends the request when first polled, and waits up to `timeout` for
    /// its answer.
    ///
    /// The timer runs on the caller's tokio runtime (which needs its time
    /// driver, as `#[tokio::main]` gives it), or on pyventus's own outside
    /// one.
    ///
    /// On an emitter whose processing service runs emissions in other
    /// processes (Redis), a worker answers: the request, its response and
    /// its error must derive `Serialize` and `Deserialize`, or the request
    /// is refused with [`Remote`](RequestError::Remote). See
    /// `docs/requests.md`.
    ///
    /// # Errors
    ///
    /// Each [`RequestError`]: [`NoResponder`](RequestError::NoResponder) at
    /// once, [`Timeout`](RequestError::Timeout),
    /// [`Responder`](RequestError::Responder) (its error),
    /// [`Panicked`](RequestError::Panicked),
    /// [`Unsubscribed`](RequestError::Unsubscribed) (while the request
    /// waited), [`Emit`](RequestError::Emit), [`Dropped`](RequestError::Dropped),
    /// [`Remote`](RequestError::Remote),
    /// [`ManyResponders`](RequestError::ManyResponders).
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{Event, EventEmitter, EventLinker, Request, RequestError};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// struct Slow;
    /// impl Event for Slow {
    ///     const NAME: &'static str = "Slow";
    /// }
    /// impl Request for Slow {
    ///     type Response = ();
    ///     type Error = std::convert::Infallible;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let linker = EventLinker::new();
    /// linker
    ///     .respond_async(|_: Arc<Slow>| async {
    ///         tokio::time::sleep(Duration::from_secs(10)).await;
    ///         Ok(())
    ///     })
    ///     .unwrap();
    /// let emitter = EventEmitter::builder()
    ///     .processor(pyventus_core::TokioProcessingService::default())
    ///     .linker(linker)
    ///     .build();
    /// let timeout = Duration::from_millis(10);
    /// let answer = emitter.request(Slow).timeout(timeout).await;
    /// assert_eq!(answer, Err(RequestError::Timeout { request: "Slow", timeout }));
    /// # }
    /// ```
    pub fn timeout(self, timeout: Duration) -> impl Future<Output = Answer<R>> + Send + 'static {
        let RequestBuilder { emitter, request } = self;
        async move {
            let name = R::NAME;
            if emitter.is_remote() {
                #[cfg(feature = "serde")]
                return crate::request::remote::ask(&emitter, request, timeout).await;
                #[cfg(not(feature = "serde"))]
                return Err(RequestError::Remote { request: name });
            }
            let (tx, rx) = oneshot::channel();
            let reply = Arc::new(ReplyTo::<R>::One(Mutex::new(Some(tx))));
            let (gates, _) = emitter
                .emit_carrying(request, reply, |gates| gates.len() == 1)
                .map_err(|source| RequestError::Emit {
                    request: name,
                    source,
                })?;
            let gate = match gates.as_slice() {
                [] => return Err(RequestError::NoResponder { request: name }),
                [gate] => gate,
                many => {
                    return Err(RequestError::ManyResponders {
                        request: name,
                        count: many.len(),
                    });
                }
            };
            let mut rx = rx;
            // Answered already (a responder that ran in the caller): no timer.
            match rx.try_recv() {
                Ok(answer) => return answer,
                Err(oneshot::error::TryRecvError::Closed) => return Err(unanswered(name, gate)),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let mut sleep = pin!(timer(timeout));
            let answered = poll_fn(|cx| {
                if let Poll::Ready(answer) = std::pin::Pin::new(&mut rx).poll(cx) {
                    return Poll::Ready(Some(answer));
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            match answered {
                Some(Ok(answer)) => answer,
                Some(Err(_unanswered)) => Err(unanswered(name, gate)),
                None => Err(RequestError::Timeout {
                    request: name,
                    timeout,
                }),
            }
        }
    }
}

/// Why a reply was dropped unanswered: its responder's run was skipped (it
/// was unsubscribed), or its emission was dropped before it ran.
pub(crate) fn unanswered<E>(request: &'static str, gate: &Gate) -> RequestError<E> {
    if gate.is_closed() || gate.is_unlinked() {
        RequestError::Unsubscribed { request }
    } else {
        RequestError::Dropped { request }
    }
}

/// A timer of `duration`, on the caller's runtime, or on pyventus's own
/// outside one.
pub(crate) fn timer(duration: Duration) -> tokio::time::Sleep {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::time::sleep(duration),
        Err(_) => {
            let _entered = crate::runtime::own_handle().enter();
            tokio::time::sleep(duration)
        }
    }
}

/// Requests.
impl EventEmitter {
    /// Asks the responder of the request `R` (see [`Request`]) for its
    /// answer: `emitter.request(r).timeout(d).await` gives the responder's
    /// `Ok` value, or a [`RequestError`] saying why there is none.
    ///
    /// The request is emitted like any event, through this emitter's
    /// processing service: the responder runs where its other handlers would
    /// (inline, a tokio task, a pool thread), and `#[on]` handlers of `R`
    /// see it too. Asked from inside a handler whose service runs emissions
    /// one after another (`enforce_submission_order`), it would wait behind
    /// that handler's own emission: the timeout then ends it.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{Event, EventEmitter, EventLinker, Request, RequestError};
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// struct Divide(i32, i32);
    /// impl Event for Divide {
    ///     const NAME: &'static str = "Divide";
    /// }
    /// impl Request for Divide {
    ///     type Response = i32;
    ///     type Error = &'static str;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let linker = EventLinker::new();
    /// linker.respond(|d: &Divide| d.0.checked_div(d.1).ok_or("division by zero")).unwrap();
    /// let emitter = EventEmitter::builder().linker(linker).build();
    /// let second = Duration::from_secs(1);
    /// assert_eq!(emitter.request(Divide(6, 3)).timeout(second).await, Ok(2));
    /// assert_eq!(
    ///     emitter.request(Divide(1, 0)).timeout(second).await,
    ///     Err(RequestError::Responder { request: "Divide", error: "division by zero" })
    /// );
    /// # }
    /// ```
    pub fn request<R: Request>(&self, request: R) -> RequestBuilder<R> {
        RequestBuilder {
            emitter: self.clone(),
            request,
        }
    }
}
