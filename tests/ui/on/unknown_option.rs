use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated, priority = 3)]
fn handler() {}
fn main() {}
