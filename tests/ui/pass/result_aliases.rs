//! A handler's return type is read by what it is, however it is spelled:
//! aliases of `Result` are fallible and their success callbacks take the `Ok`
//! type; any other type is a value handed to the success callback as is.
#![forbid(unsafe_code)]
#![deny(missing_docs, warnings)]

use std::io;

use pyventus::{Event, HandlerOutput, on, on_failure, on_success};

/// An event.
#[derive(Debug, Clone, Event)]
pub struct OrderCreated {
    /// Its id.
    pub order_id: u64,
}

/// An alias of `anyhow::Result` that does not end in `Result`.
pub type Fallible = anyhow::Result<()>;

/// An alias with an error type of the user's.
pub type Charged = Result<u32, Declined>;

/// An error.
#[derive(Debug)]
pub struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}

impl std::error::Error for Declined {}

/// A plain value.
#[derive(Debug)]
pub struct Receipt(pub u64);

/// A type of the user's that implements `HandlerOutput`, as runtime
/// subscription accepts.
pub struct Verdict(Option<u8>);

impl HandlerOutput for Verdict {
    type Ok = u8;

    fn into_result(self) -> Result<u8, anyhow::Error> {
        self.0.ok_or_else(|| anyhow::anyhow!("no verdict"))
    }
}

#[on(OrderCreated)]
fn fallible(e: &OrderCreated) -> Fallible {
    anyhow::ensure!(e.order_id != 0, "order 0");
    Ok(())
}

#[on_success(fallible)]
fn fallible_done() {}

#[on_failure(fallible)]
fn fallible_failed(err: &anyhow::Error) {
    let _ = err;
}

#[on(OrderCreated)]
async fn io_result(e: &OrderCreated) -> io::Result<u64> {
    Ok(e.order_id)
}

#[on_success(io_result)]
fn io_done(n: u64) {
    let _ = n;
}

#[on(OrderCreated)]
fn charged(e: &OrderCreated) -> Charged {
    u32::try_from(e.order_id).map_err(|_| Declined)
}

#[on_success(charged)]
fn charged_done(amount: u32) {
    let _ = amount;
}

#[on(OrderCreated)]
fn fully_qualified(e: &OrderCreated) -> ::core::result::Result<u8, std::fmt::Error> {
    let _ = e;
    Ok(1)
}

#[on_success(fully_qualified)]
fn fully_qualified_done(n: u8) {
    let _ = n;
}

#[on(OrderCreated)]
fn receipt(e: &OrderCreated) -> Receipt {
    Receipt(e.order_id)
}

#[on_success(receipt)]
fn receipt_done(r: Receipt) {
    let _ = r.0;
}

#[on(OrderCreated)]
fn verdict(e: &OrderCreated) -> Verdict {
    Verdict(u8::try_from(e.order_id).ok())
}

#[on_success(verdict)]
fn verdict_done(v: u8) {
    let _ = v;
}

#[on_failure(verdict)]
fn verdict_failed(err: &anyhow::Error) {
    let _ = err;
}

fn main() {
    let _ = pyventus::EventLinker::global();
}
