-- offerlab's PostgreSQL store, version 4.
--
-- Event ids are unique per visitor, not across visitors: a retry always
-- comes from the same visitor, so it stays a duplicate, and the same id
-- sent for two visitors is two events. Ids stored so far were unique
-- across visitors, so they are unique per visitor too. The key also serves
-- every read of a visitor's events, so the index that did is dropped.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (visitor, id);
DROP INDEX events_by_visitor;
