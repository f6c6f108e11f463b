use pyventus::Event;

#[derive(Debug, Event)]
#[event(topic = "orders")]
struct OrderCreated;

fn main() {}
