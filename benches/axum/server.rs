//! The server `benches/axum/run.sh` loads with wrk. Serves only when given
//! `--serve PORT`: under a plain `cargo bench` it exits at once.
//!
//! - `/plain`: a handler that answers, with no pyventus layer;
//! - `/layered`: the same behind `BackgroundEmitterLayer`, emitting nothing;
//! - `/emit`: behind the layer, one emission per request to a synchronous
//!   subscriber that counts it, run after the response;
//! - `/emit_attached`: the same with `detach_from_client(false)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::get;
use pyventus::EventLinker;
use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(port) = args
        .iter()
        .position(|a| a == "--serve")
        .and_then(|i| args.get(i + 1))
    else {
        return;
    };
    let port: u16 = port.parse().expect("--serve takes a port");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(serve(port));
}

async fn serve(port: u16) {
    let counted = Arc::new(AtomicU64::new(0));
    let linker = EventLinker::builder().debug(false).build();
    let count = counted.clone();
    linker
        .on_named("RequestServed")
        .subscribe(move |path: &&'static str| {
            let _ = path;
            count.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    let layer = BackgroundEmitterLayer::new().linker(linker).debug(false);
    let attached = layer.clone().detach_from_client(false);

    let layered = Router::new()
        .route("/layered", get(|| async { "ok" }))
        .route(
            "/emit",
            get(|emitter: BackgroundEmitter| async move {
                emitter.emit_named("RequestServed", "/emit").unwrap();
                "ok"
            }),
        )
        .layer(layer);
    let attached = Router::new()
        .route(
            "/emit_attached",
            get(|emitter: BackgroundEmitter| async move {
                emitter
                    .emit_named("RequestServed", "/emit_attached")
                    .unwrap();
                "ok"
            }),
        )
        .layer(attached);
    let app = Router::new()
        .route("/plain", get(|| async { "ok" }))
        .merge(layered)
        .merge(attached);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    println!("serving on 127.0.0.1:{port}");
    axum::serve(listener, app).await.unwrap();
}
