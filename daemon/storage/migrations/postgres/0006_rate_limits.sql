-- failover-notify on PostgreSQL, schema version 5: rate limits shared by every daemon of the cluster.
--
-- Telegram's 30 messages a second per bot and 1 a second per chat, [email] rate and [sms] rate hold for
-- all the daemons on this database together. Each limit is a GCRA row (daemon/core/ratelimit.py): its
-- key ('telegram:<bot id>', 'telegram:<bot id>:chat:<chat id>', 'email', 'sms') and its theoretical
-- arrival time, tat, in seconds since the epoch on this server's clock. The database's clock, not the
-- daemons': daemons on several hosts disagree by their clock skew, which would let two of them send into
-- the same second; the answer is a wait in seconds, which each daemon sleeps on its own clock.
--
-- UNLOGGED: a tat is worth nothing after a crash (the limits restart empty, as a daemon's memory would),
-- and a send's reservation then commits without waiting for a WAL flush.
CREATE UNLOGGED TABLE rate_limits (
    key text PRIMARY KEY,
    tat double precision NOT NULL
);

-- Book the next slot under every key of p_keys (sorted by the caller: every caller locks rows in one
-- order, so two of them never deadlock), each with its emission interval, burst tolerance and max skip
-- in seconds: the rules of daemon.core.ratelimit.reserve, which the in-memory limits run. reserved: the
-- slot is booked, send in `wait` seconds; else nothing changed (another key holds the send back further
-- than a key's max_skip), ask again in `wait` seconds. The rows stay locked until the call commits, so
-- concurrent callers are served one after another. The clock is read once the rows are locked: a
-- caller that waited for a lock is not booked at a moment already past. p_now replaces it (tests).
CREATE FUNCTION fnotify_rate_reserve(p_keys text[], p_intervals double precision[],
                                     p_tolerances double precision[], p_max_skips double precision[],
                                     p_now double precision DEFAULT NULL,
                                     OUT reserved boolean, OUT wait double precision)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(p_keys);
    tats double precision[] := '{}';
    free double precision[] := '{}';
    cur double precision;
    now_ double precision;
    send_at double precision;
    ask_at double precision;
BEGIN
    FOR i IN 1 .. n LOOP
        SELECT tat INTO cur FROM rate_limits WHERE key = p_keys[i] FOR UPDATE;
        IF NOT FOUND THEN  -- a key's first use; a concurrent first use waits for this insert, then locks it
            INSERT INTO rate_limits (key, tat) VALUES (p_keys[i], '-infinity') ON CONFLICT (key) DO NOTHING;
            SELECT tat INTO cur FROM rate_limits WHERE key = p_keys[i] FOR UPDATE;
        END IF;
        tats[i] := cur;
    END LOOP;
    now_ := coalesce(p_now, extract(epoch FROM clock_timestamp()));
    send_at := now_;
    FOR i IN 1 .. n LOOP
        free[i] := greatest(now_, tats[i] - p_tolerances[i]);
        send_at := greatest(send_at, free[i]);
    END LOOP;
    FOR i IN 1 .. n LOOP  -- greatest() ignores NULLs: ask_at stays NULL unless some key is leapt too far
        IF send_at - free[i] > p_max_skips[i] THEN
            ask_at := greatest(ask_at, send_at - p_max_skips[i]);
        END IF;
    END LOOP;
    IF ask_at IS NOT NULL THEN
        reserved := false;
        wait := ask_at - now_;
        RETURN;
    END IF;
    FOR i IN 1 .. n LOOP
        UPDATE rate_limits SET tat = greatest(tats[i], send_at) + p_intervals[i] WHERE key = p_keys[i];
    END LOOP;
    reserved := true;
    wait := send_at - now_;
END $$;
