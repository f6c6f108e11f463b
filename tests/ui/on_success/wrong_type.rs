use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::on_success;

#[on(OrderCreated)]
fn charge(event: &OrderCreated) -> anyhow::Result<u64> {
    Ok(event.order_id)
}

#[on_success(charge)]
fn charged(receipt: String) {
    let _ = receipt;
}
fn main() {}
