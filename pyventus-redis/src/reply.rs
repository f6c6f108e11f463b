//! Requests answered by a worker: the caller's reply list and the worker's
//! push to it.
//!
//! Each request has its own list, `pyventus:{<queue>}:reply:<envelope id>`,
//! named in the envelope (`pyventus_core::remote::REPLY_TO`). The caller
//! enqueues the request, then waits on the list with `BLPOP` on a connection
//! of its own (a blocking read on the shared one would hold up every command
//! behind it), up to its timeout. The worker pushes the encoded answer with
//! `RPUSH` and gives the list an expiry in the same transaction, unless the
//! caller's deadline has passed. Popping the only answer removes the list;
//! a caller that times out deletes it, and an answer pushed after that
//! expires within a second of the caller's deadline: no list is left behind.

use std::time::Duration;

use futures::future::BoxFuture;
use pyventus_core::remote::{Envelope, REPLY_TO, RemoteRequests, ReplySender};
use redis::aio::ConnectionManager;

use crate::connection;
use crate::{Error, RedisProcessingService};

/// The reply list of the request `id` on `queue`.
pub(crate) fn reply_key(queue: &str, id: &str) -> String {
    format!("pyventus:{{{queue}}}:reply:{id}")
}

impl RemoteRequests for RedisProcessingService {
    fn ask(
        &self,
        mut envelope: Envelope,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Option<String>, pyventus_core::Error>> {
        let service = self.clone();
        // On pyventus's own runtime: awaited from any executor, and finished
        // (the reply list deleted) even if the caller stops waiting first.
        Box::pin(pyventus_core::runtime::on_io_runtime(async move {
            let key = reply_key(service.queue(), &envelope.id);
            let deadline = tokio::time::Instant::now() + timeout;
            envelope.context.insert(REPLY_TO.to_owned(), key.clone());
            let waited =
                tokio::time::timeout_at(deadline, service.wait_for_reply(&envelope, &key, timeout))
                    .await;
            match waited {
                // Popping the only answer removed the list.
                Ok(Ok(Some(answer))) => Ok(Some(answer)),
                other => {
                    service.delete_reply(&key).await;
                    match other {
                        Ok(Err(err)) => Err(err.into()),
                        _ => Ok(None),
                    }
                }
            }
        }))
    }
}

impl RedisProcessingService {
    /// Enqueues the request and waits on its reply list.
    async fn wait_for_reply(
        &self,
        envelope: &Envelope,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<String>, Error> {
        let (client, timeouts) = self.reply_client();
        let mut conn = connection::blocking_reader(client, timeouts, timeout).await?;
        self.enqueue(envelope).await?;
        // `0` would block forever: the caller's deadline ends the wait anyway.
        let block = timeout.as_secs_f64().max(0.001);
        let popped: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(key)
            .arg(block)
            .query_async(&mut conn)
            .await?;
        Ok(popped.map(|(_, answer)| answer))
    }
}

/// How a [`Worker`](crate::Worker) sends answers: `RPUSH` and `PEXPIRE` on
/// the reply list, in one transaction.
pub(crate) struct Replies {
    conn: ConnectionManager,
}

impl Replies {
    pub(crate) fn new(conn: ConnectionManager) -> Self {
        Replies { conn }
    }
}

impl ReplySender for Replies {
    fn send<'a>(
        &'a self,
        to: &'a str,
        _id: &'a str,
        answer: String,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
            redis::pipe()
                .atomic()
                .rpush(to, answer)
                .ignore()
                .pexpire(to, ttl)
                .ignore()
                .query_async::<()>(&mut self.conn.clone())
                .await
                .map_err(|err| err.to_string())
        })
    }
}
