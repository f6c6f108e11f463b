use pyventus::{Event, Linker, on, on_success};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

#[derive(Linker)]
struct Users;

#[on(OrderCreated)]
fn charge(event: &OrderCreated) -> u64 {
    event.order_id
}

// Every mistake of the attribute and of the signature is reported at once.
#[on_success(charge, linker = Users, retries = 3)]
async fn charged(receipt: u64, extra: u64) {
    let _ = (receipt, extra);
}

fn main() {}
