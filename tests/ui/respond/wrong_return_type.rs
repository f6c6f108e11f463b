use pyventus::{Event, Request, respond};

#[derive(Debug, Event, Request)]
#[request(response = u64, error = String)]
struct GetQuote;

// Answers a `String`, where the request's response is a `u64`.
#[respond]
fn quote(_: &GetQuote) -> Result<String, String> {
    Ok("42".to_owned())
}

fn main() {}
