//! `Outbox`: events written inside the caller's transaction.

use std::fmt;
use std::sync::Arc;

use pyventus_core::{AnyEvent, EmitKey, Event};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::doorbell::Doorbell;
use crate::schema::{DEFAULT_SCHEMA, check_name, check_schema};
use crate::sql::Sql;
use crate::{DeadLetters, Error};

/// Writes events into the outbox table on the caller's connection, inside the
/// caller's transaction: an event is visible to relays only once that
/// transaction commits, and gone if it rolls back. One statement, one round
/// trip per emit.
///
/// Each event gets an id, a UUIDv7 (time-ordered), returned by the emit and
/// readable by the handlers ([`current_delivery`](crate::current_delivery)),
/// the same on every attempt: what a handler deduplicates on. With the
/// `opentelemetry` feature the emitting span's trace context is stored with
/// the event and becomes the parent of the relay's delivery span.
///
/// Events of one *partition key* ([`keyed`](Self::keyed)) are delivered one at
/// a time, in commit order: emitting a keyed event takes a transaction-level
/// lock on its key, so two transactions emitting for the same key commit one
/// after the other (emit keyed events late in the transaction). Unkeyed
/// events are delivered in parallel.
///
/// Typed events must derive `Serialize` and `Deserialize` beside `Event`;
/// named events ([`emit_named`](Self::emit_named), [`emit_to`](Self::emit_to))
/// take any `Serialize` payload, and the relay is told its type
/// ([`RelayBuilder::named`](crate::RelayBuilder::named)).
///
/// Concurrency: an `Outbox` is a cheap `Clone` handle, shared by every task
/// that emits. It holds no lock while a statement runs.
///
/// # Examples
///
/// ```no_run
/// use pyventus_core::Event;
/// use pyventus_postgres::Outbox;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct OrderPlaced { id: i64 }
/// impl Event for OrderPlaced { const NAME: &'static str = "OrderPlaced"; }
///
/// # async fn place(pool: sqlx::PgPool) -> Result<(), pyventus_postgres::Error> {
/// let outbox = Outbox::connect(&pool).await?; // checks the schema's version
/// let mut tx = pool.begin().await?;
/// let id: i64 = sqlx::query_scalar("INSERT INTO orders DEFAULT VALUES RETURNING id")
///     .fetch_one(&mut *tx)
///     .await?;
/// outbox.emit(&mut *tx, OrderPlaced { id }).await?;
/// tx.commit().await?; // the order and its event, together
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    sql: Arc<Sql>,
    pool: PgPool,
    doorbell: Option<Doorbell>,
}

/// Builds an [`Outbox`]; see [`Outbox::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct OutboxBuilder {
    schema: String,
    doorbell: bool,
}

impl OutboxBuilder {
    /// The schema the outbox's tables live in (default `pyventus`): lowercase
    /// ASCII letters, digits and underscores.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Whether committed emits wake the relays at once (default `true`): see
    /// "How relays wake up" in `docs/postgres.md`. Without it, relays find
    /// events by polling only.
    pub fn doorbell(mut self, doorbell: bool) -> Self {
        self.doorbell = doorbell;
        self
    }

    /// The outbox, on `pool` (whose connections its doorbell and its dead
    /// letters use), without asking the database anything.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchemaName`].
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_postgres::Outbox;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pyventus_postgres::Error> {
    /// let pool = sqlx::PgPool::connect_lazy("postgres://postgres@127.0.0.1/app")?;
    /// let outbox = Outbox::builder().schema("billing").build(&pool)?;
    /// assert_eq!(outbox.schema(), "billing");
    /// # Ok(()) }
    /// ```
    pub fn build(self, pool: &PgPool) -> Result<Outbox, Error> {
        check_name(&self.schema)?;
        let sql = Arc::new(Sql::new(&self.schema));
        let doorbell = self
            .doorbell
            .then(|| Doorbell::new((*pool.connect_options()).clone(), sql.clone()));
        Ok(Outbox {
            inner: Arc::new(Inner {
                sql,
                pool: pool.clone(),
                doorbell,
            }),
        })
    }

    /// [`build`](Self::build), then checks that the database holds the
    /// outbox's tables at the version this build needs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchemaName`], [`Error::SchemaMissing`],
    /// [`Error::SchemaOutdated`], [`Error::SchemaTooNew`], [`Error::Database`].
    pub async fn connect(self, pool: &PgPool) -> Result<Outbox, Error> {
        let outbox = self.build(pool)?;
        let mut conn = pool.acquire().await?;
        check_schema(&mut conn, outbox.schema()).await?;
        Ok(outbox)
    }
}

impl Outbox {
    /// A builder: schema `pyventus`, doorbell on.
    pub fn builder() -> OutboxBuilder {
        OutboxBuilder {
            schema: DEFAULT_SCHEMA.to_owned(),
            doorbell: true,
        }
    }

    /// The outbox in the default schema, after checking its version.
    ///
    /// # Errors
    ///
    /// As [`OutboxBuilder::connect`].
    pub async fn connect(pool: &PgPool) -> Result<Outbox, Error> {
        Outbox::builder().connect(pool).await
    }

