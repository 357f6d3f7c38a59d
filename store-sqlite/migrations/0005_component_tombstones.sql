-- A deleted component version stays as a tombstone, so its version number is never given to
-- other code: `{"workflow", "version": 2}` always means the same digest.
ALTER TABLE components ADD COLUMN deleted_at INTEGER;
