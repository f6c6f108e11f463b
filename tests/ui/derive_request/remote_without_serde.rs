// Built without pyventus's `serde` feature (as this crate is), nothing
// crosses a process: a `remote` request says which feature it needs.
use pyventus::{Event, Request};

#[derive(Debug, Event, Request)]
#[request(response = u64, remote)]
struct GetQuote;

fn main() {}
