//! The outbox's tables: the migrations this crate ships, applying them, and
//! the version check every outbox and relay makes before it starts.
//!
//! Migrations are SQL files in `src/migrations/`, numbered from 1, with the
//! schema's name as `{schema}`. [`migrate`] applies the missing ones in one
//! transaction, under an advisory lock (two deploys migrating at once apply
//! each migration once), and records each in `<schema>.schema_version`.

use sqlx::{Connection, PgConnection};

use crate::Error;

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_outbox.sql")];

/// The version of the outbox's tables this build reads and writes.
///
/// # Examples
///
/// ```
/// assert_eq!(pyventus_postgres::SCHEMA_VERSION, 1);
/// ```
pub const SCHEMA_VERSION: i32 = 1;

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

/// The default schema (PostgreSQL namespace) of the outbox's tables.
pub const DEFAULT_SCHEMA: &str = "pyventus";

/// Checks a schema name: it is written into SQL unquoted, so only lowercase
/// letters, digits and underscores, starting with a letter.
pub(crate) fn check_name(schema: &str) -> Result<(), Error> {
    let valid = (1..=48).contains(&schema.len())
        && schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidSchemaName(schema.to_owned()))
    }
}

/// Creates or upgrades the outbox's tables in `schema` (default
/// [`DEFAULT_SCHEMA`]), and returns the version it is at. Safe to call from
/// every process at startup, or once at deploy time: it applies only the
/// migrations not applied yet, in one transaction, under an advisory lock.
///
/// # Errors
///
/// [`Error::InvalidSchemaName`]; [`Error::SchemaTooNew`] if a newer build
/// migrated the database already; [`Error::Database`] if a statement fails
/// (nothing is applied then).
///
/// # Examples
///
/// ```no_run
/// use sqlx::Connection;
///
/// # async fn deploy() -> Result<(), pyventus_postgres::Error> {
/// let mut conn = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1/app").await?;
/// let version = pyventus_postgres::migrate(&mut conn, "pyventus").await?;
/// assert_eq!(version, pyventus_postgres::SCHEMA_VERSION);
/// # Ok(()) }
/// ```
pub async fn migrate(conn: &mut PgConnection, schema: &str) -> Result<i32, Error> {
    check_name(schema)?;
    let mut tx = conn.begin().await?;
    // One migrator at a time, whoever else calls this.
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(lock_key(schema, LockKind::Migration))
        .bind(0_i32)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .execute(&mut *tx)
    .await?;
    let found = current(&mut tx, schema).await?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        sqlx::raw_sql(&migration.replace("{schema}", schema))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO {schema}.schema_version (version) VALUES ($1)"
        ))
        .bind(version)
        .execute(&mut *tx)
        .await?;
        tracing::info!(target: "pyventus", schema, version, "applied an outbox migration");
    }
    tx.commit().await?;
    Ok(SCHEMA_VERSION)
}

/// Checks that `schema` holds the outbox's tables at [`SCHEMA_VERSION`].
///
/// # Errors
///
/// [`Error::SchemaMissing`], [`Error::SchemaOutdated`] or
/// [`Error::SchemaTooNew`], each saying what to do; [`Error::Database`].
///
/// # Examples
///
/// ```no_run
/// # async fn startup(pool: sqlx::PgPool) -> Result<(), pyventus_postgres::Error> {
/// let mut conn = pool.acquire().await?;
/// pyventus_postgres::check_schema(&mut conn, "pyventus").await?;
/// # Ok(()) }
/// ```
pub async fn check_schema(conn: &mut PgConnection, schema: &str) -> Result<(), Error> {
    check_name(schema)?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{schema}.schema_version"))
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Err(Error::SchemaMissing {
            schema: schema.to_owned(),
        });
    }
    let found = current(conn, schema).await?;
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less if found == 0 => Err(Error::SchemaMissing {
            schema: schema.to_owned(),
        }),
        std::cmp::Ordering::Less => Err(Error::SchemaOutdated {
            schema: schema.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Greater => Err(Error::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}

async fn current(conn: &mut PgConnection, schema: &str) -> Result<i32, Error> {
    let version: Option<i32> =
        sqlx::query_scalar(&format!("SELECT max(version) FROM {schema}.schema_version"))
            .fetch_one(conn)
            .await?;
    Ok(version.unwrap_or(0))
}

/// The first key of the advisory locks this outbox takes (two-key advisory
/// locks do not overlap with single-key ones): a stable hash of the schema's
/// name, so that two outboxes in one database do not share locks. The lock
/// kinds are told apart by [`LockKind`].
pub(crate) fn lock_class(schema: &str) -> i32 {
    // FNV-1a, folded to 31 bits and cleared of its two low bits, which
    // `LockKind` fills.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in schema.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::try_from((hash >> 1) & !0b11).unwrap_or(0)
}

/// What an advisory lock of the outbox is for (the low bits of its class).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockKind {
    /// Migrations (second key 0).
    Migration = 0,
    /// The doorbell: an emitting transaction holds one shared, until it ends.
    Doorbell = 1,
    /// A partition key: an emitting transaction holds it until it ends, so
    /// that the events of one key take their `seq` in commit order.
    Partition = 2,
}

/// The first key of an advisory lock of this kind.
pub(crate) fn lock_key(schema: &str, kind: LockKind) -> i32 {
    lock_class(schema) | kind as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked_before_they_reach_sql() {
        assert!(check_name("pyventus").is_ok());
        assert!(check_name("orders_2").is_ok());
        for bad in [
            "",
            "Orders",
            "1abc",
            "a b",
            "a;drop",
            "a\"b",
            &"x".repeat(49),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lock_classes_differ_by_schema_and_by_kind() {
        assert_ne!(lock_class("a"), lock_class("b"));
        let kinds = [LockKind::Migration, LockKind::Doorbell, LockKind::Partition];
        let keys: std::collections::HashSet<_> =
            kinds.iter().map(|k| lock_key("pyventus", *k)).collect();
        assert_eq!(keys.len(), 3);
        assert!(lock_class("pyventus") >= 0);
    }
}
