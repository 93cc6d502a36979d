-- hookline schema, version 1 (SQLite dialect; keep in step with migrations/postgres/0001_init.sql).
-- Timestamps are Unix milliseconds (BIGINT) in both dialects so both backends compare them identically.

-- API and registry credentials. Only a SHA-256 hash of each token is stored.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('registry', 'namespace', 'admin')),
    subject     TEXT NOT NULL,            -- registry name, namespace, or '' for admin
    hash        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Single-row counters. `webhooks_revision` is bumped by every webhook write so that
-- dispatchers can tell cheaply when their compiled filter cache is stale.
CREATE TABLE store_meta (
    key    TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO store_meta (key, value) VALUES ('webhooks_revision', 0);

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    url             TEXT NOT NULL,
    event_types     TEXT NOT NULL,        -- JSON array of event type names
    repositories    TEXT NOT NULL,        -- JSON array of repository globs
    tags            TEXT NOT NULL,        -- JSON array of tag globs
    format          TEXT NOT NULL,
    headers         TEXT NOT NULL,        -- JSON object of custom headers
    ordered         BOOLEAN NOT NULL DEFAULT FALSE,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    failing_since   BIGINT,               -- start of the current run of failures
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhooks_by_namespace ON webhooks (namespace, id);

-- Signing secrets. The current one has expires_at NULL; rotated-out ones stay valid until expires_at.
CREATE TABLE webhook_secrets (
    id          TEXT PRIMARY KEY,
    webhook_id  TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX webhook_secrets_by_webhook ON webhook_secrets (webhook_id);

-- Events as received from registries, normalised. `fanned_out` is false until the
-- dispatcher has created this event's deliveries (in the same transaction that sets it).
CREATE TABLE events (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    source            TEXT NOT NULL,      -- which registry sent it (its token's name)
    registry_event_id TEXT NOT NULL,      -- the registry's own event id, for deduplication
    type              TEXT NOT NULL,
    repository        TEXT NOT NULL,
    tag               TEXT,
    digest            TEXT,
    body              TEXT NOT NULL,      -- the normalised event as JSON
    received_at       BIGINT NOT NULL,
    fanned_out        BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (source, registry_event_id)
);
CREATE INDEX events_fanout_pending ON events (seq) WHERE NOT fanned_out;
CREATE INDEX events_by_received ON events (received_at);

-- The delivery queue: one row per (event, webhook). While a dispatcher holds a lease,
-- next_attempt_at equals lease_until, so an expired lease is simply due work again.
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_id        TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    ordering_key    TEXT,                 -- set for ordered webhooks: deliveries with one key go out in seq order
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_ordering ON deliveries (ordering_key, seq) WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

-- One row per HTTP try.
CREATE TABLE attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL,
    number           INTEGER NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      INTEGER,
    response_headers TEXT,                -- JSON object
    response_body    TEXT,                -- capped excerpt
    error            TEXT,
    outcome          TEXT NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);
