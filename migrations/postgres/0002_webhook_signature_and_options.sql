-- hookline schema, version 2 (PostgreSQL dialect; keep in step with migrations/sqlite/0002_webhook_signature_and_options.sql).
-- Per-webhook delivery choices for receivers that already exist (issue 7):
--   signature_header: name of an extra GitHub-style `sha256=<hex>` signature header, NULL for none.
--   payload_options:  JSON object of format-specific options (dockerhub repo_name host, harbor deletes).
ALTER TABLE webhooks ADD COLUMN signature_header TEXT;
ALTER TABLE webhooks ADD COLUMN payload_options TEXT NOT NULL DEFAULT '{}';
