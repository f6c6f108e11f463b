use pyventus::{Event, on, on_success};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

type Charged = Result<u64, std::io::Error>;

#[on(OrderCreated)]
fn charge(event: &OrderCreated) -> Charged {
    Ok(event.order_id)
}

// The alias is a `Result`: the callback gets its `Ok` value, not the alias.
#[on_success(charge)]
fn charged(receipt: Charged) {
    let _ = receipt;
}

fn main() {}
