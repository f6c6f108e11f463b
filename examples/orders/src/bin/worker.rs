//! The worker process: runs the `Jobs` handlers on what the web process
//! emitted, until SIGTERM (or Ctrl-C), then finishes what it holds.
//!
//! Its probes and metrics listen on `ORDERS_WORKER_ADDR` (default
//! `127.0.0.1:3001`): `GET /health/live`, `GET /health/ready`, `GET /metrics`.
//! It prints the address it took (`127.0.0.1:0` picks a free port).

use std::time::Duration;

use axum::routing::get;
use orders::{Jobs, Store};
use pyventus::redis::{Worker, url_from_env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orders::init_tracing();
    let metrics = orders::install_metrics();
    let url = url_from_env();
    let queue = orders::queue_from_env();

    let worker = Worker::builder(&url)
        .queue(&queue)
        .linker(Jobs::linker())
        // The same `State<Store>` the handlers take in any process; `connect`
        // refuses to start if one of them takes a state nobody provided.
        .state(Store::connect(&url, &queue).await?)
        .concurrency(8)
        .max_deliveries(5)
        .handler_timeout(Duration::from_secs(30))
        .connect()
        .await?;

    let probes = pyventus::axum::health_routes(worker.watch_health()).route(
        "/metrics",
        get(move || std::future::ready(metrics.render())),
    );
    let addr = std::env::var("ORDERS_WORKER_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("probes on http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, probes).await });

    worker.run_until_signal().await?;
    let stats = worker.stats();
    println!(
        "stopped: {} processed, {} retried, {} dead-lettered",
        stats.processed, stats.retried, stats.dead_lettered
    );
    Ok(())
}
