use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated)]
fn handler(event: &mut OrderCreated) {
    event.order_id += 1;
}
fn main() {}
