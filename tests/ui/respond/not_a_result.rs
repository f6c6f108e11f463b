use pyventus::{Event, Request, respond};

#[derive(Debug, Event, Request)]
#[request(response = u64)]
struct GetQuote;

// The answer alone: a responder returns `Result<Response, Error>`.
#[respond]
fn quote(_: &GetQuote) -> u64 {
    42
}

fn main() {}
