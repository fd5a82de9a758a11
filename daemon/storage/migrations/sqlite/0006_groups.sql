-- failover-notify SQLite schema, version 6: recipient groups and batch sends.
--
-- A group is a named set of recipients; removing a recipient takes it out of its groups (ON DELETE
-- CASCADE: the store opens every connection with foreign_keys = ON). A send to a group is a batch:
-- one notification per member, created in one transaction, each with the batch's id in
-- notifications.batch_id. The batch row keeps the group's name as it was (a group may be renamed or
-- removed later) and, for an idempotency key, the request as sent (payload, JSON): a repeat with the
-- same key is compared with it and answered with the same batch. Member notifications carry no key of
-- their own: the key belongs to the batch.
CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  REAL    NOT NULL
);
CREATE TABLE group_members (
    group_id      INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    recipient_id  INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, recipient_id)
);
CREATE INDEX group_members_recipient ON group_members (recipient_id);
CREATE TABLE batches (
    id               INTEGER PRIMARY KEY,
    group_name       TEXT    NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    payload          TEXT    NOT NULL,     -- the request as sent, JSON (daemon.core.groups.NewBatch.payload)
    created_at       REAL    NOT NULL
);
ALTER TABLE notifications ADD COLUMN batch_id INTEGER;  -- no foreign key: pruning removes members first
CREATE INDEX notifications_batch ON notifications (batch_id, id) WHERE batch_id IS NOT NULL;
