-- hookline schema, version 4 (SQLite dialect; keep in step with migrations/postgres/0004_console.sql).
-- The web console (issue 13) and owner limits (issue 16).
-- How each webhook's attempts went, per minute: the console's chart (rate, p50/p99 latency over
-- the last hour) and the 24-hour counts every Webhook response carries. Written with each batch
-- of attempt results (one upsert, rows added to), pruned after two days.

CREATE TABLE webhook_stats (
    webhook_id TEXT NOT NULL,
    minute     BIGINT NOT NULL,            -- start of the minute, Unix ms
    succeeded  BIGINT NOT NULL DEFAULT 0,  -- attempts answered 2xx
    retried    BIGINT NOT NULL DEFAULT 0,  -- failed attempts that will be retried
    failed     BIGINT NOT NULL DEFAULT 0,  -- failed attempts that were final
    -- attempt durations as a histogram: how many took at most 10 ms, then 25, 50, 100, 250,
    -- 500 ms, 1, 2.5, 5, 10 s (each bucket counts those above the previous bound), and longer
    le_10      BIGINT NOT NULL DEFAULT 0,
    le_25      BIGINT NOT NULL DEFAULT 0,
    le_50      BIGINT NOT NULL DEFAULT 0,
    le_100     BIGINT NOT NULL DEFAULT 0,
    le_250     BIGINT NOT NULL DEFAULT 0,
    le_500     BIGINT NOT NULL DEFAULT 0,
    le_1000    BIGINT NOT NULL DEFAULT 0,
    le_2500    BIGINT NOT NULL DEFAULT 0,
    le_5000    BIGINT NOT NULL DEFAULT 0,
    le_10000   BIGINT NOT NULL DEFAULT 0,
    le_inf     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, minute)
);
CREATE INDEX webhook_stats_by_minute ON webhook_stats (minute);

-- Web console sign-ins. The browser holds a random session id in a cookie; the database
-- only its SHA-256, the hash of the API token it signed in with (looked up on every
-- request like an API call, so a revoked token ends its sessions), and the session's CSRF
-- token, which every form that changes something must carry.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- The owner's limits on a webhook's deliveries: at most this many requests in flight
-- (a ceiling for the adaptive window), and at most this many deliveries per second, in
-- thousandths (1500 = 1.5/s). NULL: no limit beyond the dispatcher's own.
ALTER TABLE webhooks ADD COLUMN max_concurrency BIGINT;
ALTER TABLE webhooks ADD COLUMN rate_limit_milli BIGINT;

-- The adaptive concurrency window the webhook's dispatcher last used.
ALTER TABLE webhook_health ADD COLUMN concurrency_window BIGINT;
