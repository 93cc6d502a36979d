-- One receiver, one set of limits: each webhook is served by one dispatcher at a time.
--
-- A row names the dispatcher (its lease owner id, `replica_…`) that serves a webhook: only
-- it claims, or takes from ingest, that webhook's deliveries, so the webhook's concurrency,
-- rate limit, adaptive window, Retry-After pause, circuit and ordered lanes live in one
-- process. A dispatcher takes a row that is free or whose dispatcher is dead, and gives it
-- up (deletes it) only once nothing of that webhook is in flight there
-- (`dispatch/serving.rs`). Only PostgreSQL, where several dispatchers share a database,
-- writes rows; a SQLite file is served by one process.
CREATE TABLE webhook_dispatchers (
    webhook_id  TEXT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    dispatcher  TEXT NOT NULL,
    since       BIGINT NOT NULL
);
CREATE INDEX webhook_dispatchers_by_dispatcher ON webhook_dispatchers (dispatcher);
-- Additive: version 7 runs on it (its dispatchers ignore the table and claim any webhook's
-- deliveries, as they always did, until they are replaced).
INSERT INTO schema_compat (version, oldest_reader) VALUES (8, 7);
