//! The future of `EventEmission::run`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;

use super::EventEmission;
use crate::RunReport;

/// The future of [`EventEmission::run`]: the emission until its first poll,
/// then, if some subscribers are still running, the future joining them.
// The emission unboxed on purpose: boxing it would cost an allocation per task.
#[allow(clippy::large_enum_variant)]
pub(super) enum RunFuture {
    Start(EventEmission),
    Joining(BoxFuture<'static, RunReport>),
    Done,
}

impl Future for RunFuture {
    type Output = RunReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RunReport> {
        let this = self.get_mut();
        if let RunFuture::Start(emission) = this {
            // Run in place: the emission is not moved unless some runs remain.
            let (report, pending) = emission.start();
            if pending.is_empty() {
                emission.end(&report);
                *this = RunFuture::Done;
                return Poll::Ready(report);
            }
            let RunFuture::Start(emission) = std::mem::replace(this, RunFuture::Done) else {
                unreachable!("matched above")
            };
            *this = RunFuture::Joining(emission.join(report, pending).boxed());
        }
        match this {
            RunFuture::Joining(joining) => {
                let report = std::task::ready!(joining.as_mut().poll(cx));
                *this = RunFuture::Done;
                Poll::Ready(report)
            }
            _ => panic!("`EventEmission::run`'s future polled after it finished"),
        }
    }
}
