use pyventus::{Event, Request, respond};

#[derive(Debug, Event, Request)]
#[request(response = u64)]
struct GetQuote;

#[respond]
fn quote(_: &GetQuote) {}

fn main() {}
