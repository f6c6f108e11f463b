// Included twice by `duplicate_ids.rs`, in two modules: one place, two
// handlers, each with its own callback.

#[on(Ping, linker = Included)]
fn included() -> u32 {
    u32::try_from(module_path!().len()).unwrap()
}

#[on_success(included)]
fn included_done(n: u32) {
    INCLUDED.lock().unwrap().push((module_path!(), n));
}
