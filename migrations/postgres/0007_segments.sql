-- offerlab's PostgreSQL store, version 7.
--
-- Segments. A first exposure keeps the raw values of the segment
-- attributes it carried (`segments.toml`: attribute → at most 64 bytes), as
-- one JSON object; NULL when it carried none. `segment_aggregates` holds,
-- per variant and metric, the sums of the visitors with each raw value of
-- each attribute (no day: a breakdown shows totals), kept current by every
-- write like `aggregates`: a breakdown by segment reads these rows, and the
-- visitors without an attribute are the test's total less every value's.
ALTER TABLE exposures ADD COLUMN attributes jsonb;

CREATE TABLE segment_aggregates (
    experiment text             NOT NULL,
    phase      integer          NOT NULL,
    attribute  text             NOT NULL,
    value      text             NOT NULL,
    variant    smallint         NOT NULL,
    metric     text             NOT NULL,
    n          bigint           NOT NULL,
    sum        double precision NOT NULL,
    sum_sq     double precision NOT NULL,
    den_sum    double precision NOT NULL,
    den_sum_sq double precision NOT NULL,
    sum_xy     double precision NOT NULL,
    pre_sum    double precision NOT NULL,
    pre_sum_sq double precision NOT NULL,
    sum_x_pre  double precision NOT NULL,
    PRIMARY KEY (experiment, phase, attribute, value, variant, metric)
);
