use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::AnyEvent;
use std::sync::Arc;

#[on(...)]
fn handler(event: Arc<AnyEvent>) {
    let _ = event;
}
fn main() {}
