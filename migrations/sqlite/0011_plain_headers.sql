-- hookline schema, version 11 (sqlite dialect; keep in step with the other dialect's 0011).
--
-- Custom header values are secrets (a receiver's bearer token, often): the API shows them
-- as `…redacted` unless the owner marks a header plain. The names of the plain ones, a JSON
-- array; NULL: none.
ALTER TABLE webhooks ADD COLUMN plain_headers TEXT;
-- Additive: version 10 runs on it (it shows every value, as it always did).
INSERT INTO schema_compat (version, oldest_reader) VALUES (11, 10);
