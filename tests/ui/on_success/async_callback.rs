use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::on_success;

#[on(OrderCreated)]
fn charge(event: &OrderCreated) -> u64 {
    event.order_id
}

#[on_success(charge)]
async fn charged(receipt: u64) {
    let _ = receipt;
}
fn main() {}
