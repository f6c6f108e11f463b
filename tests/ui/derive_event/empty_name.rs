use pyventus::Event;

#[derive(Debug, Event)]
#[event(name = "")]
struct Nameless;

fn main() {}
