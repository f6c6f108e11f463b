//! Claiming: the rows a relay takes under a lease, read into [`Claimed`].

use std::time::Duration;

use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::Error;
use crate::sql::{Sql, millis};

/// One claimed event: what a delivery needs, and the fence that settles it.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) seq: i64,
    /// The fence of this claim: only it settles the row.
    pub(crate) fence: i64,
    pub(crate) id: Uuid,
    pub(crate) event: String,
    pub(crate) payload: String,
    /// Propagation headers, as JSON.
    #[cfg_attr(
        not(feature = "opentelemetry"),
        expect(dead_code, reason = "read by the opentelemetry feature")
    )]
    pub(crate) context: Option<String>,
    pub(crate) partition_key: Option<String>,
    /// This attempt, from 1.
    pub(crate) attempts: i32,
    /// Handlers that succeeded on an earlier attempt.
    pub(crate) done: Vec<String>,
    /// Seconds from the emit to this claim.
    pub(crate) lag: f64,
}

/// Claims up to `limit` due rows for `owner`, leased for `lease`; in `seq`
/// order.
pub(crate) async fn claim(
    pool: &PgPool,
    sql: &Sql,
    limit: usize,
    lease: Duration,
    owner: &str,
    held: &[i64],
) -> Result<Vec<Claimed>, Error> {
    let rows = sqlx::query(&sql.claim)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(millis(lease))
        .bind(owner)
        .bind(held)
        .fetch_all(pool)
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            Ok(Claimed {
                seq: row.try_get(0)?,
                fence: row.try_get(1)?,
                id: row.try_get(2)?,
                event: row.try_get(3)?,
                payload: row.try_get(4)?,
                context: row.try_get(5)?,
                partition_key: row.try_get(6)?,
                attempts: row.try_get(7)?,
                done: row.try_get(8)?,
                lag: row.try_get(9)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    claimed.sort_unstable_by_key(|c| c.seq);
    Ok(claimed)
}

impl Claimed {
    /// The propagation headers, if the event carries readable ones.
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn trace_context(&self) -> std::collections::BTreeMap<String, String> {
        self.context
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }
}
