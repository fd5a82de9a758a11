-- failover-notify schema, version 1. Times are UNIX epoch seconds (REAL, UTC).
CREATE TABLE IF NOT EXISTS recipients (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    email             TEXT,
    phone             TEXT,
    telegram_chat_id  INTEGER UNIQUE,
    opt_out           TEXT    NOT NULL DEFAULT '',   -- comma-separated channels
    telegram_blocked  INTEGER NOT NULL DEFAULT 0,
    created_at        REAL    NOT NULL
);

CREATE TABLE IF NOT EXISTS notifications (
    id               INTEGER PRIMARY KEY,
    recipient_id     INTEGER NOT NULL,
    text             TEXT    NOT NULL,
    subject          TEXT,
    chain            TEXT    NOT NULL,               -- comma-separated channels
    status           TEXT    NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    position         INTEGER NOT NULL DEFAULT 0,     -- index in chain of the current channel
    tries            INTEGER NOT NULL DEFAULT 0,     -- attempts on the current channel
    in_flight        INTEGER NOT NULL DEFAULT 0,     -- claimed by the engine right now
    next_attempt_at  REAL,                           -- NULL once final
    deadline         REAL,
    ack_timeout      REAL,
    awaiting_ack     INTEGER NOT NULL DEFAULT 0,     -- delivered on Telegram, waiting for "Got it" until next_attempt_at
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_due
    ON notifications (next_attempt_at) WHERE next_attempt_at IS NOT NULL AND in_flight = 0;
CREATE INDEX IF NOT EXISTS notifications_status ON notifications (status, id);
CREATE INDEX IF NOT EXISTS notifications_recipient ON notifications (recipient_id, id);

CREATE TABLE IF NOT EXISTS attempts (
    id                   INTEGER PRIMARY KEY,
    notification_id      INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel              TEXT    NOT NULL,
    outcome              TEXT,                        -- NULL while in flight
    error                TEXT,
    provider_message_id  TEXT,
    started_at           REAL    NOT NULL,
    finished_at          REAL,
    retry_at             REAL
);
CREATE INDEX IF NOT EXISTS attempts_notification ON attempts (notification_id, id);
CREATE INDEX IF NOT EXISTS attempts_unfinished ON attempts (id) WHERE finished_at IS NULL;
CREATE INDEX IF NOT EXISTS attempts_finished ON attempts (finished_at);

-- Telegram opt-in deep links: single use, expiring. Only a SHA-256 of each token is kept, so a copy
-- of the database does not hand out working links.
CREATE TABLE IF NOT EXISTS link_tokens (
    token_hash    TEXT    PRIMARY KEY,
    recipient_id  INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    created_at    REAL    NOT NULL,
    expires_at    REAL    NOT NULL,
    used_at       REAL,                               -- NULL until redeemed
    used_by_chat  INTEGER
);
CREATE INDEX IF NOT EXISTS link_tokens_expiry ON link_tokens (expires_at);