    /// Creates or upgrades the outbox's tables (see [`migrate`](crate::migrate)).
    ///
    /// # Errors
    ///
    /// As [`migrate`](crate::migrate).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn deploy(pool: sqlx::PgPool) -> Result<(), pyventus_postgres::Error> {
    /// let outbox = pyventus_postgres::Outbox::builder().build(&pool)?;
    /// outbox.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<i32, Error> {
        let mut conn = self.inner.pool.acquire().await?;
        crate::migrate(&mut conn, self.schema()).await
    }

    /// The schema of the outbox's tables.
    pub fn schema(&self) -> &str {
        &self.inner.sql.schema
    }

    /// The dead letters of this outbox.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters::new(self.inner.sql.clone(), self.inner.pool.clone())
    }

    /// Deletes the archived deliveries (see
    /// [`RelayBuilder::archive`](crate::RelayBuilder::archive)) older than
    /// `age`; returns how many. Dead letters have their own
    /// ([`DeadLetters::purge_older_than`]).
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn nightly(outbox: pyventus_postgres::Outbox) -> Result<(), pyventus_postgres::Error> {
    /// let week = std::time::Duration::from_secs(7 * 24 * 3600);
    /// let purged = outbox.purge_older_than(week).await?;
    /// # Ok(()) }
    /// ```
    pub async fn purge_older_than(&self, age: std::time::Duration) -> Result<u64, Error> {
        Ok(sqlx::query(&self.inner.sql.purge_delivered_older)
            .bind(crate::sql::millis(age))
            .execute(&self.inner.pool)
            .await?
            .rows_affected())
    }

    /// How many events wait in the outbox (not delivered yet, in flight
    /// included), and how long the oldest has waited: the relay's backlog
    /// and lag, for a health check or a gauge.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn probe(outbox: pyventus_postgres::Outbox) -> Result<(), pyventus_postgres::Error> {
    /// let (waiting, oldest) = outbox.backlog().await?;
    /// if oldest > std::time::Duration::from_secs(60) { /* alert: relays are behind or down */ }
    /// # Ok(()) }
    /// ```
    pub async fn backlog(&self) -> Result<(i64, std::time::Duration), Error> {
        let (waiting, oldest): (i64, f64) = sqlx::query_as(&self.inner.sql.pending)
            .fetch_one(&self.inner.pool)
            .await?;
        Ok((
            waiting,
            std::time::Duration::try_from_secs_f64(oldest).unwrap_or_default(),
        ))
    }

    pub(crate) fn sql(&self) -> &Arc<Sql> {
        &self.inner.sql
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The events of one partition key: emitted through the returned handle,
    /// they are delivered one at a time, in commit order.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use pyventus_core::Event;
    /// # #[derive(Debug, serde::Serialize, serde::Deserialize)] struct OrderShipped { id: i64 }
    /// # impl Event for OrderShipped { const NAME: &'static str = "OrderShipped"; }
    /// # async fn ship(outbox: pyventus_postgres::Outbox, tx: &mut sqlx::PgConnection) -> Result<(), pyventus_postgres::Error> {
    /// let id = 7;
    /// outbox.keyed(format!("order-{id}")).emit(tx, OrderShipped { id }).await?;
    /// # Ok(()) }
    /// ```
    pub fn keyed(&self, partition_key: impl Into<String>) -> Keyed<'_> {
        Keyed {
            outbox: self,
            key: partition_key.into(),
        }
    }

    /// Writes a typed event on `conn` (a transaction, usually: `&mut *tx`);
    /// returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::Pyventus`] with [`pyventus_core::Error::NotSerializable`] if
    /// the event does not derive `Serialize` and `Deserialize`;
    /// [`Error::InvalidEventName`]; [`Error::Database`] if the insert fails
    /// (the transaction is then aborted, as after any failed statement).
    ///
    /// # Examples
    ///
    /// See [`Outbox`].
    pub async fn emit<E: Event>(&self, conn: &mut PgConnection, event: E) -> Result<Uuid, Error> {
        self.insert(conn, E::NAME, typed_payload(&event)?, None)
            .await
    }

    /// Writes a named event with a JSON payload; the relay decodes it as the
    /// type it was told for that name ([`RelayBuilder::named`](crate::RelayBuilder::named)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEventName`] for an empty name or `...`;
    /// [`Error::EncodePayload`]; [`Error::Database`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn greet(outbox: pyventus_postgres::Outbox, tx: &mut sqlx::PgConnection) -> Result<(), pyventus_postgres::Error> {
    /// outbox.emit_named(tx, "Greet", "Pyventus".to_owned()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit_named<T: Serialize>(
        &self,
        conn: &mut PgConnection,
        name: &str,
        payload: T,
    ) -> Result<Uuid, Error> {
        self.insert(conn, name, named_payload(name, &payload)?, None)
            .await
    }

    /// Writes a named event through its key (a [`NamedKey`](pyventus_core::NamedKey)
    /// ties the payload's type to the name at compile time).
    ///
    /// # Errors
    ///
    /// As [`emit_named`](Self::emit_named).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use pyventus_core::NamedKey;
    ///
    /// pyventus_core::named_key!(static TICK: NamedKey<u64> = "Tick");
    ///
    /// # async fn tick(outbox: pyventus_postgres::Outbox, tx: &mut sqlx::PgConnection) -> Result<(), pyventus_postgres::Error> {
    /// outbox.emit_to(tx, &TICK, 7).await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit_to<T: Serialize, K: EmitKey<T> + ?Sized>(
        &self,
        conn: &mut PgConnection,
        key: &K,
        payload: T,
    ) -> Result<Uuid, Error> {
        let name = key.event_key().name();
        self.insert(conn, name, named_payload(name, &payload)?, None)
            .await
    }

    async fn insert(
        &self,
        conn: &mut PgConnection,
        name: &str,
        payload: String,
        key: Option<&str>,
    ) -> Result<Uuid, Error> {
        check_event_name(name)?;
        let inner = &*self.inner;
        let id = Uuid::now_v7();
        // A token drawn for the transaction, which only its first emit keeps
        // (see `Sql::emit`). A later emit's draw is not locked: the doorbell
        // finds it free at once, and rings early for nothing.
        let token = inner.doorbell.as_ref().map(|_| fastrand::i32(..));
        let sql = inner.sql.emit(key.is_some(), token.is_some());
        let mut query = sqlx::query(sql)
            .bind(id)
            .bind(name)
            .bind(payload)
            .bind(trace_context())
            .bind(key);
        if let Some(token) = token {
            query = query.bind(token);
        }
        query.execute(conn).await?;
        if let (Some(doorbell), Some(token)) = (&inner.doorbell, token) {
            doorbell.ring_after(token);
        }
        Ok(id)
    }
}

