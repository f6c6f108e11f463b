//! What a broker implements for requests answered by a worker in another
//! process: the caller's half ([`RemoteRequests`]: send the request's
//! envelope with a reply address, wait for the encoded answer there) and the
//! worker's ([`ReplySender`]: put the encoded answer at that address).
//!
//! The reply address and the caller's deadline travel in the envelope's
//! `context`, under [`REPLY_TO`] and [`REPLY_BY`]; the envelope's id is the
//! correlation id. [`Inbound::run`](super::Inbound::run) collects the
//! responder's answer and hands it to the worker's [`ReplySender`]: a broker
//! crate only moves the bytes.

use std::time::Duration;

use futures::future::BoxFuture;

use super::Envelope;
use crate::Error;

/// The envelope `context` key of a request's reply address (a Redis list
/// key, a RabbitMQ reply queue): where the worker sends its answer.
pub const REPLY_TO: &str = "pyventus-reply-to";

/// The envelope `context` key of the caller's deadline, in milliseconds
/// since the Unix epoch: past it nobody waits, and the worker sends nothing.
pub const REPLY_BY: &str = "pyventus-reply-by";

/// A processing service that can send a request to a worker and wait for
/// its answer (see [`ProcessingService::remote_requests`](crate::ProcessingService::remote_requests)).
///
/// # Examples
///
/// ```
/// use futures::future::BoxFuture;
/// use pyventus_core::remote::{Envelope, REPLY_TO, RemoteRequests};
/// use std::time::Duration;
///
/// /// Answers every request itself, as a worker would: `{"Ok": null}`.
/// struct Loopback;
/// impl RemoteRequests for Loopback {
///     fn ask(
///         &self,
///         mut envelope: Envelope,
///         _timeout: Duration,
///     ) -> BoxFuture<'static, Result<Option<String>, pyventus_core::Error>> {
///         envelope.context.insert(REPLY_TO.into(), format!("loopback:{}", envelope.id));
///         Box::pin(async { Ok(Some(r#"{"Ok":null}"#.to_owned())) })
///     }
/// }
/// # drop(Loopback.ask(Envelope::new("Ping", "null"), Duration::from_secs(1)));
/// ```
pub trait RemoteRequests: Send + Sync {
    /// Sends `envelope` (the caller's deadline already in its context, under
    /// [`REPLY_BY`]) with a reply address the worker learns (under
    /// [`REPLY_TO`] in its context, or however the broker carries one), and
    /// waits up to `timeout` for the encoded answer: `None` if none came in
    /// time. Leaves nothing behind at the reply address either way.
    ///
    /// # Errors
    ///
    /// The broker refused the request or failed while it waited.
    fn ask(
        &self,
        envelope: Envelope,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Option<String>, Error>>;
}

/// How a worker sends an encoded answer to a reply address, given to
/// [`Inbound::reply_sender`](super::Inbound::reply_sender).
///
/// # Examples
///
/// ```
/// use futures::future::BoxFuture;
/// use pyventus_core::remote::ReplySender;
/// use std::time::Duration;
///
/// struct Log;
/// impl ReplySender for Log {
///     fn send<'a>(
///         &'a self,
///         to: &'a str,
///         id: &'a str,
///         answer: String,
///         _ttl: Duration,
///     ) -> BoxFuture<'a, Result<(), String>> {
///         Box::pin(async move {
///             println!("{to} <- {answer} (the answer of {id})");
///             Ok(())
///         })
///     }
/// }
/// # drop(Log.send("reply", "id", String::new(), Duration::ZERO));
/// ```
pub trait ReplySender: Send + Sync {
    /// Puts `answer` to the request `id` (the envelope's id, its correlation
    /// id) at `to`, where it may stay at most `ttl` unread.
    ///
    /// # Errors
    ///
    /// Why the broker did not take it (logged by the worker: the caller
    /// times out).
    fn send<'a>(
        &'a self,
        to: &'a str,
        id: &'a str,
        answer: String,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), String>>;
}
