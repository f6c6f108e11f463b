//! The typed adapter over a queue's Redis commands: every command the service,
//! the workers and the dead letters send goes through here.
//!
//! Commands that must check something and act in one step (the backlog before
//! adding, the owner before renewing, acknowledging or dead-lettering, the
//! letter before replaying) are Lua scripts, in `src/lua/`: Redis runs each
//! atomically. Replies are read from raw values, entry by entry (see
//! [`entry`](crate::entry)).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{Script, Value};

use crate::backlog::Overflow;
use crate::connection::millis;
use crate::entry::{self, Entry, Read};
use crate::envelope::Field;
use crate::{Error, GROUP, dead_key, stream_key};

/// The scripts, hashed once; `EVALSHA` loads them again after a restart.
struct Scripts {
    enqueue: Script,
    claim: Script,
    renew: Script,
    release: Script,
    dead_letter: Script,
    trim: Script,
    replay: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| {
    let with_helpers = |body: &str| Script::new(&[include_str!("lua/common.lua"), body].concat());
    Scripts {
        enqueue: with_helpers(include_str!("lua/enqueue.lua")),
        claim: Script::new(include_str!("lua/claim.lua")),
        renew: with_helpers(include_str!("lua/renew.lua")),
        release: with_helpers(include_str!("lua/release.lua")),
        dead_letter: Script::new(include_str!("lua/dead_letter.lua")),
        trim: with_helpers(include_str!("lua/trim.lua")),
        replay: Script::new(include_str!("lua/replay.lua")),
    }
});

/// How many ids one script call takes (Lua's `unpack` has a limit).
const IDS_PER_CALL: usize = 1_000;

/// A queue's keys, on one connection. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Stream {
    conn: ConnectionManager,
    keys: Arc<Keys>,
}

struct Keys {
    queue: String,
    stream: String,
    dead: String,
}

/// An entry taken for a delivery, and how many times it has been delivered
/// (this time included).
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) entry: Read,
    pub(crate) deliveries: u64,
}

impl Taken {
    pub(crate) fn id(&self) -> &str {
        match &self.entry {
            Ok(entry) => &entry.id,
            Err(unreadable) => &unreadable.id,
        }
    }
}

/// What one pass of [`Stream::claim_idle`] found.
#[derive(Debug)]
pub(crate) struct Claimed {
    /// Where the next pass starts; `0-0` once the whole pending list was seen.
    pub(crate) cursor: String,
    pub(crate) taken: Vec<Taken>,
    /// Pending entries no longer in the stream (deleted by hand, or trimmed).
    pub(crate) deleted: Vec<String>,
}

/// What [`Stream::add_checked`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Added {
    /// Enqueued, with the backlog after it and how many waiting entries were
    /// dropped to make room.
    Enqueued {
        id: String,
        backlog: u64,
        dropped: u64,
    },
    /// Refused: the backlog had reached the cap.
    Full { backlog: u64 },
}

impl Stream {
    pub(crate) fn new(conn: ConnectionManager, queue: &str) -> Self {
        Stream {
            conn,
            keys: Arc::new(Keys {
                queue: queue.to_owned(),
                stream: stream_key(queue),
                dead: dead_key(queue),
            }),
        }
    }

    /// The same keys on another connection.
    pub(crate) fn with_connection(&self, conn: ConnectionManager) -> Self {
        Stream {
            conn,
            keys: self.keys.clone(),
        }
    }