/// The events of one partition key, from [`Outbox::keyed`]: the same emits,
/// delivered one at a time in commit order.
#[derive(Debug)]
pub struct Keyed<'a> {
    outbox: &'a Outbox,
    key: String,
}

impl Keyed<'_> {
    /// The partition key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// [`Outbox::emit`] under this key.
    ///
    /// # Errors
    ///
    /// As [`Outbox::emit`].
    ///
    /// # Examples
    ///
    /// See [`Outbox::keyed`].
    pub async fn emit<E: Event>(&self, conn: &mut PgConnection, event: E) -> Result<Uuid, Error> {
        let payload = typed_payload(&event)?;
        self.outbox
            .insert(conn, E::NAME, payload, Some(&self.key))
            .await
    }

    /// [`Outbox::emit_named`] under this key.
    ///
    /// # Errors
    ///
    /// As [`Outbox::emit_named`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(outbox: pyventus_postgres::Outbox, tx: &mut sqlx::PgConnection) -> Result<(), pyventus_postgres::Error> {
    /// outbox.keyed("account-9").emit_named(tx, "Credited", 250_u64).await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit_named<T: Serialize>(
        &self,
        conn: &mut PgConnection,
        name: &str,
        payload: T,
    ) -> Result<Uuid, Error> {
        let payload = named_payload(name, &payload)?;
        self.outbox
            .insert(conn, name, payload, Some(&self.key))
            .await
    }

    /// [`Outbox::emit_to`] under this key.
    ///
    /// # Errors
    ///
    /// As [`Outbox::emit_named`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// pyventus_core::named_key!(static CREDITED: pyventus_core::NamedKey<u64> = "Credited");
    /// # async fn f(outbox: pyventus_postgres::Outbox, tx: &mut sqlx::PgConnection) -> Result<(), pyventus_postgres::Error> {
    /// outbox.keyed("account-9").emit_to(tx, &CREDITED, 250).await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit_to<T: Serialize, K: EmitKey<T> + ?Sized>(
        &self,
        conn: &mut PgConnection,
        key: &K,
        payload: T,
    ) -> Result<Uuid, Error> {
        let name = key.event_key().name();
        let payload = named_payload(name, &payload)?;
        self.outbox
            .insert(conn, name, payload, Some(&self.key))
            .await
    }
}

fn typed_payload<E: Event>(event: &E) -> Result<String, Error> {
    let event: &AnyEvent = event;
    Ok(pyventus_core::remote::encode(event)?)
}

fn named_payload<T: Serialize>(name: &str, payload: &T) -> Result<String, Error> {
    serde_json::to_string(payload).map_err(|source| Error::EncodePayload {
        event: name.to_owned(),
        source,
    })
}

fn check_event_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name == "..." {
        return Err(Error::InvalidEventName(name.to_owned()));
    }
    Ok(())
}

/// The emitting span's propagation headers, as JSON, when it is traced.
fn trace_context() -> Option<String> {
    #[cfg(feature = "opentelemetry")]
    {
        let mut context = std::collections::BTreeMap::new();
        pyventus_core::remote::trace::inject(&tracing::Span::current(), &mut context);
        if !context.is_empty() {
            return serde_json::to_string(&context).ok();
        }
    }
    None
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("schema", &self.schema())
            .field("doorbell", &self.inner.doorbell.is_some())
            .finish_non_exhaustive()
    }
}
