use pyventus::Linker;

#[derive(Linker)]
#[linker(max_subscribers = 0)]
struct UserLinker;

fn main() {}
