//! Every policy option compiles warning-free in a crate that forbids unsafe
//! code and denies missing docs and all warnings, on every handler form.
#![forbid(unsafe_code)]
#![deny(missing_docs, warnings)]

use pyventus::{AnyEvent, Event, Linker, on, on_failure, once};

/// An event.
#[derive(Debug, Clone, Event)]
pub struct OrderPlaced {
    /// Its id.
    pub order_id: u64,
}

/// A namespace.
#[derive(Linker)]
pub struct Orders;

/// Every option at once, spelled as in the guide.
#[on(OrderPlaced, retries = 3, backoff = "100ms..5s", timeout = "2s", concurrency = 8)]
pub async fn charge(e: &OrderPlaced) -> anyhow::Result<u64> {
    Ok(e.order_id)
}

/// Its failure callback, which sees the `Exhausted` context.
#[on_failure(charge)]
pub fn charge_failed(err: &anyhow::Error) {
    let _ = err.downcast_ref::<pyventus::resilience::Exhausted>();
}

/// A synchronous handler: retries and limits, no timeout.
#[on(OrderPlaced, linker = Orders, retries = 1, concurrency = 1, busy = refuse)]
pub fn audit(e: &OrderPlaced) {
    let _ = e.order_id;
}

/// `blocking`, `inline` and a policy together; a constant backoff.
#[on(OrderPlaced, blocking, inline, retries = 2, backoff = "250us")]
pub fn heavy(e: OrderPlaced) -> u64 {
    e.order_id
}

/// A one-time handler of several events, with a policy.
#[once(OrderPlaced, "order.later", ..., retries = 5, backoff = "1m..1h", busy = wait, concurrency = 2)]
pub fn first(e: &AnyEvent) {
    let _ = e.name();
}

fn main() {}
