use pyventus::Linker;

#[derive(Linker)]
#[linker(max_handlers = 10, verbose = true)]
struct UserLinker;

fn main() {}
