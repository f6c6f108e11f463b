//! Every handler form pyventus accepts compiles warning-free in a crate that
//! forbids unsafe code and denies missing docs and all warnings.
#![forbid(unsafe_code)]
#![deny(missing_docs, warnings)]

use std::any::Any;
use std::sync::Arc;

use pyventus::{AnyEvent, Event, Linker, on, on_failure, on_success, once};

/// An event.
#[derive(Debug, Clone, Event)]
pub struct OrderCreated {
    /// Its id.
    pub order_id: u64,
}

/// Another event, with a name of its own.
#[derive(Debug, Clone, Event)]
#[event(name = "order.cancelled")]
pub struct OrderCancelled;

/// A generic event.
#[derive(Debug, Clone, Event)]
pub struct Wrapped<T> {
    /// What it wraps.
    pub inner: T,
}

/// A namespace.
#[derive(Linker)]
#[linker(max_subscribers = 100, debug = false, name = "users")]
pub struct UserLinker;

/// A receipt.
#[derive(Debug)]
pub struct Receipt(pub u64);

/// Sync, by reference.
#[on(OrderCreated)]
pub fn by_ref(e: &OrderCreated) {
    let _ = e.order_id;
}

/// Sync, by value.
#[on(OrderCreated)]
fn by_value(e: OrderCreated) -> u64 {
    e.order_id
}

/// Sync, shared.
#[on(OrderCreated, blocking)]
fn shared(e: Arc<OrderCreated>) -> Result<Receipt, std::io::Error> {
    Ok(Receipt(e.order_id))
}

/// Sync, erased.
#[on(OrderCreated)]
fn erased(e: &AnyEvent) -> anyhow::Result<()> {
    let _ = e.downcast_ref::<OrderCreated>();
    Ok(())
}

/// Sync, nothing.
#[once(OrderCreated, linker = UserLinker)]
fn nothing() {}

/// Async, every form.
#[on(OrderCreated)]
async fn async_ref(e: &OrderCreated) -> anyhow::Result<Receipt> {
    Ok(Receipt(e.order_id))
}

#[on(OrderCreated)]
async fn async_value(e: OrderCreated) -> u64 {
    e.order_id
}

#[on(OrderCreated)]
async fn async_shared(e: Arc<OrderCreated>) {
    let _ = e;
}

#[on(OrderCreated)]
async fn async_erased(e: &AnyEvent) {
    let _ = e.name();
}

#[on(...)]
async fn async_erased_shared(e: Arc<AnyEvent>) {
    let _ = e.name();
}

#[on(OrderCreated)]
async fn async_nothing() {}

/// Named events.
#[on("GreetEvent")]
fn named_ref(name: &String) {
    let _ = name;
}

#[on("GreetEvent")]
fn named_value(name: String) {
    let _ = name;
}

#[on("GreetEvent")]
async fn named_async(name: &String) {
    let _ = name;
}

#[on("GreetEvent")]
fn named_erased(e: &AnyEvent) {
    let _ = e;
}

/// Several events, the global event, generic events.
#[on(OrderCreated, OrderCancelled, "GreetEvent")]
fn several(e: &AnyEvent) {
    let _ = e;
}

#[on(...)]
fn global() {}

#[on(Wrapped<u8>)]
fn wrapped(e: &Wrapped<u8>) {
    let _ = e.inner;
}

/// Callbacks of one handler.
#[on_success(async_ref)]
fn receipt(r: Receipt) {
    let _ = r.0;
}

#[on_failure(async_ref)]
fn failed(err: &anyhow::Error) {
    let _ = err;
}

#[on_success(shared)]
fn shared_done() {}

#[on_failure(shared)]
fn shared_failed() {}

/// Default callbacks, global and per namespace.
#[on_success]
fn default_success(value: &dyn Any) {
    let _ = value;
}

#[on_failure]
fn default_failure(err: &anyhow::Error) {
    let _ = err;
}

#[on_failure(linker = UserLinker)]
fn users_failure() {}

mod nested {
    use pyventus::on_success;

    /// A callback naming a handler by path.
    #[on_success(super::by_value)]
    fn by_path(n: u64) {
        let _ = n;
    }
}

fn main() {
    // Handlers stay plain functions.
    by_ref(&OrderCreated { order_id: 1 });
    let _ = UserLinker::linker();
    let _ = pyventus::EventLinker::global();
}
