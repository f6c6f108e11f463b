use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated, crate = "pyventus")]
fn handler() {}

fn main() {}
