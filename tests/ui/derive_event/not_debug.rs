use pyventus::Event;

#[derive(Event)]
struct OrderCreated;

fn main() {}
