-- hookline schema, version 9 (sqlite dialect; keep in step with the other dialect's 0009).
--
-- Secrets sealed at rest: from this version on, webhook secrets, custom headers, credential
-- URLs, registry passwords and client keys are stored as `sealed:v1:KEYID:…` ciphertexts
-- (src/seal.rs), which `serve` writes over any plaintext it finds at start. A hookline
-- older than 9 would read a ciphertext as the secret itself and sign or send with it, so
-- this version keeps no older one working: older processes refuse it, naming this
-- migration, instead of sending garbage.
--
-- Mutual TLS to receivers: a webhook may carry a client certificate (PEM chain, public)
-- and its private key (sealed).
ALTER TABLE webhooks ADD COLUMN client_certificate TEXT;
ALTER TABLE webhooks ADD COLUMN client_key TEXT;
INSERT INTO schema_compat (version, oldest_reader) VALUES (9, 9);
