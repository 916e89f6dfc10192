-- offerlab's PostgreSQL store, version 3.
--
-- One row per replica, upserted by its health probe: a probe that writes
-- and commits shows the database takes writes (a standby after a failover
-- answers reads but refuses this).
CREATE TABLE heartbeats (
    replica text        PRIMARY KEY,
    at      timestamptz NOT NULL
);
