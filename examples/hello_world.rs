//! The seeds' "Hello, World!": link a handler to `MyEvent`, then emit it.
//!
//! Run with `cargo run --example hello_world`.

use pyventus::{EventEmitter, EventLinker, TokioProcessingService};

fn main() -> Result<(), pyventus::Error> {
    let linker = EventLinker::new();
    // The handler can be sync or async; `subscribe_async` takes the async kind.
    linker
        .on_named("MyEvent")
        .subscribe(|| println!("Hello, World!"))?;

    // Depend on `EventEmitter`, not on the processor: it can be swapped at runtime.
    let emitter = EventEmitter::builder()
        .processor(TokioProcessingService::default())
        .linker(linker)
        .build();
    // Callable from sync and async code; outside a runtime, the tokio processor
    // runs the emission to completion before returning.
    emitter.emit_named("MyEvent", ())
}
