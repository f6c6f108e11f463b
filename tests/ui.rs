//! Compile-time checks of the macros, with trybuild: each misuse in `tests/ui`
//! fails with the `.stderr` next to it; everything in `tests/ui/pass` compiles.
//!
//! The snapshots were made with rustc 1.95 (stable). Compiler messages drift
//! between versions, so other compilers skip this test; regenerate the
//! snapshots with `TRYBUILD=overwrite cargo test --test ui` and review them.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "the .stderr snapshots were made with rustc 1.95; see tests/ui.rs"
)]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/on/*.rs");
    t.compile_fail("tests/ui/on_success/*.rs");
    t.compile_fail("tests/ui/on_failure/*.rs");
    t.compile_fail("tests/ui/derive_event/*.rs");
    t.compile_fail("tests/ui/derive_linker/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
