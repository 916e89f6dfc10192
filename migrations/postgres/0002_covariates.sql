-- offerlab's PostgreSQL store, version 2.
--
-- The CUPED covariate's sums per aggregate row (Σc, Σc², Σx·c, with c a
-- visitor's value of the metric in the days before their first exposure).
-- Rows written before this version have none, which the analysis reads as
-- "no adjustment" for them.
ALTER TABLE aggregates
    ADD COLUMN pre_sum    double precision NOT NULL DEFAULT 0,
    ADD COLUMN pre_sum_sq double precision NOT NULL DEFAULT 0,
    ADD COLUMN sum_x_pre  double precision NOT NULL DEFAULT 0;

-- Tallies name the first exposure they count from (its variant and time in
-- microseconds) beside the event tallies, which move under "post": a pass
-- over a test's tallies then needs nothing else.
UPDATE tallies AS t
SET tallies = jsonb_build_object(
        'origin', jsonb_build_object('variant', x.variant,
                                     'at', (extract(epoch FROM x.ts) * 1000000)::bigint),
        'post', t.tallies)
FROM exposures AS x
WHERE x.visitor = t.visitor AND x.experiment = t.experiment AND x.phase = t.phase;
