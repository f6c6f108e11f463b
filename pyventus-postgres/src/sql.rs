//! Every statement this crate sends, written once per schema: the outbox's
//! protocol is read and written here and nowhere else.
//!
//! Statements are runtime queries (no `DATABASE_URL` at build time); sqlx
//! prepares each once per connection, so an emit is one round trip.

use crate::schema::{LockKind, lock_key};

/// The statements of one outbox schema.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) schema: String,
    /// The channel relays `LISTEN` on.
    pub(crate) channel: String,
    /// Emit: `[plain, doorbell, keyed, keyed + doorbell]`.
    emit: [String; 4],
    pub(crate) ring: String,
    pub(crate) claim: String,
    pub(crate) renew: String,
    pub(crate) complete: String,
    pub(crate) archive: String,
    pub(crate) retry: String,
    pub(crate) release: String,
    pub(crate) dead_letter: String,
    pub(crate) dead_list: String,
    pub(crate) dead_count: String,
    pub(crate) dead_replay: String,
    pub(crate) dead_purge: String,
    pub(crate) dead_purge_all: String,
    pub(crate) purge_dead_older: String,
    pub(crate) purge_delivered_older: String,
    pub(crate) pending: String,
}

impl Sql {
    #[expect(clippy::too_many_lines, reason = "the statements, one after the other")]
    pub(crate) fn new(schema: &str) -> Sql {
        let s = schema;
        let doorbell = lock_key(s, LockKind::Doorbell);
        let partition = lock_key(s, LockKind::Partition);
        let insert = format!("INSERT INTO {s}.outbox (id, event, payload, context, partition_key)");
        let values = "$1, $2, $3::jsonb, $4::jsonb, $5";
        let key = format!("pg_advisory_xact_lock({partition}, hashtext($5))");
        // The locks are taken before the row is formed, so a keyed row takes
        // its `seq` only once the previous transaction of its key has ended.
        let locked = |locks: &str| format!("{insert} SELECT {values} FROM (SELECT {locks}) AS l");
        // The doorbell's token is the transaction's: its first emit draws it
        // ($6) and keeps it in a setting local to the transaction, and later
        // emits lock the same one, so however many events a transaction
        // emits it holds one lock (a lock per emit once filled PostgreSQL's
        // lock table at about 13,000 emits in one transaction). A `ROLLBACK
        // TO SAVEPOINT` undoes the setting with the lock, and the next emit
        // draws anew: an emit never asks for a lock that the doorbell (or
        // anyone) may hold, which would make it wait, and could close a
        // deadlock cycle. Nothing is returned: PostgreSQL refuses `RETURNING`
        // on a table with `DO INSTEAD` rules, and an `INSERT` in a `WITH` on
        // one with `DO ALSO` rules, both of which a user may keep on the
        // outbox (a partitioning by hand, an audit copy).
        let setting = format!("pyventus.doorbell_{s}");
        let token = format!(
            "coalesce(nullif(current_setting('{setting}', true), '')::int4, \
             set_config('{setting}', $6::text, true)::int4)"
        );
        let bell = format!("pg_advisory_xact_lock_shared({doorbell}, {token})");
        Sql {
            schema: s.to_owned(),
            channel: format!("pyventus_{s}"),
            emit: [
                format!("{insert} VALUES ({values})"),
                locked(&bell),
                locked(&key),
                locked(&format!("{key}, {bell}")),
            ],
            // Waits for the emitting transactions that hold these doorbell
            // tokens to end (commit or roll back), then notifies the relays:
            // from a transaction of its own, never the emitter's.
            ring: format!(
                "WITH waited AS (
                     SELECT count(pg_advisory_xact_lock({doorbell}, t)) AS n
                     FROM unnest($1::int4[]) AS t
                 )
                 SELECT pg_notify($2, '') FROM waited"
            ),
            // A lease runs from when the row is written (`clock_timestamp()`),
            // not from when the statement started (`now()`): a claim or a
            // renewal that waited behind a lock for longer than the lease
            // would otherwise write a lease already over.
            //
            // The first rows due, in order; a keyed row only when no earlier
            // row of its key remains (in flight, waiting for a retry, or not
            // claimed yet). Rows another relay is claiming are skipped, and so
            // are the rows this relay holds ($4) whose lease ran out while the
            // database was unreachable: their outcome is still to be written.
            claim: format!(
                "WITH c AS (
                     SELECT o.seq FROM {s}.outbox o
                     WHERE o.due_at <= now() AND o.seq <> ALL($4::int8[])
                       AND (o.partition_key IS NULL OR NOT EXISTS (
                             SELECT 1 FROM {s}.outbox p
                             WHERE p.partition_key = o.partition_key AND p.seq < o.seq))
                     ORDER BY o.seq
                     LIMIT $1
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE {s}.outbox o
                 SET due_at = clock_timestamp() + $2 * interval '1 millisecond',
                     lease_owner = $3, fence = o.fence + 1, attempts = o.attempts + 1
                 FROM c WHERE o.seq = c.seq
                 RETURNING o.seq, o.fence, o.id, o.event, o.payload::text, o.context::text,
                           o.partition_key, o.attempts, o.done,
                           extract(epoch FROM now() - o.emitted_at)::float8"
            ),
            // A row this relay has already retried or given back (its
            // outcome written, `lease_owner` cleared, while the batch it was
            // written in goes on) keeps its `due_at`: still its fence, so not
            // lost, but no longer leased.
            renew: format!(
                "UPDATE {s}.outbox o
                 SET due_at = CASE WHEN o.lease_owner IS NULL THEN o.due_at
                                   ELSE clock_timestamp() + $3 * interval '1 millisecond' END
                 FROM unnest($1::int8[], $2::int8[]) AS h(seq, fence)
                 WHERE o.seq = h.seq AND o.fence = h.fence
                 RETURNING o.seq"
            ),
            complete: format!(
                "DELETE FROM {s}.outbox o
                 USING unnest($1::int8[], $2::int8[]) AS d(seq, fence)
                 WHERE o.seq = d.seq AND o.fence = d.fence
                 RETURNING o.seq"
            ),
            archive: format!(
                "WITH d AS (
                     DELETE FROM {s}.outbox o
                     USING unnest($1::int8[], $2::int8[]) AS d(seq, fence)
                     WHERE o.seq = d.seq AND o.fence = d.fence
                     RETURNING o.*
                 )
                 INSERT INTO {s}.delivered (seq, id, event, payload, partition_key, emitted_at, attempts)
                 SELECT seq, id, event, payload, partition_key, emitted_at, attempts FROM d
                 RETURNING seq"
            ),
            retry: format!(
                "UPDATE {s}.outbox
                 SET done = ARRAY(SELECT DISTINCT unnest(done || $3::text[])),
                     due_at = now() + $4 * interval '1 millisecond',
                     lease_owner = NULL, last_error = $5
                 WHERE seq = $1 AND fence = $2"
            ),
            release: format!(
                "UPDATE {s}.outbox o
                 SET due_at = now(), lease_owner = NULL, attempts = greatest(o.attempts - 1, 0)
                 FROM unnest($1::int8[], $2::int8[]) AS r(seq, fence)
                 WHERE o.seq = r.seq AND o.fence = r.fence
                 RETURNING o.seq"
            ),
            dead_letter: format!(
                "WITH d AS (
                     DELETE FROM {s}.outbox WHERE seq = $1 AND fence = $2 RETURNING *
                 )
                 INSERT INTO {s}.dead_letters
                     (seq, id, event, payload, context, partition_key, emitted_at, attempts,
                      done, failed, kind, reason)
                 SELECT seq, id, event, payload, context, partition_key, emitted_at, attempts,
                        ARRAY(SELECT DISTINCT unnest(done || $3::text[])), $4, $5, $6
                 FROM d
                 ON CONFLICT (seq) DO UPDATE SET
                     attempts = EXCLUDED.attempts, done = EXCLUDED.done, failed = EXCLUDED.failed,
                     kind = EXCLUDED.kind, reason = EXCLUDED.reason, dead_at = EXCLUDED.dead_at
                 RETURNING seq"
            ),
            dead_list: format!(
                "SELECT seq, id, event, payload::text, partition_key,
                        (extract(epoch FROM emitted_at) * 1000)::int8, attempts, done, failed,
                        kind, reason, (extract(epoch FROM dead_at) * 1000)::int8
                 FROM {s}.dead_letters WHERE seq > $1 ORDER BY seq LIMIT $2"
            ),
            dead_count: format!("SELECT count(*) FROM {s}.dead_letters"),
            // Back into the outbox under its own seq (so a keyed event keeps
            // its place), with its attempts reset and its done handlers kept.
            dead_replay: format!(
                "WITH d AS (
                     DELETE FROM {s}.dead_letters WHERE seq = ANY($1::int8[]) RETURNING *
                 )
                 INSERT INTO {s}.outbox
                     (seq, id, event, payload, context, partition_key, emitted_at, done, last_error)
                 OVERRIDING SYSTEM VALUE
                 SELECT seq, id, event, payload, context, partition_key, emitted_at, done, reason
                 FROM d
                 RETURNING seq"
            ),
            dead_purge: format!(
                "DELETE FROM {s}.dead_letters WHERE seq = ANY($1::int8[]) RETURNING seq"
            ),
            dead_purge_all: format!("DELETE FROM {s}.dead_letters"),
            purge_dead_older: format!(
                "DELETE FROM {s}.dead_letters WHERE dead_at < now() - $1 * interval '1 millisecond'"
            ),
            purge_delivered_older: format!(
                "DELETE FROM {s}.delivered WHERE delivered_at < now() - $1 * interval '1 millisecond'"
            ),
            pending: format!(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(emitted_at)), 0)::float8
                 FROM {s}.outbox"
            ),
        }
    }

    /// The emit statement for a keyed or unkeyed event, ringing the doorbell
    /// or not; one that rings takes the token it draws as `$6`, and locks
    /// its transaction's (the first emit's draw).
    pub(crate) fn emit(&self, keyed: bool, doorbell: bool) -> &str {
        &self.emit[usize::from(doorbell) | usize::from(keyed) << 1]
    }
}

/// Milliseconds, as the `float8` the statements multiply an interval by.
pub(crate) fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
