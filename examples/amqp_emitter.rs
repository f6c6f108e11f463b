//! Publishes orders to RabbitMQ for `amqp_worker` processes to handle: the
//! emitting half of Pyventus's Celery example. Both are built from the same
//! handler crate, `examples/shop`, as the Redis examples are.
//!
//! ```sh
//! cargo run -p pyventus-examples --example amqp_emitter --features amqp -- 10   # publish 10 orders
//! ```
//!
//! RabbitMQ: `PYVENTUS_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`);
//! queue: `PYVENTUS_QUEUE` (default `shop`).

use pyventus::EventEmitter;
use pyventus::amqp::{AmqpProcessingService, url_from_env};
use shop::OrderPlaced;

#[tokio::main]
async fn main() -> Result<(), pyventus::Error> {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let queue = std::env::var("PYVENTUS_QUEUE").unwrap_or_else(|_| "shop".to_owned());

    let rabbit = AmqpProcessingService::builder(&url_from_env())
        .queue(&queue)
        .connect()
        .await?;
    // The code that emits does not know its events go to another process.
    let emitter = EventEmitter::new(rabbit);
    for order_id in 1..=count {
        emitter.emit(OrderPlaced {
            order_id,
            email: format!("customer{order_id}@example.com"),
        })?;
    }
    println!("published {count} orders on queue `{queue}`");
    Ok(())
}
