use pyventus::Linker;

// A namespace's default policy is checked as a handler's is.
#[derive(Linker)]
#[linker(retries = 0, backoff = "fast", busy = refuse)]
struct Orders;

fn main() {}
