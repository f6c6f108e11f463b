use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated)]
fn handler<T: Default>() {
    let _ = T::default();
}
fn main() {}
