-- offerlab's PostgreSQL store, version 5.
--
-- A value index of each capped metric: per (test, phase, metric), every
-- visitor whose value (x) or CUPED covariate (pre) is not 0, with the
-- aggregate row it counts in (variant and day). A report reads a
-- percentile cap, and the visitors above it, from the top of the index,
-- instead of every visitor's tallies. `capped_counts` says how many of the
-- phase's visitors the index covers, and how many have a value above and
-- below 0 (the zeros, left out, sit between them in rank).
-- Both tables start empty: a test that already has visitors is reported
-- from its tallies, as before, until `offerlab rebuild` fills them.
CREATE TABLE capped_values (
    experiment text             NOT NULL,
    phase      integer          NOT NULL,
    metric     text             NOT NULL,
    visitor    text             NOT NULL,
    variant    smallint         NOT NULL,
    date       date             NOT NULL,
    x          double precision NOT NULL,
    y          double precision NOT NULL,
    pre        double precision NOT NULL,
    PRIMARY KEY (experiment, phase, metric, visitor)
);
CREATE INDEX capped_values_by_x ON capped_values (experiment, phase, metric, x DESC) WHERE x <> 0;
CREATE INDEX capped_values_by_pre ON capped_values (experiment, phase, metric, pre DESC) WHERE pre <> 0;

CREATE TABLE capped_counts (
    experiment text    NOT NULL,
    phase      integer NOT NULL,
    metric     text    NOT NULL,
    covered    bigint  NOT NULL,
    positive   bigint  NOT NULL,
    negative   bigint  NOT NULL,
    PRIMARY KEY (experiment, phase, metric)
);
