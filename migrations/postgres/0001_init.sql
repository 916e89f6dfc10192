-- offerlab's PostgreSQL store, version 1.
--
-- Raw records (the source of truth): the first exposure per visitor, test
-- and allocation phase, and every event once by its id. Their primary keys
-- make a retried write, from any replica, a no-op rather than a double.
-- Derived records, kept current by each write: per-visitor tallies of the
-- events a test's metrics read, and per-day aggregates the reports read.

-- One row per visitor ever written. A group commit locks its visitors'
-- rows (FOR UPDATE, in byte order) before it reads anything of theirs, so
-- replicas writing one visitor take turns. Row locks live in the rows, so
-- a group of any size needs no room in PostgreSQL's shared lock table.
CREATE TABLE visitors (
    visitor text PRIMARY KEY
);

CREATE TABLE exposures (
    visitor    text        NOT NULL,
    experiment text        NOT NULL,
    phase      integer     NOT NULL,
    variant    smallint    NOT NULL,
    ts         timestamptz NOT NULL,
    PRIMARY KEY (visitor, experiment, phase)
);

CREATE TABLE events (
    id      text             PRIMARY KEY,
    visitor text             NOT NULL,
    name    text             NOT NULL,
    value   double precision NOT NULL,
    ts      timestamptz      NOT NULL
);
CREATE INDEX events_by_visitor ON events (visitor);

CREATE TABLE tallies (
    experiment text    NOT NULL,
    phase      integer NOT NULL,
    visitor    text    NOT NULL,
    tallies    jsonb   NOT NULL,
    PRIMARY KEY (visitor, experiment, phase)
);

CREATE TABLE aggregates (
    experiment text             NOT NULL,
    phase      integer          NOT NULL,
    variant    smallint         NOT NULL,
    date       date             NOT NULL,
    metric     text             NOT NULL,
    n          bigint           NOT NULL,
    sum        double precision NOT NULL,
    sum_sq     double precision NOT NULL,
    den_sum    double precision NOT NULL,
    den_sum_sq double precision NOT NULL,
    sum_xy     double precision NOT NULL,
    PRIMARY KEY (experiment, phase, variant, date, metric)
);

CREATE TABLE allocations (
    experiment text  PRIMARY KEY,
    record     jsonb NOT NULL
);
