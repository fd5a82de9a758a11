#!/usr/bin/env bash
# Check the units offline, no running systemd needed (CI runs this when systemd-analyze exists):
#   1. systemd-analyze verify: syntax, known keys and values, dependencies, executables;
#   2. systemd-analyze security: the service's exposure must stay at or below $MAX_EXPOSURE (2.0).
# verify insists that ExecStart= exists, and /opt/failover-notify is not installed on a CI host, so
# the service is verified as a copy whose ExecStart= names this checkout's venv instead; every other
# line is verified as shipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
max_exposure="${MAX_EXPOSURE:-2.0}"
fnotify="$(dirname "$here")/.venv/bin/fnotify"

version="$(systemd-analyze --version | awk 'NR == 1 { print $2 }')"
if [ "${version%%[!0-9]*}" -lt 250 ]; then  # --offline, --threshold, --recursive-errors came in 250
    echo "systemd $version is older than 250: unit checks skipped" >&2
    exit 0
fi
[ -x "$fnotify" ] || { echo "$fnotify: missing; run 'make venv' first" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s#^ExecStart=/opt/failover-notify/venv/bin/fnotify #ExecStart=$fnotify #" \
    "$here/failover-notify.service" > "$tmp/failover-notify.service"
grep -q "^ExecStart=$fnotify " "$tmp/failover-notify.service" || { echo "ExecStart= not rewritten" >&2; exit 1; }
cp "$here/failover-notify.socket" "$tmp/"

# warnings ("Unknown key", "Invalid syntax, ignoring") leave verify's exit status at 0: fail on them too
if ! out="$(systemd-analyze verify --man=no --recursive-errors=no \
        "$tmp/failover-notify.socket" "$tmp/failover-notify.service" 2>&1)" || [ -n "$out" ]; then
    echo "$out" >&2
    echo "systemd-analyze verify: failed" >&2
    exit 1
fi
echo "systemd-analyze verify: failover-notify.socket, failover-notify.service OK"

threshold="$(awk -v e="$max_exposure" 'BEGIN { printf "%d", e * 10 + 0.5 }')"  # exposure 2.0 -> 20
if ! out="$(systemd-analyze security --offline=true --threshold="$threshold" --no-pager \
        "$here/failover-notify.service" 2>&1)"; then
    echo "$out" >&2
    echo "systemd-analyze security: exposure above $max_exposure" >&2
    exit 1
fi
echo "systemd-analyze security: $(grep 'Overall exposure level' <<<"$out" | sed 's/^→ *//')"
