-- hookline schema, version 6 (SQLite dialect; keep in step with migrations/postgres/0006_registry_enrichment.sql).
-- Enrichment from the registry (issue 14). A registry token may say how hookline reads its
-- registry: a base URL and optional read-only credentials, stored as given (like webhook
-- secrets; the operator is told to use read-only ones). NULL URL: no enrichment.
ALTER TABLE tokens ADD COLUMN registry_url TEXT;
ALTER TABLE tokens ADD COLUMN registry_username TEXT;
ALTER TABLE tokens ADD COLUMN registry_password TEXT;

-- What the registry said about an event's image (JSON), or why it could not be read;
-- written once by the first delivery that needs it (UPDATE … WHERE enrichment IS NULL), so
-- every attempt, webhook and replica renders the same bytes. NULL: not looked up (yet).
ALTER TABLE events ADD COLUMN enrichment TEXT;
