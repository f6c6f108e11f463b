use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[derive(Debug, Event)]
struct OrderCancelled;

#[on(OrderCreated, OrderCancelled)]
fn handler(event: &OrderCreated) {
    let _ = event;
}
fn main() {}
