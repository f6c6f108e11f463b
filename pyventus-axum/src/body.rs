//! The response body that dispatches its request's emissions once sent or dropped.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

use crate::request_queue::RequestQueue;

/// A response body that dispatches its request's committed emissions once it
/// has been handed to the server in full, or when it is dropped unsent (the
/// client went away). The body type of every response behind
/// [`BackgroundEmitterLayer`](crate::BackgroundEmitterLayer); nothing to build
/// by hand (see the layer's example).
pub struct BackgroundBody {
    inner: Body,
    queue: Option<Arc<RequestQueue>>,
}

impl BackgroundBody {
    pub(crate) fn new(inner: Body, queue: Arc<RequestQueue>) -> Self {
        BackgroundBody {
            inner,
            queue: Some(queue),
        }
    }

    /// A body with no emissions to dispatch.
    pub(crate) fn plain(inner: Body) -> Self {
        BackgroundBody { inner, queue: None }
    }

    fn dispatch(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.dispatch();
        }
    }
}

impl http_body::Body for BackgroundBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            self.dispatch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for BackgroundBody {
    fn drop(&mut self) {
        self.dispatch();
    }
}

impl fmt::Debug for BackgroundBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundBody")
            .field("dispatched", &self.queue.is_none())
            .finish_non_exhaustive()
    }
}
