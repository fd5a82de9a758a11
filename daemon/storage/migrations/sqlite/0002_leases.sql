-- failover-notify SQLite schema, version 2: a claim records its owner and a lease.
--
-- Version 1 marked a claimed notification with in_flight = 1. Now the claim says which daemon holds
-- it (claimed_by: "<hostname>:<pid>:<random>", made at each start) and until when (lease_until, epoch
-- seconds), renewed while its attempt runs. The claim rules (daemon/storage/sqlite_claims.py, the
-- same as PostgreSQL's in migrations/postgres/0001_initial.sql):
--   * a notification is due when it is unclaimed and next_attempt_at <= now;
--   * a claim whose lease ran out belongs to a daemon that stopped renewing it: the next claim by any
--     other daemon records its open attempts interrupted and makes the row due at once (at-least-once);
--   * a live lease is never taken; a daemon at start releases only its own rows and expired leases.
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN lease_until REAL;
-- rows a version-1 daemon held when it stopped: an owner no daemon has, with a lease long expired
UPDATE notifications SET claimed_by = 'version-1 daemon', lease_until = 0 WHERE in_flight = 1;
DROP INDEX IF EXISTS notifications_due;
ALTER TABLE notifications DROP COLUMN in_flight;
CREATE INDEX notifications_due
    ON notifications (next_attempt_at) WHERE next_attempt_at IS NOT NULL AND claimed_by IS NULL;
CREATE INDEX notifications_lease ON notifications (lease_until) WHERE claimed_by IS NOT NULL;
