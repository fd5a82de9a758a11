-- failover-notify on PostgreSQL, schema version 3: what several daemons tell each other.
--
-- NOTIFY is a hint, the tables are the truth. A daemon LISTENs on its own connection
-- (daemon/storage/postgres_listen.py) and, on a hint, pokes its engine or relays an event to its
-- subscribers; a hint lost (a dropped listen connection, a daemon starting) costs nothing but time,
-- because every engine's timer is still armed at the earliest next_attempt_at it reads, and the pause
-- flag is re-read every lease / 3. pg_notify in a trigger is sent at commit, and only if the transaction
-- commits: a hint never announces a row that is not there.
--
-- Each daemon sets fnotify.daemon (its claim owner id) on its connections, so a hint names the daemon
-- that caused it and that daemon ignores its own (it has already acted on it).

-- fnotify_due, payload "<daemon> <epoch seconds>": a notification became due-able (a send, a redrive, a
-- retry scheduled, a claim released or taken over), unclaimed, at that time.
-- fnotify_status, payload JSON: a notification changed status; the `notification.status` event.
CREATE FUNCTION fnotify_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    origin text := coalesce(current_setting('fnotify.daemon', true), '');
BEGIN
    IF NEW.claimed_by IS NULL AND NEW.next_attempt_at IS NOT NULL AND (TG_OP = 'INSERT'
       OR OLD.claimed_by IS NOT NULL OR OLD.next_attempt_at IS DISTINCT FROM NEW.next_attempt_at) THEN
        PERFORM pg_notify('fnotify_due', origin || ' ' || extract(epoch FROM NEW.next_attempt_at)::text);
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM pg_notify('fnotify_status', json_build_object(
            'by', origin, 'id', NEW.id, 'recipient_id', NEW.recipient_id, 'status', NEW.status,
            'channel', NEW.chain[NEW.position + 1], 'created_at', NEW.created_at)::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_notify AFTER INSERT OR UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION fnotify_notify_change();

-- One row: state every daemon obeys. paused: `fnotify pause` on any daemon holds delivery on all of
-- them (fnotify_paused carries "<daemon> <true|false>" as the hint).
CREATE TABLE cluster_state (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    paused      boolean     NOT NULL DEFAULT false,
    changed_by  text,
    changed_at  timestamptz
);
INSERT INTO cluster_state DEFAULT VALUES;

-- The daemons sharing this database, for `status`: each upserts its row every lease / 2 and deletes it
-- at a clean stop; a row whose heartbeat is older than three leases is a daemon that died (removed by
-- the next heartbeat of any daemon).
CREATE TABLE cluster_members (
    id            text        PRIMARY KEY,   -- the daemon id ("<hostname>:<pid>:<random>")
    host          text        NOT NULL,
    pid           integer     NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);

-- Leadership by lease row (Oban's oban_peers): one row per role ('telegram-bot': the one daemon that
-- runs getUpdates). Taking and renewing are one statement (daemon/storage/postgres_cluster.py): it writes
-- only when the row is the caller's own or its lease ran out, so a renewal matches the owner's row only
-- and a daemon whose lease was taken over learns it from the empty answer.
CREATE TABLE cluster_leaders (
    role         text        PRIMARY KEY,
    owner        text        NOT NULL,
    lease_until  timestamptz NOT NULL
);

-- Telegram updates already handled, by update_id: a new leader re-polls what the old one had not
-- confirmed, and a /start or a "Got it" press must not be handled twice. Kept a day, pruned as
-- they age (daemon/storage/postgres_cluster.py).
CREATE TABLE telegram_updates (
    update_id   bigint      PRIMARY KEY,
    handled_at  timestamptz NOT NULL
);
CREATE INDEX telegram_updates_age ON telegram_updates (handled_at);
