use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

struct NotAnEvent;

#[on(NotAnEvent)]
fn handler() {}
fn main() {}
