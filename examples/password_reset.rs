//! The seeds' practical example: part of a password-reset workflow, where the
//! notifications are decoupled from the request's validation by an event.
//!
//! Run with `cargo run -p pyventus-examples --example password_reset`.

use std::time::Duration;

use pyventus::{AnyEvent, Event, EventEmitter, TokioProcessingService, on, on_failure};

/// Emitted once a password-reset request has been validated.
#[derive(Debug, Clone, Event)]
#[event(name = "PasswordResetRequestedEvent")]
struct PasswordResetRequested {
    user_id: String,
    token: String,
    ip_address: String,
    email: String,
}

/// The mail server could not be reached.
#[derive(Debug)]
struct SmtpConnectError {
    code: u16,
    message: &'static str,
}

impl std::fmt::Display for SmtpConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {:?})", self.code, self.message)
    }
}

impl std::error::Error for SmtpConnectError {}

/// Notifies the recovery email; subscribed by the event's name.
#[on("PasswordResetRequestedEvent")]
async fn notify_recovery_email_of_password_reset(event: &PasswordResetRequested) {
    // The mail service's round trip.
    tokio::time::sleep(Duration::from_millis(5)).await;
    println!(
        "Recovery email notified! (user {}, request from {})",
        event.user_id, event.ip_address
    );
}

/// Sends the reset email: here, the mail server is down.
#[on(PasswordResetRequested)]
async fn send_password_reset_email(event: &PasswordResetRequested) -> Result<(), SmtpConnectError> {
    println!("Sending token {}... to {}", &event.token[..8], event.email);
    tokio::time::sleep(Duration::from_millis(1)).await;
    Err(SmtpConnectError {
        code: 421,
        message: "service not available",
    })
}

/// Handles the failures of `send_password_reset_email`.
#[on_failure(send_password_reset_email)]
fn password_reset_email_exception(err: &anyhow::Error) {
    if err.downcast_ref::<SmtpConnectError>().is_some() {
        println!("SMTPConnectError received!");
    }
}

/// Logs every event.
#[on(...)]
fn logging(event: &AnyEvent) {
    println!("\nLogging: {event:?}\n");
}

fn main() -> Result<(), pyventus::Error> {
    // pyventus logs through `tracing`: `RUST_LOG=pyventus=debug` shows each
    // emission and delivery (on stderr here), `PYVENTUS_DEBUG=1` raises them to INFO.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let event_emitter = EventEmitter::new(TokioProcessingService::default());
    event_emitter.emit(PasswordResetRequested {
        user_id: "33171591-5a4e-42ae-b719-8e7b525337e5".into(),
        token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyZXNldF91dWlkIjoiM".into(),
        ip_address: "192.168.0.1".into(),
        email: "user@example.com".into(),
    })
}
