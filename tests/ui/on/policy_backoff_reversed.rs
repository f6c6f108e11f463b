use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderPlaced {
    order_id: u64,
}

#[on(OrderPlaced, retries = 3, backoff = "5s..100ms")]
fn handler(event: &OrderPlaced) {
    let _ = event.order_id;
}

fn main() {}
