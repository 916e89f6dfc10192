-- offerlab's PostgreSQL store, version 7.
--
-- Segments. A first exposure keeps the raw values of the segment
-- attributes it carried (`segments.toml`: attribute → at most 64 bytes), as
-- one JSON object; NULL when it carried none. Breakdowns by segment read
-- them from the tallies, which copy them, so no index is needed here.
ALTER TABLE exposures ADD COLUMN attributes jsonb;
