//! Asking every responder: `emitter.collect(r).timeout(d)`, the answers that
//! arrive before the deadline, or before a predicate says they are enough.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::EventEmitter;
use crate::request::ask::timer;
use crate::request::reply::ReplyTo;
use crate::request::{Answer, Request, RequestError};

/// Whether the answers so far are enough.
type Enough<R> = Box<dyn FnMut(&[Answer<R>]) -> bool + Send>;

/// A request about to be asked of all its responders:
/// [`timeout`](Self::timeout) sends it. What [`EventEmitter::collect`]
/// returns.
///
/// # Examples
///
/// ```
/// use pyventus_core::{Event, EventEmitter, EventLinker, Request};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct WhoIsThere;
/// impl Event for WhoIsThere {
///     const NAME: &'static str = "WhoIsThere";
/// }
/// impl Request for WhoIsThere {
///     type Response = &'static str;
///     type Error = std::convert::Infallible;
///     const MANY_RESPONDERS: bool = true;
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pyventus_core::RequestError<std::convert::Infallible>> {
/// let linker = EventLinker::new();
/// linker.respond(|_: &WhoIsThere| Ok("billing")).unwrap();
/// linker.respond(|_: &WhoIsThere| Ok("shipping")).unwrap();
/// let emitter = EventEmitter::builder().linker(linker).build();
/// let answers = emitter.collect(WhoIsThere).timeout(Duration::from_millis(100)).await?;
/// let mut names: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
/// names.sort_unstable();
/// assert_eq!(names, ["billing", "shipping"]);
/// # Ok(()) }
/// ```
#[must_use = "a collect is sent by `.timeout(duration)`, then awaited"]
pub struct CollectBuilder<R: Request> {
    emitter: EventEmitter,
    request: R,
    enough: Option<Enough<R>>,
}

impl<R: Request> CollectBuilder<R> {
    /// Returns as soon as `enough` says the answers so far are enough
    /// (called after each answer), instead of at the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmitter, EventLinker, Request};
    /// # use std::time::Duration;
    /// # #[derive(Debug)] struct Ping;
    /// # impl Event for Ping { const NAME: &'static str = "Ping"; }
    /// # impl Request for Ping {
    /// #     type Response = u32;
    /// #     type Error = std::convert::Infallible;
    /// #     const MANY_RESPONDERS: bool = true;
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pyventus_core::RequestError<std::convert::Infallible>> {
    /// let linker = EventLinker::new();
    /// for n in 0..5 {
    ///     linker.respond(move |_: &Ping| Ok(n)).unwrap();
    /// }
    /// let emitter = EventEmitter::builder().linker(linker).build();
    /// let quorum = emitter
    ///     .collect(Ping)
    ///     .until(|answers| answers.iter().filter(|a| a.is_ok()).count() >= 3)
    ///     .timeout(Duration::from_secs(1))
    ///     .await?;
    /// assert_eq!(quorum.len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn until(mut self, enough: impl FnMut(&[Answer<R>]) -> bool + Send + 'static) -> Self {
        self.enough = Some(Box::new(enough));
        self
    }

    /// Sends the request to every responder when first polled, and gathers
    /// their answers (each its `Ok` value, or its error or panic) until every
    /// responder has answered, `until` says they are enough, or `timeout`
    /// has passed, whichever comes first. A request without responders gives
    /// no answers, at once.
    ///
    /// # Errors
    ///
    /// [`RequestError::Emit`] and [`RequestError::Remote`]: the request could
    /// not be asked. What each responder did is in its answer.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pyventus_core::{Event, EventEmitter, EventLinker, Request, RequestError};
    /// # use std::time::Duration;
    /// # #[derive(Debug)] struct Vote;
    /// # impl Event for Vote { const NAME: &'static str = "Vote"; }
    /// # impl Request for Vote {
    /// #     type Response = bool;
    /// #     type Error = &'static str;
    /// #     const MANY_RESPONDERS: bool = true;
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let linker = EventLinker::new();
    /// linker.respond(|_: &Vote| Ok(true)).unwrap();
    /// linker.respond(|_: &Vote| Err("abstains")).unwrap();
    /// let emitter = EventEmitter::builder().linker(linker).build();
    /// let votes = emitter.collect(Vote).timeout(Duration::from_secs(1)).await.unwrap();
    /// assert!(votes.contains(&Ok(true)));
    /// assert!(votes.contains(&Err(RequestError::Responder { request: "Vote", error: "abstains" })));
    /// # }
    /// ```
    pub fn timeout(
        self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Answer<R>>, RequestError<R::Error>>> + Send + 'static {
        let CollectBuilder {
            emitter,
            request,
            mut enough,
        } = self;
        async move {
            let name = R::NAME;
            if emitter.is_remote() {
                return Err(RequestError::Remote { request: name });
            }
            let (tx, mut rx) = mpsc::unbounded_channel();
            let reply = Arc::new(ReplyTo::<R>::Many(tx));
            let (gates, _) = emitter
                .emit_carrying(request, reply, |gates| !gates.is_empty())
                .map_err(|source| RequestError::Emit {
                    request: name,
                    source,
                })?;
            let mut answers = Vec::with_capacity(gates.len());
            if gates.is_empty() {
                return Ok(answers);
            }
            let mut sleep = pin!(timer(timeout));
            loop {
                let next = poll_fn(|cx| {
                    if let Poll::Ready(answer) = rx.poll_recv(cx) {
                        return Poll::Ready(answer);
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    Poll::Pending
                })
                .await;
                // `None`: the deadline, or every reply gone (the emission
                // finished, every responder that ran has answered).
                let Some(answer) = next else { break };
                answers.push(answer);
                if enough.as_mut().is_some_and(|enough| enough(&answers)) {
                    break;
                }
            }
            Ok(answers)
        }
    }
}

/// Requests to many responders.
impl EventEmitter {
    /// Asks every responder of the request `R` (declared `many`: see
    /// [`Request::MANY_RESPONDERS`]) and gathers the answers that arrive before
    /// a deadline, or before [`until`](CollectBuilder::until) says they are
    /// enough: `emitter.collect(r).timeout(d).await`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{Event, EventEmitter, EventLinker, Request, TokioProcessingService};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// struct Bid;
    /// impl Event for Bid {
    ///     const NAME: &'static str = "Bid";
    /// }
    /// impl Request for Bid {
    ///     type Response = u32;
    ///     type Error = std::convert::Infallible;
    ///     const MANY_RESPONDERS: bool = true;
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), pyventus_core::RequestError<std::convert::Infallible>> {
    /// let linker = EventLinker::new();
    /// linker.respond(|_: &Bid| Ok(10)).unwrap();
    /// linker.respond_async(|_: Arc<Bid>| async {
    ///     tokio::time::sleep(Duration::from_secs(5)).await; // too slow
    ///     Ok(5)
    /// }).unwrap();
    /// let emitter = EventEmitter::builder()
    ///     .processor(TokioProcessingService::default())
    ///     .linker(linker)
    ///     .build();
    /// let bids = emitter.collect(Bid).timeout(Duration::from_millis(50)).await?;
    /// assert_eq!(bids, [Ok(10)]);
    /// # Ok(()) }
    /// ```
    pub fn collect<R: Request>(&self, request: R) -> CollectBuilder<R> {
        CollectBuilder {
            emitter: self.clone(),
            request,
            enough: None,
        }
    }
}
