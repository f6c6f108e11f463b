use pyventus::Event;

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::on_failure;

#[on_failure(namespace = Users)]
fn failed(error: &anyhow::Error) {
    let _ = error;
}
fn main() {}
