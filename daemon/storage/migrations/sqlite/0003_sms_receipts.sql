-- failover-notify SQLite schema, version 3: SMS delivery receipts and what SMS has cost.
--
-- sms_receipts: one row per SMS accepted while [sms] receipts is on. Its attempt stays open (outcome
-- NULL) and the notification sending, unclaimed, due at wait_until (the durable timer, as for the ack
-- wait); a final status (from Twilio's callback or a poll) makes the notification due at once, and
-- the engine then closes the attempt. A receipt row is pending while its attempt is open.
CREATE TABLE sms_receipts (
    message_sid      TEXT    PRIMARY KEY,             -- Twilio's MessageSid
    notification_id  INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt_id       INTEGER NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    wait_until       REAL    NOT NULL,
    timeout          REAL    NOT NULL,                -- [sms] receipt_timeout when sent, seconds
    status           TEXT,                            -- last status reported, NULL before any
    error_code       INTEGER,
    reported_at      REAL
);
CREATE INDEX sms_receipts_notification ON sms_receipts (notification_id);

-- sms_sent: every SMS a provider accepted (it is paid for), for [sms] recipient_limits (messages per
-- recipient in sliding windows) and [sms] daily_budget (segments per UTC day).
CREATE TABLE sms_sent (
    id            INTEGER PRIMARY KEY,
    recipient_id  INTEGER NOT NULL,
    sent_at       REAL    NOT NULL,
    segments      INTEGER NOT NULL
);
CREATE INDEX sms_sent_time ON sms_sent (sent_at);
CREATE INDEX sms_sent_recipient ON sms_sent (recipient_id, sent_at);
