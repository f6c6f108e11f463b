use pyventus::Linker;

struct Timing;

#[derive(Linker)]
#[linker(middleware = Timing)]
struct Billing;

fn main() {}
