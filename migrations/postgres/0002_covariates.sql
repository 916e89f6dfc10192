-- offerlab's PostgreSQL store, version 2: the CUPED covariate's sums per
-- aggregate row (Σc, Σc², Σx·c, with c a visitor's value of the metric in
-- the days before their first exposure). Rows written before this version
-- have none, which the analysis reads as "no adjustment" for them.
ALTER TABLE aggregates
    ADD COLUMN pre_sum    double precision NOT NULL DEFAULT 0,
    ADD COLUMN pre_sum_sq double precision NOT NULL DEFAULT 0,
    ADD COLUMN sum_x_pre  double precision NOT NULL DEFAULT 0;
