use pyventus::Event;

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

use pyventus::on_success;

fn charge() -> u64 {
    1
}

#[on_success(charge)]
fn charged(receipt: u64) {
    let _ = (receipt, charge());
}
fn main() {}
