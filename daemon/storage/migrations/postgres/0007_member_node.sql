-- failover-notify on PostgreSQL, schema version 5: where a member's pid means something.
--
-- cluster_members.node is "<kernel boot id>/<pid namespace>" of the daemon's process (NULL where /proc
-- does not tell). A pid names the same process only to a daemon with the same node: the same machine,
-- the same boot, the same pid namespace (two containers may share a hostname, never a pid namespace).
-- A daemon starting on the node of a member whose pid no longer runs (or runs a process started after
-- that member did: a reused pid) knows that member is gone, and takes its claims back at once instead
-- of waiting for its leases to run out (daemon/storage/postgres_cluster.py).
ALTER TABLE cluster_members ADD COLUMN node text;
