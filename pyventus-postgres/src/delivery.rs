//! What a handler learns of the delivery it runs in: [`Delivery`] and
//! [`current_delivery`], with the delivery's lease.

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a relay is delivering, for the handlers that want to know: the event
/// id is the same on every attempt, so a handler can deduplicate on it; the
/// lease says whether this relay still holds the event.
///
/// A relay holds each event it runs under a lease, renewed while the handlers
/// run. If this process stops answering for longer than the lease (paused,
/// cut off from PostgreSQL), another relay claims the event and runs its
/// handlers too; this relay then cannot settle it any more (its fence is
/// stale), and [`lease_lost`](Self::lease_lost) turns true once it notices.
///
/// # Examples
///
/// ```
/// use pyventus_postgres::current_delivery;
///
/// /// Inside a handler a relay runs: the event's id, to deduplicate on.
/// fn event_id() -> Option<uuid::Uuid> {
///     current_delivery().map(|d| d.event_id)
/// }
/// assert!(event_id().is_none()); // not in a relay here
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivery {
    /// The event's id (a UUIDv7), the one `emit` returned.
    pub event_id: Uuid,
    /// The event's row in the outbox (`seq`): its place in commit order among
    /// the events of its partition key.
    pub seq: i64,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The event's partition key, if it was emitted with one.
    pub partition_key: Option<String>,
    lease: Lease,
}

impl Delivery {
    pub(crate) fn new(
        event_id: Uuid,
        seq: i64,
        attempt: u32,
        partition_key: Option<String>,
        lease: Lease,
    ) -> Self {
        Delivery {
            event_id,
            seq,
            attempt,
            partition_key,
            lease,
        }
    }

    /// Whether another relay has taken the event over (see [`Delivery`]).
    pub fn lease_lost(&self) -> bool {
        self.lease.is_lost()
    }

    /// Resolves once another relay has taken the event over: race it against
    /// long work to stop early.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn crunch() {}
    /// async fn long_job() {
    ///     match pyventus_postgres::current_delivery() {
    ///         Some(delivery) => tokio::select! {
    ///             () = crunch() => {}
    ///             () = delivery.until_lease_lost() => tracing::warn!("taken over; stopping"),
    ///         },
    ///         None => crunch().await,
    ///     }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(long_job());
    /// ```
    pub async fn until_lease_lost(&self) {
        self.lease.0.cancelled().await;
    }
}

/// The delivery the calling handler runs in, when a [`Relay`](crate::Relay)
/// runs it: asynchronous, synchronous and `blocking` handlers alike.
///
/// # Examples
///
/// ```
/// assert!(pyventus_postgres::current_delivery().is_none());
/// ```
pub fn current_delivery() -> Option<Delivery> {
    pyventus_core::current_emission()?
        .context::<Delivery>()
        .map(|delivery| (*delivery).clone())
}

/// Whether this relay still holds an event; shared by the delivery's handlers,
/// the relay's lease keeper and its settler.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lease(
    CancellationToken,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

impl Lease {
    pub(crate) fn is_lost(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Marks the lease lost; `true` for the first to notice (the keeper or
    /// the settler), so that a loss is counted once.
    pub(crate) fn lose(&self) -> bool {
        let first = !self.1.swap(true, std::sync::atomic::Ordering::AcqRel);
        self.0.cancel();
        first
    }
}
