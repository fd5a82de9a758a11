-- failover-notify on PostgreSQL, schema version 4: priority, and quiet hours with the 'held' status.
--
-- notifications.priority is a rank, 0 low .. 3 critical (daemon.protocol.Priority): the claim takes
-- a backlog higher priority first, then earliest due (notifications_claim). A notification held by
-- the recipient's quiet hours is 'held' with next_attempt_at at the window's end: the same durable
-- timer as a retry, so any daemon of the cluster releases it. recipients.timezone is an IANA name,
-- quiet_hours a window like '22:00-07:00' or NULL; the daemon validates both before writing them.

ALTER TABLE notifications ADD COLUMN priority smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 3);
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check CHECK (status IN
    ('queued', 'sending', 'held', 'delivered', 'acknowledged', 'failed', 'cancelled', 'expired'));
ALTER TABLE recipients ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE recipients ADD COLUMN quiet_hours text;
CREATE INDEX notifications_claim
    ON notifications (priority DESC, next_attempt_at) WHERE next_attempt_at IS NOT NULL AND claimed_by IS NULL;

-- Rule 2, the claim, as in version 1 but higher priority first: up to p_limit due, unclaimed
-- notifications for p_self until p_lease_until (FOR UPDATE SKIP LOCKED: concurrent claims never wait
-- for each other and never get the same row).
CREATE OR REPLACE FUNCTION fnotify_claim(p_self text, p_now timestamptz, p_lease_until timestamptz, p_limit integer)
RETURNS SETOF notifications
LANGUAGE sql AS $$
    UPDATE notifications n
       SET claimed_by = p_self, lease_until = p_lease_until, updated_at = p_now
      FROM (SELECT id FROM notifications
             WHERE claimed_by IS NULL AND next_attempt_at <= p_now
             ORDER BY priority DESC, next_attempt_at
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED) AS due
     WHERE n.id = due.id
    RETURNING n.*;
$$;
