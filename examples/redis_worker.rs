//! A worker process: takes the orders `redis_emitter` enqueued and runs the
//! handlers of `examples/shop` on them, until Ctrl-C (or SIGTERM), then finishes
//! what it holds and stops (a second Ctrl-C stops at once).
//!
//! ```sh
//! cargo run -p pyventus-examples --example redis_worker --features redis
//! ```
//!
//! It reports its health on stderr as it changes (what a readiness probe would
//! read), and if Redis stays unreachable for a minute it gives up and exits
//! with an error, for its supervisor (systemd, Kubernetes) to act on.
//!
//! Redis: `PYVENTUS_REDIS_URL` (default `redis://127.0.0.1:6379`); queue:
//! `PYVENTUS_QUEUE` (default `shop`). `--exit-after N` stops after N entries
//! (the test suite runs it that way). `RUST_LOG=pyventus=info` shows each
//! delivery's span.

// The handlers live in `shop`; naming the crate links them into this binary.
use shop as _;

use std::time::Duration;

use pyventus::redis::{Worker, url_from_env};

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
        .visibility_timeout(Duration::from_secs(30))
        .max_deliveries(5)
        .handler_timeout(Duration::from_mins(1))
        .give_up_after(Duration::from_mins(1))
        .connect()
        .await?;
    println!(
        "worker {} on queue `{queue}` (Ctrl-C to stop)",
        worker.consumer()
    );

    let mut health = worker.watch_health();
    tokio::spawn(async move {
        while health.changed().await.is_ok() {
            eprintln!("health: {:?}", *health.borrow_and_update());
        }
    });
    if let Some(limit) = exit_after {
        let watcher = worker.clone();
        tokio::spawn(async move {
            while watcher.stats().processed + watcher.stats().dead_lettered < limit {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            watcher.shutdown();
        });
    }
    // An error here (Redis gone for a minute, a refused password) ends the
    // process with a failure status: the supervisor restarts it, or pages.
    let outcome = worker.run_until_signal().await;
    let stats = worker.stats();
    println!(
        "stopped: {} processed, {} retried, {} dead-lettered",
        stats.processed, stats.retried, stats.dead_lettered
    );
    Ok(outcome?)
}
