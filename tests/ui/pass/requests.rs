//! Every form a request and its responders take, in a crate that denies
//! warnings and missing docs: the generated code adds neither.
#![deny(missing_docs, warnings)]
#![forbid(unsafe_code)]

use pyventus::{Event, Linker, Request, respond};
use std::sync::Arc;

#[derive(Debug, Event, Request)]
#[request(response = u64, error = std::io::Error)]
struct GetQuote {
    symbol: String,
}

#[respond]
fn quote(q: &GetQuote) -> Result<u64, std::io::Error> {
    Ok(q.symbol.len() as u64)
}

#[derive(Debug, Event, Request)]
#[request(response = String)]
struct Lookup(u32);

#[respond]
async fn lookup(l: Arc<Lookup>) -> Result<String, std::convert::Infallible> {
    Ok(format!("user {}", l.0))
}

#[derive(Debug, Event, Request)]
#[request(response = &'static str, many)]
struct WhoIsThere;

#[derive(Linker)]
struct Team;

#[respond(linker = Team)]
fn billing(_: &WhoIsThere) -> Result<&'static str, std::convert::Infallible> {
    Ok("billing")
}

#[respond(linker = Team)]
fn shipping(_: &WhoIsThere) -> Result<&'static str, std::convert::Infallible> {
    Ok("shipping")
}

#[derive(Debug, Event, Request)]
#[request(response = (), crate = pyventus)]
struct Ping;

#[respond(crate = pyventus)]
fn pong(_: &Ping) -> Result<(), std::convert::Infallible> {
    Ok(())
}

fn main() {
    pyventus::verify().unwrap();
    assert_eq!(Team::linker().subscriber_count(), 2);
}
