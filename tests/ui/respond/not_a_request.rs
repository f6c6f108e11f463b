use pyventus::{Event, respond};

// An event, but not a request: nothing says what its responder answers.
#[derive(Debug, Event)]
struct OrderCreated {
    order_id: u64,
}

#[respond]
fn answer(_: &OrderCreated) -> Result<u64, std::convert::Infallible> {
    Ok(1)
}

fn main() {}
