use pyventus::Event;

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::on_failure;

fn charge() {}

#[on_failure(charge)]
fn failed(error: &anyhow::Error) {
    let _ = (error, charge());
}
fn main() {}
