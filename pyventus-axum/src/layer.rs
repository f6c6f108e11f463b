//! The tower layer that gives each request its queue, and runs the handler
//! detached from its client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tower_layer::Layer;
use tower_service::Service;

use pyventus_core::{EventLinker, ProcessingService, TokioProcessingService, debug_from_env};

use crate::body::BackgroundBody;
use crate::request_queue::{RequestQueue, Shared};

/// A tower layer that gives each request a queue of emissions, run after its
/// response is sent. See [the module docs](crate).
///
/// A cheap `Clone` handle: keep one to [`close`](Self::close) and
/// [`wait`](Self::wait) at shutdown.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::post};
/// use pyventus_axum::{BackgroundEmitter, BackgroundEmitterLayer};
/// use pyventus_core::{EventLinker, ExecutorProcessingService};
///
/// async fn handler(emitter: BackgroundEmitter) {
///     emitter.emit_named("Audit", ()).unwrap();
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let layer = BackgroundEmitterLayer::new()
///     .linker(EventLinker::global()) // the default
///     .processor(ExecutorProcessingService::with_threads(2)) // default: tokio
///     .commit_if(|status| status.is_success()) // default: below 400
///     .detach_from_client(true); // the default
/// let app: Router = Router::new().route("/audit", post(handler)).layer(layer.clone());
/// # drop(app);
///
/// // At shutdown, after the server stopped taking requests:
/// layer.close();
/// layer.wait().await;
/// # }
/// ```
#[derive(Clone)]
pub struct BackgroundEmitterLayer {
    shared: Arc<Shared>,
}

impl BackgroundEmitterLayer {
    /// A layer on the global linker, running emissions on a
    /// [`TokioProcessingService`], committing them on responses below 400, with
    /// handlers detached from their client.
    pub fn new() -> Self {
        BackgroundEmitterLayer {
            shared: Arc::new(Shared {
                linker: EventLinker::global(),
                debug: debug_from_env(),
                policy: Arc::new(|status: StatusCode| status.as_u16() < 400),
                processor: Arc::new(TokioProcessingService::default()),
                tracker: TaskTracker::new(),
                detach: true,
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        BackgroundEmitterLayer {
            shared: Arc::new(shared),
        }
    }

    /// The linker whose subscribers receive the events.
    #[must_use]
    pub fn linker(self, linker: EventLinker) -> Self {
        self.with(|s| s.linker = linker)
    }

    /// The processing service that runs the committed emissions. Any works:
    /// tokio (the default), a thread pool, a distributed one.
    #[must_use]
    pub fn processor(self, processor: impl ProcessingService) -> Self {
        self.with(|s| s.processor = Arc::new(processor))
    }

    /// Which responses commit their request's emissions. Default: a status below 400.
    #[must_use]
    pub fn commit_if(self, policy: impl Fn(StatusCode) -> bool + Send + Sync + 'static) -> Self {
        self.with(|s| s.policy = Arc::new(policy))
    }

    /// Runs each handler on a task of its own (the default), so that a client
    /// that disconnects mid-handler cancels neither the handler nor its
    /// emissions. Without it, a disconnect drops the handler's future and what it
    /// had emitted.
    #[must_use]
    pub fn detach_from_client(self, detach: bool) -> Self {
        self.with(|s| s.detach = detach)
    }

    /// Logs each emission (see the emitter's debug mode).
    #[must_use]
    pub fn debug(self, debug: bool) -> Self {
        self.with(|s| s.debug = debug)
    }

    /// Stops `wait` from waiting for work started later: call it once the server
    /// takes no more requests. Work still starts and runs.
    pub fn close(&self) -> bool {
        self.shared.tracker.close()
    }

    /// Completes at Ctrl-C or SIGTERM (what systemd and Kubernetes send to
    /// stop a service), then [closes](Self::close) the layer: the future to
    /// hand `axum::serve(..).with_graceful_shutdown(..)`, before
    /// [`wait`](Self::wait)ing for the handlers still running after the
    /// responses, as a worker's `run_until_signal` drains its deliveries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use axum::Router;
    /// # use pyventus_axum::BackgroundEmitterLayer;
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let layer = BackgroundEmitterLayer::new();
    /// let app = Router::new().layer(layer.clone());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(layer.shutdown_signal())
    ///     .await?;
    /// layer.wait().await; // the handlers after the last responses
    /// # Ok(()) }
    /// ```
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let layer = self.clone();
        async move {
            pyventus_core::shutdown_signal().await;
            tracing::info!(target: "pyventus", pending = layer.pending(), "signal received: draining the handlers after the responses");
            layer.close();
        }
    }

    /// Waits, once [closed](Self::close), until every detached handler and every
    /// dispatched emission has finished.
    pub async fn wait(&self) {
        self.shared.tracker.wait().await;
    }

    /// How many detached handlers and dispatches are running.
    pub fn pending(&self) -> usize {
        self.shared.tracker.len()
    }
}

impl Default for BackgroundEmitterLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BackgroundEmitterLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundEmitterLayer")
            .field("linker", &self.shared.linker.name())
            .field("detach_from_client", &self.shared.detach)
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for BackgroundEmitterLayer {
    type Service = BackgroundEmitterService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BackgroundEmitterService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`BackgroundEmitterLayer`].
#[derive(Clone)]
pub struct BackgroundEmitterService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for BackgroundEmitterService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundEmitterService")
            .finish_non_exhaustive()
    }
}

/// Settles the queue by the handler's response and wraps its body.
fn finish<B>(response: Response<B>, queue: Arc<RequestQueue>) -> Response<BackgroundBody>
where
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    queue.settle(response.status());
    response.map(|body| BackgroundBody::new(Body::new(body), queue))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BackgroundEmitterService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<BackgroundBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let queue = RequestQueue::new(self.shared.clone());
        request.extensions_mut().insert(queue.clone());
        // The ready service answers this call; a clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let route = queue.route(async move { inner.call(request).await });
        let handled = async move {
            let response = route.await?;
            Ok(finish(response, queue))
        };
        if !self.shared.detach {
            return Box::pin(handled);
        }
        // Detached: if the client goes away, hyper drops the future below, not
        // the handler's task. The response it then cannot hand over is dropped
        // inside the task, which dispatches its committed emissions while the
        // task still counts on the tracker (so `wait` cannot miss them).
        let (tx, rx) = oneshot::channel();
        self.shared.tracker.spawn(async move {
            if let Err(unsent) = tx.send(handled.await) {
                drop(unsent);
            }
        });
        Box::pin(async move {
            match rx.await {
                Ok(result) => result,
                // The handler panicked; its queue went with it, unsettled, so
                // nothing it emitted runs.
                Err(_) => {
                    tracing::error!(target: "pyventus", "a detached handler panicked");
                    let response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    Ok(response.map(BackgroundBody::plain))
                }
            }
        })
    }
}
