-- offerlab's PostgreSQL store, version 8.
--
-- A floor per capped metric's value index: the index keeps a visitor's
-- value (or CUPED covariate) only when it is above the floor, so that most
-- events, which move visitors far below any cap a report reads, change no
-- entry. NULL (every index until its first raise) keeps every value that
-- is not 0, as before. Rows left at or below the floor by a writer that
-- read an older one are ignored by every read, and removed by the next
-- raise.
ALTER TABLE capped_counts ADD COLUMN floor double precision;
