//! The seeds' `FastAPI` example, in axum: `/send-email` answers at once, and the
//! email goes out after the response, on a handler that takes its time.
//!
//! Run with `cargo run -p pyventus-examples --example axum_server --features axum`, then open
//! <http://127.0.0.1:3000/send-email>. Ctrl-C shuts down gracefully: the server
//! stops taking requests and waits for the emails already queued.
//!
//! `--smoke` serves on an ephemeral port, sends itself one request and shuts
//! down (the test suite runs it that way).

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};
use pyventus::on;
use tokio::net::TcpListener;

#[on("SendEmail")]
async fn event_callback(email: &String) {
    println!("Sending email to: {email}");
    tokio::time::sleep(Duration::from_millis(if smoke() { 200 } else { 2_000 })).await;
    println!("Email sent successfully!");
}

async fn send_email(event_emitter: BackgroundEmitter) -> &'static str {
    // Recorded now, run after the response has been sent.
    event_emitter
        .emit_named("SendEmail", "email@pyventus.com".to_string())
        .expect("a valid event name");
    r#"{"message": "Email sent!"}"#
}

fn smoke() -> bool {
    std::env::args().any(|arg| arg == "--smoke")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let layer = BackgroundEmitterLayer::new();
    let app = Router::new()
        .route("/send-email", get(send_email))
        .layer(layer.clone());

    let listener = TcpListener::bind(if smoke() {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    })
    .await?;
    let addr = listener.local_addr()?;
    println!("Listening on http://{addr}/send-email");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });

    if smoke() {
        println!("{}", http_get(addr, "/send-email").await?);
    } else {
        tokio::signal::ctrl_c().await?;
    }

    // Graceful shutdown: stop taking requests, then wait for what was queued.
    let _ = stop.send(());
    server.await.expect("the server task panicked")?;
    layer.close();
    layer.wait().await;
    println!("Shut down after every queued email was sent.");
    Ok(())
}

/// A minimal HTTP/1.1 GET over a fresh connection, returning the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned())
}
