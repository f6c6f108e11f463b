use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderPlaced {
    order_id: u64,
}

// Durations are read at compile time: a whole number and a unit.
#[on(OrderPlaced, retries = 2, backoff = "1.5s..3s", timeout = "2 secs")]
async fn handler(event: &OrderPlaced) {
    let _ = event.order_id;
}

#[on(OrderPlaced, timeout = "0ms")]
async fn instant(event: &OrderPlaced) {
    let _ = event.order_id;
}

fn main() {}
