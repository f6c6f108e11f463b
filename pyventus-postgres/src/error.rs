//! The PostgreSQL backend's error type.

use std::time::Duration;

/// What can go wrong emitting into the outbox, setting it up, or relaying it.
///
/// # Examples
///
/// ```
/// use pyventus_postgres::{Error, Outbox};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let pool = sqlx::PgPool::connect_lazy("postgres://postgres@127.0.0.1/app")?;
/// let err = Outbox::builder().schema("no spaces, please").build(&pool).unwrap_err();
/// assert!(matches!(err, Error::InvalidSchemaName(_)));
/// assert!(err.to_string().contains("letters, digits and underscores"));
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// PostgreSQL refused a statement or could not be reached.
    #[error("postgres: {0}")]
    Database(#[source] sqlx::Error),

    /// A schema name that cannot be used unquoted in SQL.
    #[error(
        "invalid schema name `{0}`: use 1 to 48 lowercase ASCII letters, digits and underscores, starting with a letter"
    )]
    InvalidSchemaName(String),

    /// A setting that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// An event name the outbox cannot store: empty, or the global event's `...`.
    #[error(
        "invalid event name `{0}`: a named event needs a non-empty name other than `...` (the global event stays in its process)"
    )]
    InvalidEventName(String),

    /// A named event's payload that serde could not turn into JSON.
    #[error("cannot encode the payload of `{event}` as JSON: {source}")]
    EncodePayload {
        /// The event's name.
        event: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },

    /// The outbox's tables are not in the database.
    #[error(
        "the outbox schema `{schema}` is not installed in this database: call `pyventus_postgres::migrate` (or `Outbox::migrate`) once at deploy time"
    )]
    SchemaMissing {
        /// The schema.
        schema: String,
    },

    /// The database holds an older version of the outbox's tables than this
    /// build expects.
    #[error(
        "the outbox schema `{schema}` is at version {found}, this build of pyventus-postgres needs version {expected}: call `pyventus_postgres::migrate` to upgrade it"
    )]
    SchemaOutdated {
        /// The schema.
        schema: String,
        /// The version in the database.
        found: i32,
        /// The version this build needs.
        expected: i32,
    },

    /// The database holds a newer version of the outbox's tables than this
    /// build knows: an older binary running after a newer one migrated.
    #[error(
        "the outbox schema `{schema}` is at version {found}, newer than the version {expected} this build of pyventus-postgres knows: deploy the newer build (a downgrade is not supported)"
    )]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// The version in the database.
        found: i32,
        /// The version this build knows.
        expected: i32,
    },

    /// A relay could not reach PostgreSQL for longer than its
    /// [`give_up_after`](crate::RelayBuilder::give_up_after): `run` returned,
    /// so that whatever supervises the process can act.
    #[error("PostgreSQL has been unreachable for {:.1} s; the relay gave up", .after.as_secs_f64())]
    GaveUp {
        /// How long it had been unreachable.
        after: Duration,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },

    /// [`Relay::run`](crate::Relay::run) was called while the relay was
    /// already running.
    #[error("this relay is already running; build another relay to run a second loop")]
    AlreadyRunning,

    /// pyventus refused something: an event that cannot be serialized, the
    /// global linker that cannot be built, ...
    #[error(transparent)]
    Pyventus(#[from] pyventus_core::Error),
}

impl Error {
    /// Whether retrying can help: the database was unreachable, restarting or
    /// too busy, as opposed to a refusal (a constraint, a bad statement, a
    /// setting).
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_postgres::Error;
    ///
    /// assert!(!Error::AlreadyRunning.is_transient());
    /// assert!(Error::Database(sqlx::Error::PoolTimedOut).is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(err) => is_transient(err),
            Error::GaveUp { .. } => true,
            _ => false,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Database(err)
    }
}

/// Whether a database error comes from the connection (or a server going
/// away) rather than from the statement.
pub(crate) fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08 (connection), 57P0x (shutdown, crash, cannot connect
            // now), 53300 (too many connections), 40001/40P01 (serialization,
            // deadlock).
            code.starts_with("08")
                || code.starts_with("57P0")
                || code == "53300"
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    }
}
