//! A connection that publishes, with confirms, and consumes nothing: the
//! processing service's, and each worker's for its dead letters.
//!
//! Publishing and consuming never share a connection (RabbitMQ's own
//! guidance): under a memory or disk alarm the broker blocks every connection
//! that publishes, and a consumer on a blocked connection could not
//! acknowledge anything, so an alarm caused by a backlog could never drain.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection};

use crate::Error;
use crate::broker::{self, Topology};

/// What a publisher declares when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declare {
    /// The queue and its dead letters, if the queue does not exist (the
    /// processing service: messages published before any worker wait for one).
    QueueIfMissing,
    /// The dead-letter exchange and queue, and their binding (a worker's dead
    /// letters: what was deleted meanwhile is there again).
    DeadLetters,
}

/// One connection and its channel in confirm mode, made when first needed and
/// again after it failed.
///
/// A mutex guards only the handle to the current link (never held across
/// I/O); connecting is serialized, so that one caller connects while the
/// others wait for it.
pub(crate) struct Publisher {
    url: String,
    /// The connection's name, after `pyventus `.
    role: String,
    topology: Topology,
    declare: Declare,
    connect_timeout: Duration,
    link: Mutex<Option<Link>>,
    connecting: tokio::sync::Mutex<()>,
}

/// A connection and its channel in confirm mode.
#[derive(Clone)]
pub(crate) struct Link {
    /// Kept so that the connection lives as long as the channel is in use (it
    /// closes when the last handle drops); its address tells one link from the
    /// next.
    connection: Arc<Connection>,
    pub(crate) channel: Channel,
}

impl Publisher {
    pub(crate) fn new(
        url: &str,
        role: String,
        topology: Topology,
        declare: Declare,
        connect_timeout: Duration,
    ) -> Self {
        Publisher {
            url: url.to_owned(),
            role,
            topology,
            declare,
            connect_timeout,
            link: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The current link, connecting first if there is none or its channel
    /// closed. The connection is made on pyventus's own runtime, so that a
    /// synchronous `emit` can block on it from any runtime, a current-thread
    /// one included.
    pub(crate) async fn link(&self) -> Result<Link, Error> {
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let (url, role, topology, declare, timeout) = (
            self.url.clone(),
            self.role.clone(),
            self.topology.clone(),
            self.declare,
            self.connect_timeout,
        );
        let link = pyventus_core::runtime::on_io_runtime(async move {
            let connection = broker::connect(&url, &role, timeout).await?;
            match declare {
                Declare::QueueIfMissing => {
                    if !topology.exists(&connection).await? {
                        topology.declare(&connection).await?;
                    }
                }
                Declare::DeadLetters => declare_dead(&topology, &connection).await?,
            }
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, Error>(Link {
                connection: Arc::new(connection),
                channel,
            })
        })
        .await?;
        *self.slot() = Some(link.clone());
        Ok(link)
    }

    /// Declares the dead-letter exchange and queue again on `link`'s
    /// connection (a channel of its own): for a dead letter that came back
    /// unroutable, its queue deleted.
    pub(crate) async fn declare_dead_letters(&self, link: &Link) -> Result<(), Error> {
        declare_dead(&self.topology, &link.connection).await
    }

    /// Drops `link` if it is still the current one: the next publish connects
    /// anew (and declares again). Its connection closes once no one uses it.
    pub(crate) fn forget(&self, link: &Link) {
        let mut slot = self.slot();
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(&current.connection, &link.connection))
        {
            *slot = None;
        }
    }

    /// Closes the connection, if there is one.
    pub(crate) async fn close(&self) {
        let link = self.slot().take();
        if let Some(link) = link {
            let _ = link.connection.close(200, "OK".into()).await;
        }
    }

    fn current(&self) -> Option<Link> {
        self.slot()
            .as_ref()
            .filter(|link| link.channel.status().connected())
            .cloned()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Link>> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Declares the dead letters on a channel of their own (a refused declaration
/// closes its channel).
async fn declare_dead(topology: &Topology, connection: &Connection) -> Result<(), Error> {
    let channel = connection.create_channel().await?;
    topology.declare_dead(&channel).await?;
    broker::close(&channel).await;
    Ok(())
}
