#!/usr/bin/env bash
# Print running | success | failed for a job id given by submit.sh.
set -euo pipefail
id="$1"
state="${TRLEARNER_CLUSTER_STATE:-.snakemake/cluster-test}"
if [[ -f "$state/$id.rc" ]]; then
    [[ "$(cat "$state/$id.rc")" == "0" ]] && echo success || echo failed
elif [[ -f "$state/$id.pid" ]] && kill -0 "$(cat "$state/$id.pid")" 2>/dev/null; then
    echo running
else
    echo failed   # vanished without an exit code (killed)
fi
