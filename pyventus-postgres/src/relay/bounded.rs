//! Statements with a time bound: a connection that stops answering without
//! closing (a network gone silent, a NAT or a firewall that forgot the flow)
//! would hold a statement for as long as TCP keeps retrying, a quarter of an
//! hour on Linux's defaults, and the relay's claims, outcomes and renewals with
//! it. Each of them is given up after a third of the relay's lease instead
//! (the renewals' period), a second at least: a statement takes milliseconds,
//! and an answer later than the lease would come too late to matter (the rows
//! it concerns would no longer be this relay's); the floor keeps a very short
//! lease from giving up statements a busy server answers in a few hundred
//! milliseconds. The connection is then discarded at once, not
//! returned to the pool: sqlx's return to the pool talks to the connection
//! with no time bound, and would hold the pool's slot for good.
//!
//! A macro rather than a function taking the statement as a closure of the
//! connection: such a closure's future borrows the connection for any
//! lifetime, which the compiler cannot prove `Send` for the relay's tasks.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};

/// `bounded!(pool, lease, |conn| statement)`: runs the statement (a future
/// using `conn: &mut PgConnection`) on a connection of `pool`, giving up after
/// a third of `lease`, a second at least ([`limit`]), acquiring included,
/// with a transient error.
/// Evaluates to a `Result<T, sqlx::Error>`.
macro_rules! bounded {
    ($pool:expr, $lease:expr, |$conn:ident| $statement:expr) => {{
        let limit = $crate::relay::bounded::limit($lease);
        let deadline = ::pyventus_core::remote::deadline(limit);
        match ::tokio::time::timeout_at(deadline, $pool.acquire()).await {
            Err(_) => Err($crate::relay::bounded::unanswered(limit)),
            Ok(Err(err)) => Err(err),
            Ok(Ok(acquired)) => {
                let mut held = $crate::relay::bounded::Held(Some(acquired));
                let answer = {
                    let $conn = held.conn();
                    ::tokio::time::timeout_at(deadline, $statement).await
                };
                held.answered(answer, limit)
            }
        }
    }};
}
pub(crate) use bounded;

/// How long a relay on `lease` waits for a statement's answer.
pub(crate) fn limit(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_secs(1))
}

/// A connection running a bounded statement. Dropped before the statement
/// answered (given up, or the task running it aborted at shutdown), it is
/// closed here and now, its pool slot freed: its state is unknown, and a
/// return to the pool would wait on it.
pub(crate) struct Held(pub(crate) Option<PoolConnection<Postgres>>);

impl Held {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.0.as_deref_mut().expect("held until answered")
    }

    /// The statement's answer; without one, the error that says so.
    pub(crate) fn answered<T>(
        mut self,
        answer: Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed>,
        limit: Duration,
    ) -> Result<T, sqlx::Error> {
        let answered = answer.map_err(|_| unanswered(limit))?;
        // Answered: back to the pool.
        drop(self.0.take());
        answered
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// The error of a statement that got no answer within `limit`.
pub(crate) fn unanswered(limit: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("PostgreSQL did not answer within {limit:?}"),
    ))
}
