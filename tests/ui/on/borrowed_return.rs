use std::borrow::Cow;

use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    customer: String,
}

// A handler's return value outlives its borrow of the event: the lifetime the
// return type leaves out is reported there, first.
#[on(OrderCreated)]
fn customer(event: &OrderCreated) -> Cow<str> {
    Cow::Borrowed(&event.customer)
}

fn main() {}
