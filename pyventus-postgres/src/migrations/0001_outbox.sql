-- pyventus-postgres, schema version 1: the outbox, its dead letters and its archive.
-- `{schema}` is the schema the outbox lives in (default `pyventus`).

CREATE TABLE {schema}.outbox (
    -- Insertion order; for one partition key, commit order (emits of one key serialize).
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The event's id (UUIDv7), the same on every attempt: what handlers deduplicate on.
    id            uuid        NOT NULL,
    event         text        NOT NULL,
    payload       jsonb       NOT NULL,
    -- Propagation headers (W3C traceparent, tracestate) when the emit was traced.
    context       jsonb,
    partition_key text,
    emitted_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- When it may be claimed: -infinity when new, the lease's end while a relay
    -- holds it, the end of the backoff after a failure.
    due_at        timestamptz NOT NULL DEFAULT '-infinity',
    attempts      integer     NOT NULL DEFAULT 0,
    -- Raised by every claim: only the holder of the current fence settles the row.
    fence         bigint      NOT NULL DEFAULT 0,
    lease_owner   text,
    -- The handlers that succeeded already: never run again for this event.
    done          text[]      NOT NULL DEFAULT '{}',
    last_error    text
);

-- The claim walks the primary key in order; keyed rows also ask whether an
-- earlier row of their key is still there.
CREATE INDEX outbox_partition ON {schema}.outbox (partition_key, seq)
    WHERE partition_key IS NOT NULL;

CREATE TABLE {schema}.dead_letters (
    seq           bigint      PRIMARY KEY,
    id            uuid        NOT NULL,
    event         text        NOT NULL,
    payload       jsonb       NOT NULL,
    context       jsonb,
    partition_key text,
    emitted_at    timestamptz NOT NULL,
    attempts      integer     NOT NULL,
    done          text[]      NOT NULL,
    failed        text[]      NOT NULL,
    kind          text        NOT NULL,
    reason        text        NOT NULL,
    dead_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_dead_at ON {schema}.dead_letters (dead_at);

-- Delivered events, when the relay archives them (`RelayBuilder::archive`).
CREATE TABLE {schema}.delivered (
    seq           bigint      PRIMARY KEY,
    id            uuid        NOT NULL,
    event         text        NOT NULL,
    payload       jsonb       NOT NULL,
    partition_key text,
    emitted_at    timestamptz NOT NULL,
    attempts      integer     NOT NULL,
    delivered_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX delivered_delivered_at ON {schema}.delivered (delivered_at);
