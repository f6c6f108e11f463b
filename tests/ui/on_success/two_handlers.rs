use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::on_success;

#[on(OrderCreated)]
fn charge() {}

#[on(OrderCreated)]
fn refund() {}

#[on_success(charge, refund)]
fn done() {}
fn main() {}
