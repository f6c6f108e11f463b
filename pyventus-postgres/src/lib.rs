//! A transactional outbox on PostgreSQL, through sqlx: events emitted inside
//! the caller's transaction, and relays that deliver them once it commits.
//!
//! An axum service that writes to PostgreSQL and then emits an event does two
//! separate things: if the process dies between `COMMIT` and the emit, the
//! event is lost; if it emits before `COMMIT` and the transaction rolls back,
//! handlers act on data that never existed. An [`Outbox`] writes the event in
//! the same transaction as the data (one statement), so it exists exactly
//! when the data does; a [`Relay`] then delivers it: to the link-time
//! handlers, which it runs itself, on as many processes as you run (no
//! broker), or to any processing service (inline, tokio, thread pool, Redis,
//! RabbitMQ).
//!
//! - Emit: [`Outbox::emit`] (typed events that derive `Serialize` and
//!   `Deserialize`), [`Outbox::emit_named`], [`Outbox::emit_to`]; one
//!   partition key's events in commit order with [`Outbox::keyed`].
//! - Deliver: [`Relay`], at least once, with per-handler completion, retries,
//!   [`DeadLetters`], fenced leases and ordering per partition key; handlers
//!   read the event's id with [`current_delivery`].
//! - Operate: [`migrate`] and [`check_schema`], [`Outbox::purge_older_than`],
//!   [`RelayStats`] and the `metrics` feature.
//!
//! See `docs/postgres.md` for the walk-through, what is guaranteed, and the
//! operating guide (vacuum, the xmin horizon, sizing, what to monitor).
//!
//! # Examples
//!
//! ```no_run
//! use pyventus_core::Event;
//! use pyventus_postgres::{Outbox, Relay};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct OrderPlaced { id: i64 }
//! impl Event for OrderPlaced { const NAME: &'static str = "OrderPlaced"; }
//!
//! # #[tokio::main] async fn main() -> Result<(), pyventus_postgres::Error> {
//! let pool = sqlx::PgPool::connect(&pyventus_postgres::url_from_env()).await?;
//! let outbox = Outbox::builder().build(&pool)?;
//! outbox.migrate().await?; // once, at deploy time
//!
//! let mut tx = pool.begin().await?;
//! outbox.emit(&mut *tx, OrderPlaced { id: 7 }).await?;
//! tx.commit().await?;
//!
//! let relay = Relay::builder(&outbox).build()?;
//! relay.run_until_signal().await?;
//! # Ok(()) }
//! ```

mod dead_letters;
mod delivery;
mod doorbell;
mod error;
mod named;
mod outbox;
mod relay;
mod schema;
mod sql;

pub use dead_letters::{DeadLetter, DeadLetters};
pub use delivery::{Delivery, current_delivery};
pub use error::Error;
pub use outbox::{Keyed, Outbox, OutboxBuilder};
pub use relay::{Relay, RelayBuilder, RelayStats};
pub use schema::{DEFAULT_SCHEMA, SCHEMA_VERSION, check_schema, migrate};

/// The PostgreSQL URL in `PYVENTUS_POSTGRES_URL`, or the local default
/// (`postgres://postgres@127.0.0.1:5432/test`).
///
/// # Examples
///
/// ```
/// assert!(pyventus_postgres::url_from_env().starts_with("postgres"));
/// ```
pub fn url_from_env() -> String {
    std::env::var("PYVENTUS_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}
