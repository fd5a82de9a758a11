-- failover-notify SQLite schema, version 4: state the daemon obeys, kept in the database (as on
-- PostgreSQL, migrations/postgres/0003_cluster.sql) so that one store contract holds for both.
-- paused: `fnotify pause` survives a restart until `fnotify resume`.
CREATE TABLE cluster_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    paused      INTEGER NOT NULL DEFAULT 0,
    changed_by  TEXT,
    changed_at  REAL
);
INSERT INTO cluster_state (id) VALUES (1);
-- The same tables as PostgreSQL's cluster_members, cluster_leaders and telegram_updates (times: epoch
-- seconds): with one daemon they say so in `status`, elect it at once and de-duplicate redelivered updates.
CREATE TABLE cluster_members (
    id            TEXT    PRIMARY KEY,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    REAL    NOT NULL,
    heartbeat_at  REAL    NOT NULL
);
CREATE TABLE cluster_leaders (
    role         TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    lease_until  REAL NOT NULL
);
CREATE TABLE telegram_updates (
    update_id   INTEGER PRIMARY KEY,
    handled_at  REAL    NOT NULL
);
CREATE INDEX telegram_updates_age ON telegram_updates (handled_at);
