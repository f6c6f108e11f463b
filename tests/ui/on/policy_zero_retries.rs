use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderPlaced {
    order_id: u64,
}

#[on(OrderPlaced, retries = 0)]
fn handler(event: &OrderPlaced) {
    let _ = event.order_id;
}

fn main() {}
