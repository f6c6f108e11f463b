use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

struct NotALinker;

#[on(OrderCreated, linker = NotALinker)]
fn handler() {}
fn main() {}
