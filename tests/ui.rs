//! Compile-time checks of the macros, with trybuild: each misuse in `tests/ui`
//! fails with the `.stderr` next to it; everything in `tests/ui/pass` compiles.
//! This test is the `pyventus-ui` package's (tests/ui/Cargo.toml), whose only
//! dependencies are pyventus and anyhow: trybuild's own project builds those,
//! not the test suite's, and its paths are relative to tests/ui.
//!
//! The snapshots were made with rustc 1.95 (stable). Compiler messages drift
//! between versions, so other compilers skip this test; regenerate the
//! snapshots with `TRYBUILD=overwrite cargo test -p pyventus-ui --test ui` and review them.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "the .stderr snapshots were made with rustc 1.95; see tests/ui.rs"
)]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("on/*.rs");
    t.compile_fail("on_success/*.rs");
    t.compile_fail("on_failure/*.rs");
    t.compile_fail("derive_event/*.rs");
    t.compile_fail("derive_linker/*.rs");
    t.compile_fail("named_key/*.rs");
    t.compile_fail("derive_request/*.rs");
    t.compile_fail("respond/*.rs");
    t.pass("pass/*.rs");
}
