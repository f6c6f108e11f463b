use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderPlaced {
    order_id: u64,
}

// A backoff paces retries, `busy` acts at a concurrency limit: neither alone.
#[on(OrderPlaced, backoff = "100ms..5s", busy = refuse)]
fn handler(event: &OrderPlaced) {
    let _ = event.order_id;
}

#[on(OrderPlaced, retries = 1, retries = 2, concurrency = 2, busy = later)]
fn twice(event: &OrderPlaced) {
    let _ = event.order_id;
}

fn main() {}
