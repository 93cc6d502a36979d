-- hookline schema, version 3 (SQLite dialect; keep in step with migrations/postgres/0003_delivery_log.sql).
-- The delivery log, redelivery, replay and retention (issue 12).

-- A delivery keeps its webhook's namespace (tenants list their deliveries by it, even after
-- the webhook is deleted) and a summary of its last attempt (for listings without a join).
-- `retry_base`: attempts made before the latest redelivery or replay; the retry schedule
-- counts from there, so a redelivered delivery gets the whole schedule again.
ALTER TABLE deliveries ADD COLUMN namespace TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN retry_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN last_status_code INTEGER;
ALTER TABLE deliveries ADD COLUMN last_duration_ms BIGINT;
ALTER TABLE deliveries ADD COLUMN last_attempt_at BIGINT;
UPDATE deliveries SET namespace = COALESCE((SELECT w.namespace FROM webhooks w WHERE w.id = deliveries.webhook_id), '');
CREATE INDEX deliveries_pending_by_webhook ON deliveries (webhook_id) WHERE status = 'pending';
CREATE INDEX deliveries_failed_by_webhook ON deliveries (webhook_id) WHERE status = 'failed';

-- What the owner needs to understand an attempt: a class of error (`timeout`, `connect`,
-- `http`, `refused`, `not_sent`, …), why hookline decided what it did (retried, final), and
-- when the next attempt is due.
ALTER TABLE attempts ADD COLUMN error_class TEXT;
ALTER TABLE attempts ADD COLUMN reason TEXT;
ALTER TABLE attempts ADD COLUMN next_attempt_at BIGINT;

-- Each webhook's health as its dispatchers last saw it: written with the attempt results.
CREATE TABLE webhook_health (
    webhook_id        TEXT PRIMARY KEY,
    last_attempt_at   BIGINT NOT NULL,
    last_status_code  INTEGER,
    last_error        TEXT,
    last_outcome      TEXT NOT NULL,
    last_success_at   BIGINT,
    circuit           TEXT NOT NULL DEFAULT 'closed',   -- closed, open, half_open
    circuit_until     BIGINT
);

-- Replay requests, so that a client retrying a call (same request id) queues nothing twice.
CREATE TABLE replays (
    webhook_id  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    queued      BIGINT NOT NULL,
    -- set when the window held more than one call may queue: where the next call resumes
    resume_received_at BIGINT,
    resume_seq         BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, request_id)
);
CREATE INDEX replays_by_created ON replays (created_at);
