"""``make bench``: how fast and how lean the daemon is, measured against loopback simulators."""
