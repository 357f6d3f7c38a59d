-- A key's whole secret, sealed with a key only the host derives (AES-256-GCM; see
-- tenancy::sealing in the host), for SigV4 verification, which needs the secret itself. NULL for
-- keys made before: they stay bearer-only keys.
ALTER TABLE api_keys ADD COLUMN sealed_secret TEXT;
