//! What a handler learns of the delivery it runs in: [`Delivery`] and
//! [`current_delivery`], with the delivery's lease.

use tokio_util::sync::CancellationToken;

/// What a worker is delivering, for the handlers that want to know: the
/// envelope id is the same on every redelivery, so a handler can deduplicate;
/// the lease says whether this worker still holds the entry.
///
/// A worker holds each entry it runs under a lease, renewed while the
/// handlers run. If this process stops answering for longer than the
/// visibility timeout (paused, cut off from Redis), another worker may claim
/// the entry and run it too. When this worker notices, it stops renewing, will
/// not settle the entry (the new holder does), and
/// [`lease_lost`](Self::lease_lost) turns true: a long handler can check it,
/// or await [`until_lease_lost`](Self::until_lease_lost), to stop early.
///
/// # Examples
///
/// ```
/// use pyventus_redis::{Delivery, current_delivery};
///
/// /// Inside a handler a worker runs: skip an envelope already handled.
/// fn already_done(done: &std::collections::HashSet<String>) -> bool {
///     current_delivery().is_some_and(|d: Delivery| done.contains(&d.envelope_id))
/// }
/// assert!(!already_done(&Default::default()));
/// ```
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The envelope's id: the same across redeliveries, for deduplication.
    pub envelope_id: String,
    /// The stream entry's id.
    pub entry_id: String,
    /// How many times the entry has been delivered, this time included.
    pub attempt: u64,
    lease: Lease,
}

impl Delivery {
    pub(crate) fn new(envelope_id: String, entry_id: String, attempt: u64, lease: Lease) -> Self {
        Delivery {
            envelope_id,
            entry_id,
            attempt,
            lease,
        }
    }

    /// Whether another worker has taken the entry over (see [`Delivery`]).
    pub fn lease_lost(&self) -> bool {
        self.lease.is_lost()
    }

    /// Resolves once another worker has taken the entry over: race it against
    /// long work to stop early.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn crunch() {}
    /// /// A handler that stops when its entry went to another worker.
    /// async fn long_job() {
    ///     match pyventus_redis::current_delivery() {
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

impl PartialEq for Delivery {
    fn eq(&self, other: &Self) -> bool {
        (&self.envelope_id, &self.entry_id, self.attempt)
            == (&other.envelope_id, &other.entry_id, other.attempt)
    }
}

impl Eq for Delivery {}

/// The delivery the calling handler runs in, when a [`Worker`](crate::Worker)
/// runs it: asynchronous, synchronous and `blocking` handlers alike.
///
/// # Examples
///
/// ```
/// // Outside a worker there is none.
/// assert!(pyventus_redis::current_delivery().is_none());
/// ```
pub fn current_delivery() -> Option<Delivery> {
    pyventus_core::remote::attached()
}

/// Whether this worker still holds an entry; shared by the delivery's handlers
/// and the worker's lease keeper.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lease(CancellationToken);

impl Lease {
    pub(crate) fn is_lost(&self) -> bool {
        self.0.is_cancelled()
    }

    pub(crate) fn lose(&self) {
        self.0.cancel();
    }
}

/// A handler takes its delivery as a parameter after its event, as it takes
/// a [`State`](pyventus_core::State): `fn charge(e: &OrderPlaced, delivery:
/// Delivery)`. Outside a Redis worker (an in-process emitter, say) the
/// delivery fails with an error that says so, before the handler runs; a
/// handler that runs in both places reads [`current_delivery`] instead.
///
/// # Examples
///
/// ```
/// use pyventus_core::FromDelivery;
/// use pyventus_redis::Delivery;
///
/// fn assert_extractor<T: FromDelivery>() {}
/// assert_extractor::<Delivery>();
/// ```
impl pyventus_core::FromDelivery for Delivery {
    fn from_delivery(
        _: &pyventus_core::DeliveryContext<'_>,
    ) -> Result<Self, pyventus_core::anyhow::Error> {
        pyventus_core::remote::attached_in_worker("pyventus::redis::Delivery", "Redis")
    }
}
