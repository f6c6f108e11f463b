use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated)]
fn receipt(event: &OrderCreated) -> impl std::fmt::Display {
    event.order_id
}
fn main() {}
