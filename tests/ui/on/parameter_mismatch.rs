use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[derive(Debug, Event)]
struct OrderCancelled;

#[on(OrderCreated)]
fn handler(event: &OrderCancelled) {
    let _ = event;
}
fn main() {}
