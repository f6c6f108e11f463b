use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated, inline)]
async fn handler(event: &OrderCreated) {
    let _ = event.order_id;
}
fn main() {}
