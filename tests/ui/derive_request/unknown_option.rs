use pyventus::{Event, Request};

#[derive(Debug, Event, Request)]
#[request(response = u64, reply = String, many, many)]
struct GetQuote;

fn main() {}
