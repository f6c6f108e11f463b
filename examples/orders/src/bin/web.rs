//! The web process: `POST /orders` answers 202 at once; the `Web` handlers run
//! after the response, the `Jobs` handlers in a worker. SIGTERM (or Ctrl-C)
//! stops taking requests and drains the handlers still running.
//!
//! Listens on `ORDERS_ADDR` (default `127.0.0.1:3000`) and prints the address
//! it took (`127.0.0.1:0` picks a free port).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use orders::{Jobs, OrderPlaced, Store, Web};
use pyventus::EventEmitter;
use pyventus::axum::{BackgroundEmitter, BackgroundEmitterLayer};
use pyventus::redis::{RedisProcessingService, url_from_env};
use serde::Deserialize;

/// What a client sends.
#[derive(Deserialize)]
struct NewOrder {
    id: u64,
    email: String,
}

/// What the routes share.
#[derive(Clone)]
struct App {
    /// Emits to the worker, through Redis.
    jobs: EventEmitter,
}

async fn place_order(
    State(app): State<App>,
    web: BackgroundEmitter,
    Json(order): Json<NewOrder>,
) -> Result<StatusCode, (StatusCode, String)> {
    if !order.email.contains('@') {
        // Nothing was emitted; had it been, a 4xx would not commit it.
        return Err((StatusCode::UNPROCESSABLE_ENTITY, "not an address".into()));
    }
    let event = OrderPlaced {
        id: order.id,
        email: order.email,
    };
    // Runs after the response, on this process's `Web` handlers.
    web.emit(event.clone())
        .map_err(|err| (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    // In Redis when this returns, for the worker's `Jobs` handlers.
    app.jobs
        .emit_async(event)
        .await
        .map_err(|err| (StatusCode::SERVICE_UNAVAILABLE, err.to_string()))?;
    Ok(StatusCode::ACCEPTED)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orders::init_tracing();
    let metrics = orders::install_metrics();
    let url = url_from_env();
    let queue = orders::queue_from_env();

    // State for the handlers this process runs, provided before the first
    // request; `pyventus::verify()` in a test finds one forgotten.
    Web::linker().provide(Store::connect(&url, &queue).await?);
    let jobs = EventEmitter::builder()
        .linker(Jobs::linker())
        .processor(
            RedisProcessingService::builder(&url)
                .queue(&queue)
                .connect()
                .await?,
        )
        .build();

    let layer = BackgroundEmitterLayer::new().linker(Web::linker());
    let app = Router::new()
        .route("/orders", post(place_order))
        .with_state(App { jobs })
        // The layer covers the routes added before it.
        .layer(layer.clone())
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/health", get(|| async { "ok" }));

    let addr = std::env::var("ORDERS_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(layer.shutdown_signal())
        .await?;
    let pending = layer.pending();
    layer.wait().await;
    println!("drained {pending} pending after the last response");
    Ok(())
}
