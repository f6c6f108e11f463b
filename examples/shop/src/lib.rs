//! A crate of events and link-time handlers, and nothing a binary would call:
//! the way an application keeps its handlers apart from its entry points.
//!
//! A binary that depends on it must still name it once, or the linker leaves
//! it out and its handlers with it:
//!
//! ```
//! use shop as _; // links the crate, and so registers its handlers
//!
//! let handlers = pyventus::EventLinker::global().handler("shop::record_order");
//! assert_eq!(handlers.len(), 1);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use pyventus::{Event, Linker, on, on_failure};
use serde::{Deserialize, Serialize};

/// A customer placed an order. It derives serde's traits so it can cross a
/// process (the `redis_emitter` and `redis_worker` examples).
#[derive(Debug, Clone, Event, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: u64,
    /// Where the confirmation goes.
    pub email: String,
}

/// The back office's own namespace.
#[derive(Linker)]
pub struct BackOffice;

static ORDERS_RECORDED: AtomicU64 = AtomicU64::new(0);
static ORDERS_AUDITED: AtomicU64 = AtomicU64::new(0);

/// How many orders `record_order` has recorded in this process.
pub fn orders_recorded() -> u64 {
    ORDERS_RECORDED.load(Ordering::SeqCst)
}

/// How many orders the back office has audited in this process.
pub fn orders_audited() -> u64 {
    ORDERS_AUDITED.load(Ordering::SeqCst)
}

#[on(OrderPlaced)]
fn record_order(order: &OrderPlaced) {
    ORDERS_RECORDED.fetch_add(1, Ordering::SeqCst);
    println!("order {} recorded", order.order_id);
}

#[on(OrderPlaced)]
async fn send_confirmation(order: &OrderPlaced) -> anyhow::Result<()> {
    // The mail service's round trip.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    if !order.email.contains('@') {
        anyhow::bail!(
            "cannot confirm order {}: `{}` is not an address",
            order.order_id,
            order.email
        );
    }
    println!(
        "confirmation of order {} sent to {}",
        order.order_id, order.email
    );
    Ok(())
}

#[on_failure(send_confirmation)]
fn confirmation_failed(err: &anyhow::Error) {
    println!("{err}");
}

#[on(OrderPlaced, linker = BackOffice)]
fn audit_order() {
    ORDERS_AUDITED.fetch_add(1, Ordering::SeqCst);
}