    /// Deletes `key` (a request's reply list).
    pub(crate) async fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut self.conn())
            .await?)
    }

    pub(crate) fn queue(&self) -> &str {
        &self.keys.queue
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Creates the consumer group at the stream's start (so entries enqueued
    /// before any worker existed are delivered) if it is missing. Returns
    /// whether it was missing.
    pub(crate) async fn ensure_group(&self) -> Result<bool, Error> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match created {
            Ok(()) => Ok(true),
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// `XADD`: enqueues an entry, whatever the backlog.
    pub(crate) async fn add(&self, fields: &[Field]) -> Result<String, Error> {
        Ok(self.xadd(fields).query_async(&mut self.conn()).await?)
    }

    /// [`add`](Self::add) on a blocking connection.
    pub(crate) fn add_blocking(
        &self,
        conn: &mut redis::Connection,
        fields: &[Field],
    ) -> Result<String, Error> {
        Ok(self.xadd(fields).query(conn)?)
    }

    fn xadd(&self, fields: &[Field]) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.keys.stream).arg("*");
        for (name, value) in fields {
            cmd.arg(name.as_ref()).arg(value);
        }
        cmd
    }

    /// Enqueues an entry unless the backlog has reached `cap`; with
    /// [`Overflow::DropOldest`], drops the oldest waiting entries instead.
    pub(crate) async fn add_checked(
        &self,
        fields: &[Field],
        cap: u64,
        overflow: Overflow,
    ) -> Result<Added, Error> {
        let reply = Self::enqueue_call(&self.keys.stream, fields, cap, overflow)
            .invoke_async(&mut self.conn())
            .await?;
        self.added(reply)
    }

    /// [`add_checked`](Self::add_checked) on a blocking connection.
    pub(crate) fn add_checked_blocking(
        &self,
        conn: &mut redis::Connection,
        fields: &[Field],
        cap: u64,
        overflow: Overflow,
    ) -> Result<Added, Error> {
        let reply = Self::enqueue_call(&self.keys.stream, fields, cap, overflow).invoke(conn)?;
        self.added(reply)
    }

    fn enqueue_call<'a>(
        stream: &'a str,
        fields: &[Field],
        cap: u64,
        overflow: Overflow,
    ) -> redis::ScriptInvocation<'a> {
        let mut call = SCRIPTS.enqueue.key(stream);
        call.arg(GROUP).arg(cap).arg(match overflow {
            Overflow::Reject => "reject",
            Overflow::DropOldest => "drop",
        });
        for (name, value) in fields {
            call.arg(name.as_ref()).arg(value);
        }
        call
    }

    /// What the enqueue script's reply says.
    fn added(&self, reply: Vec<Value>) -> Result<Added, Error> {
        const COMMAND: &str = "enqueue script";
        let [id, backlog, dropped, created] = <[Value; 4]>::try_from(reply)
            .map_err(|_| Error::UnexpectedReply { command: COMMAND })?;
        let backlog = entry::int(&backlog, COMMAND)?;
        if entry::int(&created, COMMAND)? == 1 {
            tracing::warn!(
                target: "pyventus",
                queue = %self.queue(),
                "the consumer group was missing (Redis restarted without its data?): created it \
                 again; entries enqueued before may have been lost with it"
            );
        }
        Ok(match entry::text(id) {
            Some(id) => Added::Enqueued {
                id,
                backlog,
                dropped: entry::int(&dropped, COMMAND)?,
            },
            None => Added::Full { backlog },
        })
    }

    /// `XREADGROUP ... BLOCK`: up to `count` entries never delivered, waiting
    /// up to `block` for them, on the reader's own connection.
    pub(crate) async fn read_new(
        &self,
        reader: &mut MultiplexedConnection,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Taken>, Error> {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(millis(block).max(1))
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(">")
            .query_async(reader)
            .await?;
        Ok(entry::read_group(reply)?
            .into_iter()
            .map(|entry| Taken {
                entry,
                deliveries: 1,
            })
            .collect())
    }

    /// One pass of `XAUTOCLAIM` from `cursor`: up to `count` entries idle for
    /// `min_idle`, with their delivery counts.
    pub(crate) async fn claim_idle(
        &self,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<Claimed, Error> {
        const COMMAND: &str = "XAUTOCLAIM";
        let reply: Vec<Value> = SCRIPTS
            .claim
            .key(&self.keys.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(millis(min_idle))
            .arg(cursor)
            .arg(count)
            .invoke_async(&mut self.conn())
            .await?;
        let [cursor, entries, deleted, counts] = <[Value; 4]>::try_from(reply)
            .map_err(|_| Error::UnexpectedReply { command: COMMAND })?;
        let cursor = entry::text(cursor).ok_or(Error::UnexpectedReply { command: COMMAND })?;
        let entries = entry::entries(entries, COMMAND)?;
        let counts = match counts {
            Value::Array(counts) => counts,
            Value::Nil => Vec::new(),
            _ => return Err(Error::UnexpectedReply { command: COMMAND }),
        };
        let taken = entries
            .into_iter()
            .zip(counts.iter().map(|c| entry::int(c, COMMAND).unwrap_or(1)))
            .map(|(entry, deliveries)| Taken { entry, deliveries })
            .collect();
        Ok(Claimed {
            cursor,
            taken,
            deleted: entry::texts(deleted, COMMAND)?,
        })
    }

    /// Renews the leases this consumer still holds among `ids`; returns those
    /// it lost (to another consumer, or because they are no longer pending).
    pub(crate) async fn renew(&self, consumer: &str, ids: &[String]) -> Result<Vec<String>, Error> {
        let mut lost = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let reply: Value = SCRIPTS
                .renew
                .key(&self.keys.stream)
                .arg(GROUP)
                .arg(consumer)
                .arg(chunk)
                .invoke_async(&mut self.conn())
                .await?;
            lost.extend(entry::texts(reply, "renew script")?);
        }
        Ok(lost)
    }

    /// Leaves entries this consumer holds pending, claimable by any worker
    /// after `delay` (at once for zero; at most the visibility timeout).
    /// Returns how many it still held.
    pub(crate) async fn release(
        &self,
        consumer: &str,
        ids: &[&str],
        delay: Duration,
        visibility: Duration,
    ) -> Result<u64, Error> {
        let idle = visibility.saturating_sub(delay);
        let mut released = 0;
        for chunk in ids.chunks(IDS_PER_CALL) {
            let reply: Value = SCRIPTS
                .release
                .key(&self.keys.stream)
                .arg(GROUP)
                .arg(consumer)
                .arg(millis(idle))
                .arg(chunk)
                .invoke_async(&mut self.conn())
                .await?;
            released += entry::int(&reply, "release script")?;
        }
        Ok(released)
    }

    /// `XACK`: the entries are done. Returns how many were pending.
    pub(crate) async fn ack(&self, ids: &[String]) -> Result<u64, Error> {
        Ok(redis::cmd("XACK")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(ids)
            .query_async(&mut self.conn())
            .await?)
    }

    /// Moves an entry this consumer holds to the dead letters, acknowledging
    /// it in the same step. Returns `None` if it no longer held it, or how many
    /// old letters the dead-letter cap trimmed.
    pub(crate) async fn dead_letter(
        &self,
        consumer: &str,
        letter: &DeadLetterArgs<'_>,
        cap: usize,
    ) -> Result<Option<u64>, Error> {
        const COMMAND: &str = "dead-letter script";
        let mut call = SCRIPTS.dead_letter.key(&self.keys.stream);
        call.key(&self.keys.dead)
            .arg(GROUP)
            .arg(consumer)
            .arg(letter.entry_id)
            .arg(cap);
        crate::dead_letter::write(
            letter.entry_id,
            letter.fields,
            letter.reason,
            letter.deliveries,
            letter.failed_at,
            |name, value| {
                call.arg(name).arg(value);
            },
        );
        let reply: Vec<Value> = call.invoke_async(&mut self.conn()).await?;
        let [moved, trimmed] = <[Value; 2]>::try_from(reply)
            .map_err(|_| Error::UnexpectedReply { command: COMMAND })?;
        (entry::int(&moved, COMMAND)? == 1)
            .then(|| entry::int(&trimmed, COMMAND))
            .transpose()
    }

    /// Trims the entries the group is done with (delivered and acknowledged);
    /// returns about how many went.
    pub(crate) async fn trim_handled(&self) -> Result<u64, Error> {
        let reply: Value = SCRIPTS
            .trim
            .key(&self.keys.stream)
            .arg(GROUP)
            .invoke_async(&mut self.conn())
            .await?;
        entry::int(&reply, "trim script")
    }

    /// How many dead letters there are.
    pub(crate) async fn dead_len(&self) -> Result<u64, Error> {
        Ok(redis::cmd("XLEN")
            .arg(&self.keys.dead)
            .query_async(&mut self.conn())
            .await?)
    }

    /// Up to `count` dead letters from `start` to `end` (ids, inclusive unless
    /// prefixed with `(`; `-` and `+` for the ends).
    pub(crate) async fn dead_range(
        &self,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<Entry>, Error> {
        let reply: Value = redis::cmd("XRANGE")
            .arg(&self.keys.dead)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn())
            .await?;
        Ok(entry::entries(reply, "XRANGE")?
            .into_iter()
            .filter_map(Result::ok)
            .collect())
    }

    /// The id of the newest dead letter, if any.
    pub(crate) async fn dead_last(&self) -> Result<Option<String>, Error> {
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(&self.keys.dead)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn())
            .await?;
        Ok(entry::entries(reply, "XREVRANGE")?
            .into_iter()
            .next()
            .map(|read| match read {
                Ok(entry) => entry.id,
                Err(unreadable) => unreadable.id,
            }))
    }

    /// `XDEL` on a dead letter. Returns whether it existed.
    pub(crate) async fn dead_remove(&self, id: &str) -> Result<bool, Error> {
        let removed: u64 = redis::cmd("XDEL")
            .arg(&self.keys.dead)
            .arg(id)
            .query_async(&mut self.conn())
            .await?;
        Ok(removed > 0)
    }

    /// Takes the dead letter `id` and enqueues `fields`, in one step. Returns
    /// the new entry's id, or `None` if the letter was gone.
    pub(crate) async fn replay(
        &self,
        id: &str,
        fields: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Option<String>, Error> {
        let mut call = SCRIPTS.replay.key(&self.keys.dead);
        call.key(&self.keys.stream).arg(id);
        for (name, value) in fields {
            call.arg(name.as_slice()).arg(value.as_slice());
        }
        let reply: Value = call.invoke_async(&mut self.conn()).await?;
        Ok(entry::text(reply))
    }
}

/// What a dead letter says, for [`Stream::dead_letter`].
pub(crate) struct DeadLetterArgs<'a> {
    pub(crate) entry_id: &'a str,
    pub(crate) fields: &'a [(Vec<u8>, Vec<u8>)],
    pub(crate) reason: &'a str,
    pub(crate) deliveries: u64,
    pub(crate) failed_at: u64,
}
