//! `inline` on every synchronous handler form compiles warning-free in a crate
//! that forbids unsafe code and denies missing docs and all warnings.
#![forbid(unsafe_code)]
#![deny(missing_docs, warnings)]

use std::sync::Arc;

use pyventus::{AnyEvent, Event, on, on_success, once};

/// An event.
#[derive(Debug, Clone, Event)]
pub struct OrderCreated {
    /// Its id.
    pub order_id: u64,
}

/// A receipt.
#[derive(Debug)]
pub struct Receipt(pub u64);

/// By reference, fallible, with a success callback.
#[on(OrderCreated, inline)]
pub fn by_ref(e: &OrderCreated) -> anyhow::Result<Receipt> {
    Ok(Receipt(e.order_id))
}

#[on_success(by_ref)]
fn receipt(r: Receipt) {
    let _ = r.0;
}

/// By value, a plain value.
#[on(OrderCreated, inline, blocking)]
fn by_value(e: OrderCreated) -> u64 {
    e.order_id
}

/// Shared.
#[once(OrderCreated, inline)]
fn shared(e: Arc<OrderCreated>) {
    let _ = e;
}

/// Erased, several events, nothing.
#[on(OrderCreated, "GreetEvent", inline)]
fn erased(e: &AnyEvent) {
    let _ = e.name();
}

#[on(..., inline)]
fn nothing() {}

/// A named payload.
#[on("GreetEvent", inline)]
fn named(name: &String) {
    let _ = name;
}

fn main() {}
