//! Where a responder's answer goes: the reply a request's emission carries as
//! its context, read by the responder when its run starts.
//!
//! Concurrency: the one-answer reply is a oneshot sender behind a mutex, taken
//! by the first answer (only its responder answers); the many-answer reply is
//! an unbounded channel's sender, shared. The emission holds the reply until
//! it finishes, so a reply dropped unanswered means the run never answered:
//! the waiting caller wakes then, and learns why from the responder's gate.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::lifecycle::answer::RemoteAnswer;
use crate::request::{Answer, Request, RequestError};
use crate::{HandlerPanic, current_emission};

/// The reply of one request of type `R`.
pub(crate) enum ReplyTo<R: Request> {
    /// `request`: the only answer.
    One(Mutex<Option<oneshot::Sender<Answer<R>>>>),
    /// `collect`: every responder's.
    Many(mpsc::UnboundedSender<Answer<R>>),
}

/// Where the calling responder's answer goes: a caller in this process, or
/// (the responder runs in a worker) the slot its worker sends from.
pub(crate) enum Reply<R: Request> {
    Local(Arc<ReplyTo<R>>),
    Remote(Arc<RemoteAnswer>),
}

impl<R: Request> Reply<R> {
    /// The reply of the request the calling responder runs for, if it runs
    /// for one (a request emitted with `emit` has none: nobody waits).
    pub(crate) fn current() -> Option<Self> {
        let current = current_emission()?;
        if let Some(local) = current.context::<ReplyTo<R>>() {
            return Some(Reply::Local(local));
        }
        current.remote_answer.clone().map(Reply::Remote)
    }

    fn send(&self, answer: Answer<R>) {
        match self {
            Reply::Local(reply) => reply.send(answer),
            Reply::Remote(slot) => {
                if let Some(codec) = R::__pyventus_answer_codec() {
                    slot.put((codec.encode)(answer));
                }
            }
        }
    }
}

impl<R: Request> ReplyTo<R> {
    /// Hands over an answer. A caller that stopped waiting (its timeout
    /// passed) is not an error: the answer is dropped.
    pub(crate) fn send(&self, answer: Answer<R>) {
        match self {
            ReplyTo::One(slot) => {
                let tx = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(tx) = tx {
                    let _ = tx.send(answer);
                }
            }
            ReplyTo::Many(tx) => {
                let _ = tx.send(answer);
            }
        }
    }
}

/// What a responder's call became: its answer, its error, or its panic.
pub(crate) fn answer<R: Request>(
    call: std::thread::Result<Result<R::Response, R::Error>>,
) -> Answer<R> {
    match call {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(RequestError::Responder {
            request: R::NAME,
            error,
        }),
        Err(panic) => Err(RequestError::Panicked {
            request: R::NAME,
            panic: HandlerPanic::from_payload(&*panic),
        }),
    }
}

/// Hands `answer` to `reply`, or, when nobody asked, logs a failure that
/// would otherwise go unseen.
pub(crate) fn settle<R: Request>(reply: Option<Reply<R>>, answer: Answer<R>) {
    match reply {
        Some(reply) => reply.send(answer),
        None => {
            if let Err(RequestError::Panicked { panic, .. }) = &answer {
                tracing::error!(
                    target: "pyventus",
                    request = R::NAME,
                    "the responder of a request nobody waited for panicked: {}",
                    panic.message()
                );
            }
        }
    }
}
