use pyventus::{Event, Request, respond};

#[derive(Debug, Event, Request)]
#[request(response = u64)]
struct GetQuote;

#[respond(timeout = 5)]
fn quote(_: &GetQuote) -> Result<u64, std::convert::Infallible> {
    Ok(1)
}

fn main() {}
