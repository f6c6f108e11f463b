use pyventus::Linker;
use std::marker::PhantomData;

#[derive(Linker)]
struct UserLinker<T>(PhantomData<T>);

fn main() {}
