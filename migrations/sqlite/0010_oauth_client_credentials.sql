-- hookline schema, version 10 (sqlite dialect; keep in step with the other dialect's 0010).
--
-- OAuth 2.0 client credentials (RFC 6749 §4.4) for receivers that want a bearer token:
-- the token endpoint, client id and scopes as JSON (`{"token_url":…,"client_id":…,
-- "scopes":[…]}`), and the client secret, sealed (src/seal.rs). NULL: none.
ALTER TABLE webhooks ADD COLUMN oauth TEXT;
ALTER TABLE webhooks ADD COLUMN oauth_client_secret TEXT;
-- Additive, but not harmless to version 9: it would send such a webhook's deliveries
-- without the token, and the receiver's 401 is final. So it keeps only itself working.
INSERT INTO schema_compat (version, oldest_reader) VALUES (10, 10);
