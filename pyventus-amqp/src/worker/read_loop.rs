//! A worker's loop and its supervision: connect, declare the topology, consume;
//! when the broker goes away, reconnect with backoff and do it all again; give
//! up after the configured time; on shutdown, drain what is in flight.
//!
//! lapin's own recovery is off: after a broker restart it cannot be relied on,
//! so each connection is made, declared and consumed from scratch here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::task::JoinSet;

use pyventus_core::remote::{Backoff, Health};

use super::{Worker, execute};
use crate::{Error, broker};

/// A live connection and the channel the worker consumes on (it publishes
/// nothing: dead letters go on a connection of their own).
struct Session {
    connection: Connection,
    channel: Channel,
}

/// How a session ended.
enum Ended {
    /// The worker was asked to stop: the session's connection is still open,
    /// for the deliveries in flight to settle on.
    Shutdown(Box<Session>),
    /// The broker went away (or cancelled the consumer).
    Lost(Error),
}

impl Worker {
    /// Takes and runs messages until [`shutdown`](Self::shutdown); returns
    /// once the messages in flight have finished (or the shutdown timeout has
    /// passed).
    ///
    /// Dropping the future instead cuts the messages in flight short with
    /// it, unacknowledged: the broker delivers them again (to another worker,
    /// or to the next run). Synchronous handlers already running on blocking
    /// threads finish there, their outcome unheard.
    ///
    /// # Errors
    ///
    /// [`Error::GaveUp`] after the broker was unreachable for longer than
    /// [`give_up_after`](crate::WorkerBuilder::give_up_after);
    /// [`Error::TopologyMismatch`] if the queue was declared anew with another
    /// delivery limit meanwhile.
    pub async fn run(&self) -> Result<(), Error> {
        let shared = &self.shared;
        let (initial, max) = shared.reconnect;
        let backoff = Backoff::exponential(initial, max.max(initial));
        // Attempts to reconnect since the broker went away.
        let mut attempts: u32 = 0;
        let mut down_since: Option<Instant> = None;
        let mut tasks = JoinSet::new();
        tracing::info!(
            target: "pyventus",
            queue = %shared.queue,
            consumer = %shared.consumer,
            concurrency = shared.concurrency,
            "worker started"
        );
        let (result, last) = loop {
            if shared.shutdown.is_cancelled() {
                break (Ok(()), None);
            }
            let opened = tokio::select! {
                () = shared.shutdown.cancelled() => break (Ok(()), None),
                opened = self.open() => opened,
            };
            let attempt = match opened {
                Ok((session, consumer)) => {
                    if down_since.take().is_some() {
                        shared
                            .stats
                            .reconnects
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        execute::METRICS.reconnected();
                        tracing::info!(target: "pyventus", queue = %shared.queue, "reconnected to RabbitMQ");
                    }
                    attempts = 0;
                    self.set_health(Health::Ready);
                    self.consume(session, consumer, &mut tasks).await
                }
                Err(err) => Ended::Lost(err),
            };
            let err = match attempt {
                Ended::Shutdown(session) => break (Ok(()), Some(session)),
                Ended::Lost(err @ Error::TopologyMismatch { .. }) => break (Err(err), None),
                Ended::Lost(err) => err,
            };
            let since = *down_since.get_or_insert_with(Instant::now);
            if let Some(limit) = shared.give_up_after
                && since.elapsed() >= limit
            {
                tracing::error!(target: "pyventus", queue = %shared.queue, "giving up: no broker for {:?}: {err}", since.elapsed());
                let gave_up = Error::GaveUp {
                    down_for: since.elapsed(),
                    source: Box::new(err),
                };
                break (Err(gave_up), None);
            }
            let delay = backoff.delay(attempts);
            attempts = attempts.saturating_add(1);
            self.set_health(Health::Reconnecting { since, attempts });
            tracing::warn!(target: "pyventus", queue = %shared.queue, "lost RabbitMQ ({err}); reconnecting in {delay:?}");
            tokio::select! {
                () = shared.shutdown.cancelled() => break (Ok(()), None),
                () = tokio::time::sleep(delay) => {}
            }
        };
        self.set_health(Health::Stopping);
        self.drain(&mut tasks).await;
        if let Some(session) = last {
            // A silent network would hold the close: 5 s at most, none after
            // `shutdown_now`.
            let close = session.connection.close(200, "OK".into());
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(5), close) => {}
                () = shared.abandon.cancelled() => {}
            }
        }
        shared.dead_letters.close().await;
        self.set_health(if result.is_ok() {
            Health::Stopped
        } else {
            Health::Failed
        });
        tracing::info!(target: "pyventus", queue = %shared.queue, stats = ?self.stats(), "worker stopped");
        result
    }

    /// Connects, declares the topology, and starts consuming.
    async fn open(&self) -> Result<(Session, Consumer), Error> {
        let shared = &self.shared;
        let connection = broker::connect(
            &shared.url,
            &format!("worker {}", shared.consumer),
            shared.connect_timeout,
        )
        .await?;
        shared.topology.declare(&connection).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(shared.concurrency, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                shared.topology.queue.as_str().into(),
                shared.consumer.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((
            Session {
                connection,
                channel,
            },
            consumer,
        ))
    }

    /// Hands each delivery to a task of its own until the worker is asked to
    /// stop or the broker goes away.
    async fn consume(
        &self,
        session: Session,
        mut consumer: Consumer,
        tasks: &mut JoinSet<()>,
    ) -> Ended {
        let shared = &self.shared;
        loop {
            tokio::select! {
                () = shared.shutdown.cancelled() => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => reap(joined),
                next = consumer.next() => match next {
                    Some(Ok(message)) => self.spawn(message, tasks),
                    Some(Err(err)) => return Ended::Lost(err.into()),
                    None => return Ended::Lost(Error::ConsumerCancelled {
                        queue: shared.topology.queue.clone(),
                    }),
                },
            }
        }
        // Stop the deliveries, and run those the broker already sent.
        let cancel = session.channel.basic_cancel(
            shared.consumer.as_str().into(),
            BasicCancelOptions::default(),
        );
        let collect = async {
            if tokio::time::timeout(Duration::from_secs(5), cancel)
                .await
                .is_ok()
            {
                while let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_secs(1), consumer.next()).await
                {
                    self.spawn(message, tasks);
                }
            }
        };
        // `shutdown_now` does not wait for them (a silent network would hold
        // this for seconds): unacknowledged, they are delivered again.
        tokio::select! {
            () = collect => {}
            () = shared.abandon.cancelled() => {}
        }
        Ended::Shutdown(Box::new(session))
    }

    fn spawn(&self, message: lapin::message::Delivery, tasks: &mut JoinSet<()>) {
        let worker = self.clone();
        tasks.spawn(async move {
            let slots = Arc::clone(&worker.shared.slots);
            // Never closed: the semaphore lives as long as the worker.
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            execute::handle(&worker.shared, message).await;
        });
    }

    /// Waits for the deliveries in flight, up to the shutdown timeout or
    /// [`shutdown_now`](crate::Worker::shutdown_now); cancels the rest (their
    /// messages are unacknowledged, so delivered again).
    async fn drain(&self, tasks: &mut JoinSet<()>) {
        let shared = &self.shared;
        let deadline = pyventus_core::remote::deadline(shared.shutdown_timeout);
        let cut = loop {
            if tasks.is_empty() {
                return;
            }
            tokio::select! {
                joined = tokio::time::timeout_at(deadline, tasks.join_next()) => match joined {
                    Ok(Some(joined)) => reap(joined),
                    Ok(None) => return,
                    Err(_) => break format!("after the shutdown timeout ({:?})", shared.shutdown_timeout),
                },
                () = shared.abandon.cancelled() => break "at `shutdown_now`".to_owned(),
            }
        };
        tracing::warn!(
            target: "pyventus",
            queue = %shared.queue,
            deliveries = tasks.len(),
            "deliveries still running {cut} are cancelled; the broker delivers them again"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Logs a delivery task that did not end normally (handling never panics;
/// this would be a bug of this crate).
fn reap(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined
        && err.is_panic()
    {
        tracing::error!(target: "pyventus", "a delivery task panicked: {err}; its message is delivered again");
    }
}
