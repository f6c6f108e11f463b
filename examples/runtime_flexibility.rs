//! The seeds' runtime flexibility: one function that emits, driven by three
//! processing services chosen where the emitters are built.
//!
//! Run with `cargo run --example runtime_flexibility`.

use pyventus::{
    EventEmitter, ExecutorProcessingService, InlineProcessingService, ProcessingService,
    TokioProcessingService, on,
};

#[on("GreetEvent")]
fn handle_greet_event(name: &String) {
    println!("Hello, {name}!");
}

/// The application's logic: it depends on `EventEmitter`, not on a processor.
fn main_logic(event_emitter: &EventEmitter, processor: &str) -> Result<(), pyventus::Error> {
    event_emitter.emit_named("GreetEvent", processor.to_string())
}

fn emitter(processor: impl ProcessingService) -> EventEmitter {
    EventEmitter::new(processor)
}

fn main() -> Result<(), pyventus::Error> {
    main_logic(
        &emitter(InlineProcessingService::default()),
        "InlineProcessingService",
    )?;
    main_logic(
        &emitter(TokioProcessingService::default()),
        "TokioProcessingService",
    )?;

    let executor = ExecutorProcessingService::with_threads(2);
    main_logic(&emitter(executor.clone()), "ExecutorProcessingService")?;
    executor.shutdown(true);
    Ok(())
}
