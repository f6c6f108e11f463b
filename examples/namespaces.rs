//! The seeds' custom event linkers: a namespace of its own, whose handlers do
//! not see the global linker's events, and the other way round.
//!
//! Run with `cargo run --example namespaces`.

use pyventus::{EventEmitter, Linker, TokioProcessingService, once};

/// The event linker for users' events only.
#[derive(Linker)]
#[linker(max_subscribers = 10)]
struct UserEventLinker;

#[once("PasswordResetEvent", linker = UserEventLinker)]
fn handle_users_password_reset_event(email: &String) {
    println!("User's PasswordResetEvent received! ({email})");
}

#[once("PasswordResetEvent")]
fn handle_any_password_reset_event(email: &String) {
    println!("Any PasswordResetEvent received! ({email})");
}

fn main() -> Result<(), pyventus::Error> {
    let event_emitter = EventEmitter::builder()
        .processor(TokioProcessingService::default())
        .linker(UserEventLinker::linker())
        .build();
    event_emitter.emit_named("PasswordResetEvent", "example@email.com".to_string())?;

    // Only the namespace's one-time handler ran, and it is gone now.
    assert!(UserEventLinker::linker().is_empty());
    assert_eq!(pyventus::EventLinker::global().subscriber_count(), 1);
    println!("The global linker's handler is still waiting.");
    Ok(())
}
