use pyventus::Request;

#[derive(Debug, Request)]
#[request(response = u64)]
struct GetQuote;

fn main() {}
