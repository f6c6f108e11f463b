use pyventus::{Event, Request, respond};
use std::sync::Arc;

#[derive(Debug, Event, Request)]
#[request(response = u64, error = String)]
struct GetQuote;

// An async responder whose answer is not the request's response.
#[respond]
async fn quote(_: Arc<GetQuote>) -> Result<i32, String> {
    Ok(42)
}

fn main() {}
