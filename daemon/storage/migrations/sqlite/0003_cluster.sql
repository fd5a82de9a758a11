-- failover-notify SQLite schema, version 3: state the daemon obeys, kept in the database (as on
-- PostgreSQL, migrations/postgres/0002_cluster.sql) so that one store contract holds for both.
-- paused: `fnotify pause` survives a restart until `fnotify resume`.
CREATE TABLE cluster_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    paused      INTEGER NOT NULL DEFAULT 0,
    changed_by  TEXT,
    changed_at  REAL
);
INSERT INTO cluster_state (id) VALUES (1);
