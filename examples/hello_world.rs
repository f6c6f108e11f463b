//! The seeds' "Hello, World!": a handler linked to `MyEvent`, then an emission.
//!
//! Run with `cargo run --example hello_world`.

use pyventus::{EventEmitter, TokioProcessingService, on};

// The handler can be sync or async: `async fn event_callback()` works the same.
#[on("MyEvent")]
fn event_callback() {
    println!("Hello, World!");
}

fn main() -> Result<(), pyventus::Error> {
    // Depend on `EventEmitter`, not on its processor: it can be swapped at runtime.
    let event_emitter = EventEmitter::new(TokioProcessingService::default());
    // Callable from sync and async code alike. Outside a runtime, the tokio
    // processor runs the emission to completion before returning.
    event_emitter.emit_named("MyEvent", ())
}
