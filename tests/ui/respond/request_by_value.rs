use pyventus::{Event, Request, respond};
use std::sync::Arc;

#[derive(Debug, Clone, Event, Request)]
#[request(response = u64)]
struct GetQuote;

#[respond]
fn by_value(_: GetQuote) -> Result<u64, std::convert::Infallible> {
    Ok(1)
}

#[respond]
async fn async_by_reference(_: &GetQuote) -> Result<u64, std::convert::Infallible> {
    Ok(1)
}

#[respond]
fn two_parameters(_: &GetQuote, _: Arc<GetQuote>) -> Result<u64, std::convert::Infallible> {
    Ok(1)
}

fn main() {}
