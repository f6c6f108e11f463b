use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderPlaced {
    order_id: u64,
}

// A synchronous handler cannot be cancelled at a deadline.
#[on(OrderPlaced, timeout = "2s")]
fn handler(event: &OrderPlaced) {
    let _ = event.order_id;
}

#[on(OrderPlaced, blocking, timeout = "2s")]
fn blocking_handler(event: &OrderPlaced) {
    let _ = event.order_id;
}

fn main() {}
