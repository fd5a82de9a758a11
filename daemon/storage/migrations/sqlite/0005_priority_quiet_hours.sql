-- failover-notify SQLite schema, version 5: priority, and quiet hours with the 'held' status.
--
-- notifications.priority is a rank, 0 low .. 3 critical (daemon.protocol.Priority), so a claim can
-- take a backlog higher priority first (ORDER BY priority DESC, next_attempt_at), helped by
-- notifications_claim. A notification held by the recipient's quiet hours has status 'held' and
-- next_attempt_at at the window's end: the same durable timer as a retry.
-- recipients.timezone is an IANA name (the wall clock quiet hours are read on), quiet_hours a window
-- like '22:00-07:00' or NULL for none; both are validated by the daemon before they are written.
ALTER TABLE notifications ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
ALTER TABLE recipients ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE recipients ADD COLUMN quiet_hours TEXT;
CREATE INDEX notifications_claim
    ON notifications (priority DESC, next_attempt_at) WHERE next_attempt_at IS NOT NULL AND claimed_by IS NULL;
