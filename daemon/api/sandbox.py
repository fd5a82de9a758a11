"""What the systemd sandbox hides: a path check that knows about ``PrivateTmp=``."""

from __future__ import annotations

from pathlib import Path


def private_tmp_dirs(mountinfo: str | None = None) -> list[Path]:
    """``/tmp`` and ``/var/tmp`` where they are this service's own (``PrivateTmp=yes``): systemd mounts
    a ``systemd-private-*`` directory over them, which other processes do not see and which is removed
    when the service stops. Read from ``/proc/self/mountinfo`` unless ``mountinfo`` is given."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return []
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()  # id, parent, major:minor, root, mount point, ...
        if len(fields) > 4 and fields[4] in ("/tmp", "/var/tmp") and "/systemd-private-" in fields[3]:
            found.append(Path(fields[4]))
    return found
