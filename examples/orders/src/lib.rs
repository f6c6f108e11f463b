//! An order service in two processes, as `docs/web_and_worker.md` lays it out:
//! this crate holds the event and every handler, and both binaries link it.
//!
//! - `orders-web` (`src/bin/web.rs`): an axum server. `POST /orders` emits
//!   [`OrderPlaced`] to the [`Web`] namespace's handlers, which run after the
//!   response, and to the [`Jobs`] namespace's, which a worker runs. Also
//!   `GET /metrics` (Prometheus) and `GET /health`. It drains the handlers
//!   still running at SIGTERM before it exits.
//! - `orders-worker` (`src/bin/worker.rs`): a Redis worker on [`Jobs`], with
//!   its metrics and health probes on a port of its own.
//!
//! Both processes provide a [`Store`] to their namespace's linker at startup;
//! the handlers take it as `State<Store>`, whichever process runs them. The
//! store writes to Redis lists, where the tests read what each handler did.
//!
//! ```sh
//! cargo run -p orders --bin orders-worker   # in one terminal
//! cargo run -p orders --bin orders-web      # in another
//! curl -X POST localhost:3000/orders -H 'content-type: application/json' \
//!      -d '{"id": 1, "email": "ada@example.com"}'
//! ```
//!
//! Redis: `PYVENTUS_REDIS_URL` (default `redis://127.0.0.1:6379`); queue and
//! the store's key prefix: `ORDERS_QUEUE` (default `orders`).

use std::sync::Arc;
use std::time::Duration;

use pyventus::{Event, Linker, State, anyhow, on, on_failure, once};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// A customer placed an order. Serde's traits let it cross to the worker.
#[derive(Debug, Clone, Event, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order.
    pub id: u64,
    /// Where its confirmation goes.
    pub email: String,
}

/// The handlers the web process runs after its responses.
#[derive(Linker)]
pub struct Web;

/// The handlers the worker process runs. The web process emits to it through
/// Redis with an emitter on this linker, so what it targets is what the
/// worker has.
#[derive(Linker)]
pub struct Jobs;

/// What the handlers share: a database and a mail service in a real service,
/// Redis lists here (`<prefix>:<list>`). Cheap to clone; provided once per
/// process.
#[derive(Clone)]
pub struct Store {
    redis: redis::aio::ConnectionManager,
    prefix: String,
}

impl Store {
    /// Connects to Redis at `url`, keeping its lists under `prefix`.
    ///
    /// # Errors
    ///
    /// Redis is unreachable.
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<Store> {
        let client = redis::Client::open(url)?;
        Ok(Store {
            redis: client.get_connection_manager().await?,
            prefix: prefix.to_owned(),
        })
    }

    /// Appends `entry` to the list `list`.
    ///
    /// # Errors
    ///
    /// Redis failed.
    pub async fn push(&self, list: &str, entry: impl ToString) -> redis::RedisResult<()> {
        let key = format!("{}:{list}", self.prefix);
        self.redis.clone().rpush(key, entry.to_string()).await
    }

    /// The entries of the list `list`, oldest first.
    ///
    /// # Errors
    ///
    /// Redis failed.
    pub async fn list(&self, list: &str) -> redis::RedisResult<Vec<String>> {
        let key = format!("{}:{list}", self.prefix);
        self.redis.clone().lrange(key, 0, -1).await
    }

    /// Deletes every list of this prefix that the handlers write.
    ///
    /// # Errors
    ///
    /// Redis failed.
    pub async fn clear(&self) -> redis::RedisResult<()> {
        let keys: Vec<String> = LISTS
            .iter()
            .map(|list| format!("{}:{list}", self.prefix))
            .collect();
        self.redis.clone().del(keys).await
    }
}

/// The lists the handlers write.
pub const LISTS: [&str; 4] = ["recorded", "first", "audited", "sent"];

/// Records the order, after the response.
#[on(OrderPlaced, linker = Web)]
async fn record_order(order: Arc<OrderPlaced>, store: State<Store>) -> anyhow::Result<()> {
    store.push("recorded", order.id).await?;
    Ok(())
}

/// The first order this web process took since it started.
#[once(OrderPlaced, linker = Web)]
async fn first_order(order: Arc<OrderPlaced>, store: State<Store>) -> anyhow::Result<()> {
    store.push("first", order.id).await?;
    Ok(())
}

/// A slow audit: what the web process must finish before it exits at
/// SIGTERM.
#[on(OrderPlaced, linker = Web)]
async fn audit_order(order: Arc<OrderPlaced>, store: State<Store>) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    if order.email.ends_with("@blocked.example") {
        anyhow::bail!("order {}: the address's domain is blocked", order.id);
    }
    store.push("audited", order.id).await?;
    Ok(())
}

#[on_failure(audit_order)]
fn audit_failed(err: &anyhow::Error) {
    tracing::warn!("audit failed: {err:#}");
}

/// Sends the confirmation, in the worker.
#[on(OrderPlaced, linker = Jobs)]
async fn send_confirmation(order: Arc<OrderPlaced>, mailer: State<Store>) -> anyhow::Result<()> {
    mailer
        .push("sent", format!("{} {}", order.id, order.email))
        .await?;
    Ok(())
}

/// The process's tracing, from `RUST_LOG` (`RUST_LOG=pyventus=debug` shows
/// each emission).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
}

/// The queue of the worker, and the prefix of the store's lists.
pub fn queue_from_env() -> String {
    std::env::var("ORDERS_QUEUE").unwrap_or_else(|_| "orders".to_owned())
}

/// Installs a Prometheus recorder and describes pyventus's metrics to it;
/// the handle renders the text a `GET /metrics` answers.
///
/// # Panics
///
/// A recorder is already installed.
pub fn install_metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("no other metrics recorder is installed");
    pyventus::metrics::describe();
    handle
}
