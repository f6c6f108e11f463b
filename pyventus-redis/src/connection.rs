//! Connections to Redis: their timeouts, and which failures are worth a retry.
//!
//! No connection here retries on its own: a command fails within its timeout,
//! and the caller decides (an `emit` returns the error; a worker backs off and
//! reconnects, and says so in its health). The `redis` crate's defaults retry
//! six times with growing delays, so a call to an unreachable Redis took about
//! ten seconds to fail, and a wrong password as long.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind};

use crate::Error;

/// How long connecting and each command may take before failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Opening a connection (TCP, TLS, `AUTH`, `HELLO`).
    pub(crate) connect: Duration,
    /// One command's answer.
    pub(crate) response: Duration,
}

impl Timeouts {
    /// One second each, like Sidekiq's: Redis answers in well under a
    /// millisecond when it is well, and a caller learns of an outage quickly.
    pub(crate) const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(1),
        response: Duration::from_secs(1),
    };

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.connect.is_zero() || self.response.is_zero() {
            return Err(Error::InvalidConfig(
                "connect and response timeouts must be more than zero".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A connection for ordinary commands that reconnects on the next command
/// after a failure, without retrying the failed one itself.
pub(crate) async fn manager(
    client: &redis::Client,
    timeouts: Timeouts,
) -> Result<ConnectionManager, Error> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(timeouts.response))
        .set_number_of_retries(0);
    Ok(ConnectionManager::new_with_config(client.clone(), config).await?)
}

/// [`manager`], made on pyventus's own runtime: its I/O is driven there, so
/// it keeps working while the caller's runtime is blocked (a synchronous
/// `emit` waiting on it, handlers hogging every worker thread).
pub(crate) async fn manager_on_io_runtime(
    client: &redis::Client,
    timeouts: Timeouts,
) -> Result<ConnectionManager, Error> {
    let client = client.clone();
    pyventus_core::runtime::on_io_runtime(async move { manager(&client, timeouts).await }).await
}

/// A connection of its own for blocking reads (`XREADGROUP ... BLOCK`): on a
/// shared one, a read waiting for entries would hold up every command behind
/// it. Its answers may take the block time on top of the response timeout.
pub(crate) async fn blocking_reader(
    client: &redis::Client,
    timeouts: Timeouts,
    block: Duration,
) -> Result<MultiplexedConnection, Error> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(block + timeouts.response));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// What a failed command says about what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The credentials or the ACL refuse us: retrying cannot help.
    Refused,
    /// The consumer group is gone (Redis restarted without its data, or
    /// someone destroyed it): create it again.
    NoGroup,
    /// Unreachable, slow, restarting, failing over: retry after a pause.
    Transient,
    /// Anything else (a key of the wrong type, ...): retrying will not help
    /// either, but it may be fixed by hand while we retry.
    Other,
}

pub(crate) fn fault(err: &RedisError) -> Fault {
    if is_refusal(err) {
        Fault::Refused
    } else if err.code() == Some("NOGROUP") {
        Fault::NoGroup
    } else if is_transient(err) {
        Fault::Transient
    } else {
        Fault::Other
    }
}

/// A wrong password, an unknown user, or a command the user's ACL forbids.
pub(crate) fn is_refusal(err: &RedisError) -> bool {
    err.kind() == ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
}

/// Unreachable, slow, restarting or failing over: worth a retry later.
pub(crate) fn is_transient(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

/// Milliseconds as Redis takes them.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
