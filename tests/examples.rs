//! Every example in `examples/` runs, and prints what its comments promise.
//! `cargo test` builds the examples; this runs the binaries it built.

use std::process::Command;

/// Runs an example built by `cargo test`, returning its standard output.
fn run(name: &str) -> String {
    // This test binary is target/<profile>/deps/examples-<hash>; the examples
    // are in target/<profile>/examples/.
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let output = Command::new(&path).output().unwrap_or_else(|err| {
        panic!(
            "cannot run {}: {err} (built by `cargo test`?)",
            path.display()
        )
    });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn hello_world() {
    assert_eq!(run("hello_world"), "Hello, World!\n");
}
