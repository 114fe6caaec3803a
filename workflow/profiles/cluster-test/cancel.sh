#!/usr/bin/env bash
# Cancel jobs given by id (Snakemake calls this on Ctrl-C).
state="${TRLEARNER_CLUSTER_STATE:-.snakemake/cluster-test}"
for id in "$@"; do
    [[ -f "$state/$id.pid" ]] && kill -- "-$(cat "$state/$id.pid")" 2>/dev/null || true
done
