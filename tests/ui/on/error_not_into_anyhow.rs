use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[on(OrderCreated)]
fn handler() -> Result<(), String> {
    Err("no".to_string())
}
fn main() {}
