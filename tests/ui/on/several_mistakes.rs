use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

// Every mistake of the attribute and of the signature is reported at once.
#[on(OrderCreated, priority = 3, "", blocking, blocking)]
fn handler<T>(event: &mut OrderCreated, extra: T) {
    let _ = (event.order_id, extra);
}

fn main() {}
