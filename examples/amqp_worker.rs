//! A worker process: takes the orders `amqp_emitter` published and runs the
//! handlers of `examples/shop` on them, until Ctrl-C (or SIGTERM), then finishes
//! what it holds and stops. The same handler crate runs unchanged in-process,
//! on Redis (`redis_worker`) and here.
//!
//! ```sh
//! cargo run -p pyventus-examples --example amqp_worker --features amqp
//! ```
//!
//! RabbitMQ: `PYVENTUS_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`);
//! queue: `PYVENTUS_QUEUE` (default `shop`). `--exit-after N` stops after N
//! messages (the test suite runs it that way). `RUST_LOG=pyventus=info` shows
//! each delivery's span.

// The handlers live in `shop`; naming the crate links them into this binary.
use shop as _;

use std::time::Duration;

use pyventus::amqp::{Worker, url_from_env};

#[tokio::main]
async fn main() -> Result<(), pyventus::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let queue = std::env::var("PYVENTUS_QUEUE").unwrap_or_else(|_| "shop".to_owned());
    let exit_after: Option<u64> = std::env::args()
        .skip_while(|arg| arg != "--exit-after")
        .nth(1)
        .and_then(|n| n.parse().ok());

    let worker = Worker::builder(&url_from_env())
        .queue(&queue)
        .concurrency(8)
        .max_deliveries(5)
        .handler_timeout(Duration::from_mins(1))
        .connect()
        .await?;
    println!(
        "worker {} on queue `{queue}` (Ctrl-C to stop)",
        worker.consumer()
    );

    if let Some(limit) = exit_after {
        let watcher = worker.clone();
        tokio::spawn(async move {
            while watcher.stats().processed + watcher.stats().dead_lettered < limit {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            watcher.shutdown();
        });
    }
    worker.run_until_signal().await?;
    let stats = worker.stats();
    println!(
        "stopped: {} processed, {} retried, {} dead-lettered",
        stats.processed, stats.retried, stats.dead_lettered
    );
    Ok(())
}
