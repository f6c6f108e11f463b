use pyventus::{Event, Request};

#[derive(Debug, Event, Request)]
struct NoAttribute;

#[derive(Debug, Event, Request)]
#[request(error = String)]
struct NoResponse;

fn main() {}
