-- offerlab's PostgreSQL store, version 6.
--
-- Notifications. `verdicts` holds the verdict code last recorded per test;
-- a change is written with its deliveries in one transaction (the row is
-- locked while replicas compare), so each change makes its deliveries once.
-- `deliveries` holds each one until its webhook answers: `leased_by` and
-- `lease_until` say which replica is trying it, and a lease that runs out
-- (its replica died) lets another take it. `last_deliveries` holds how
-- each webhook's last delivery ended.
CREATE TABLE verdicts (
    experiment text PRIMARY KEY,
    code       text
);

CREATE TABLE deliveries (
    id          text        PRIMARY KEY,
    next_at     timestamptz NOT NULL,
    leased_by   text,
    lease_until timestamptz,
    record      jsonb       NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at);

CREATE TABLE last_deliveries (
    webhook text  PRIMARY KEY,
    record  jsonb NOT NULL
);
