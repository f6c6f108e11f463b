//! Requests answered by a worker, over RabbitMQ's direct reply-to: no reply
//! queue at all.
//!
//! The caller's processing service keeps one connection for requests, whose
//! channel consumes the pseudo-queue `amq.rabbitmq.reply-to` (no-ack, as
//! direct reply-to requires) and publishes the requests, each with
//! `reply_to` `amq.rabbitmq.reply-to` (which the broker turns into this
//! channel's address) and `correlation_id` its envelope's id. One task reads
//! the answers and hands each to the request waiting under its correlation
//! id; a request that times out stops waiting, and an answer that comes
//! after it is dropped. The worker publishes its answer to the `reply_to` it
//! was given, with an expiration of the time left to the caller's deadline.
//! Nothing is declared, so nothing is left behind.
//!
//! Concurrency: a mutex guards the map of waiting requests (never held
//! across I/O); an async mutex makes one caller connect while the others
//! wait for its link; the answers are read on one task, on pyventus's own
//! runtime, which runs no user code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use pyventus_core::remote::{Envelope, RemoteRequests, ReplySender};
use tokio::sync::oneshot;

use crate::publisher::Publisher;
use crate::{AmqpProcessingService, Error, broker, envelope};

/// The pseudo-queue of direct reply-to.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The requests waiting for their answers, by correlation id.
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>;

/// A processing service's requests: their connection, made when first
/// needed and again after it failed, and who waits for what.
pub(crate) struct Requests {
    url: String,
    connect_timeout: Duration,
    link: tokio::sync::Mutex<Option<Link>>,
    waiting: Waiting,
}

#[derive(Clone)]
struct Link {
    /// Kept so that the connection lives as long as the channel.
    _connection: Arc<Connection>,
    channel: Channel,
}

impl Requests {
    pub(crate) fn new(url: &str, connect_timeout: Duration) -> Self {
        Requests {
            url: url.to_owned(),
            connect_timeout,
            link: tokio::sync::Mutex::new(None),
            waiting: Arc::default(),
        }
    }

    /// The channel that consumes the answers, connecting first if needed.
    async fn link(&self) -> Result<Link, Error> {
        let mut slot = self.link.lock().await;
        if let Some(link) = slot.as_ref().filter(|l| l.channel.status().connected()) {
            return Ok(link.clone());
        }
        let (url, timeout, waiting) =
            (self.url.clone(), self.connect_timeout, self.waiting.clone());
        let link = pyventus_core::runtime::on_io_runtime(async move {
            let connection = broker::connect(&url, "requests", timeout).await?;
            let channel = connection.create_channel().await?;
            let mut answers = channel
                .basic_consume(
                    DIRECT_REPLY_TO.into(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            tokio::spawn(async move {
                while let Some(Ok(answer)) = answers.next().await {
                    let Some(id) = answer.properties.correlation_id() else {
                        continue;
                    };
                    let waiter = waiting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(id.as_str());
                    if let (Some(waiter), Ok(text)) = (waiter, String::from_utf8(answer.data)) {
                        // Its caller may have stopped waiting: dropped.
                        let _ = waiter.send(text);
                    }
                }
            });
            Ok::<_, Error>(Link {
                _connection: Arc::new(connection),
                channel,
            })
        })
        .await?;
        *slot = Some(link.clone());
        Ok(link)
    }

    /// Publishes the request and waits for its answer, up to `timeout`
    /// (connecting first counts: a broker that cannot be reached is a
    /// timeout, not a longer wait).
    async fn ask(
        &self,
        envelope: &Envelope,
        queue: &str,
        timeout: Duration,
    ) -> Result<Option<String>, Error> {
        let id = envelope.id.clone();
        let asked = async {
            let link = self.link().await?;
            let (tx, rx) = oneshot::channel();
            self.waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.clone(), tx);
            let properties = envelope::properties(envelope)?
                .with_reply_to(DIRECT_REPLY_TO.into())
                .with_correlation_id(id.as_str().into());
            link.channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    envelope::body(envelope),
                    properties,
                )
                .await?;
            Ok::<_, Error>(rx.await.ok())
        };
        let answer = tokio::time::timeout(timeout, asked).await;
        // Answered, failed or timed out: nobody waits under this id any more.
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        answer.unwrap_or(Ok(None))
    }
}

impl RemoteRequests for AmqpProcessingService {
    fn ask(
        &self,
        envelope: Envelope,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Option<String>, pyventus_core::Error>> {
        let service = self.clone();
        Box::pin(pyventus_core::runtime::on_io_runtime(async move {
            let (requests, queue) = service.requests();
            Ok(requests.ask(&envelope, queue, timeout).await?)
        }))
    }
}

/// How a [`Worker`](crate::Worker) sends answers: published to the caller's
/// direct reply-to address, on the worker's publishing connection.
pub(crate) struct Replies {
    publisher: Publisher,
}

impl Replies {
    pub(crate) fn new(publisher: Publisher) -> Self {
        Replies { publisher }
    }
}

impl ReplySender for Replies {
    fn send<'a>(
        &'a self,
        to: &'a str,
        id: &'a str,
        answer: String,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let link = self.publisher.link().await.map_err(|e| e.to_string())?;
            let properties = lapin::BasicProperties::default()
                .with_content_type(envelope::CONTENT_TYPE.into())
                .with_correlation_id(id.into())
                .with_expiration(ttl.as_millis().to_string().as_str().into());
            // Not mandatory: a caller that has gone is not an error.
            let confirm = link
                .channel
                .basic_publish(
                    "".into(),
                    to.into(),
                    BasicPublishOptions::default(),
                    answer.as_bytes(),
                    properties,
                )
                .await;
            match confirm {
                Ok(confirm) => confirm.await.map(drop).map_err(|e| e.to_string()),
                Err(err) => {
                    self.publisher.forget(&link);
                    Err(err.to_string())
                }
            }
        })
    }
}
