//! Enqueues orders on Redis for `redis_worker` processes to handle: the
//! emitting half of Pyventus's Redis Queue example. Both are built from the same
//! handler crate, `examples/shop`.
//!
//! ```sh
//! cargo run -p pyventus-examples --example redis_emitter --features redis -- 10   # enqueue 10 orders
//! ```
//!
//! Redis: `PYVENTUS_REDIS_URL` (default `redis://127.0.0.1:6379`); queue:
//! `PYVENTUS_QUEUE` (default `shop`).

use pyventus::EventEmitter;
use pyventus::redis::{RedisProcessingService, url_from_env};
use shop::OrderPlaced;

#[tokio::main]
async fn main() -> Result<(), pyventus::Error> {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let queue = std::env::var("PYVENTUS_QUEUE").unwrap_or_else(|_| "shop".to_owned());

    let redis = RedisProcessingService::builder(&url_from_env())
        .queue(&queue)
        .connect()
        .await?;
    // The code that emits does not know its events go to another process.
    let emitter = EventEmitter::new(redis);
    for order_id in 1..=count {
        emitter.emit(OrderPlaced {
            order_id,
            email: format!("customer{order_id}@example.com"),
        })?;
    }
    println!("enqueued {count} orders on queue `{queue}`");
    Ok(())
}
