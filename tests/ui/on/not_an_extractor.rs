use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated)]
fn handler(event: &OrderCreated, retries: u32) {
    let _ = (event, retries);
}
fn main() {}
