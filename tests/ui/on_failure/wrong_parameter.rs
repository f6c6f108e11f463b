use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::on_failure;

#[on(OrderCreated)]
fn charge() -> anyhow::Result<()> {
    Ok(())
}

#[on_failure(charge)]
fn failed(message: &String) {
    let _ = message;
}
fn main() {}
