-- Agent invocations remember what was sent, so a host that restarts can send it again (agents
-- deduplicate by the callback id, which is also the A2A message id).
ALTER TABLE callbacks ADD COLUMN agent TEXT;
ALTER TABLE callbacks ADD COLUMN agent_input TEXT;
