#!/usr/bin/env bash
# Stop what .ci/slurm/up.sh started (its record: $STATE/started, "name pid" per line), newest
# first; a daemon that was already running before up.sh is not in the record and keeps running.
# Packages, configuration and the accounting database stay (a later up.sh reuses them).
set -euo pipefail

STATE=${TRLEARNER_SLURM_STATE:-/run/trlearner-slurm}
[ -s "$STATE/started" ] || { echo "slurm-down: nothing was started by up.sh"; exit 0; }
tac "$STATE/started" | while read -r name pid; do
  [ -n "$pid" ] || continue
  # the pid must still be the daemon up.sh started (a pid can be reused after it exits)
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    echo "slurm-down: $name (pid $pid) is no longer running"
    continue
  fi
  kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm-down: $name (pid $pid) ignored SIGTERM for 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  echo "slurm-down: stopped $name (pid $pid)"
done
rm -f "$STATE/started"
