#!/usr/bin/env bash
# Submit a Snakemake job script as a background process; print its job id.
# Usage (by Snakemake): submit.sh JOBSCRIPT
set -euo pipefail
jobscript="$1"
state="${TRLEARNER_CLUSTER_STATE:-.snakemake/cluster-test}"
mkdir -p "$state"
id="job$(date +%s%N)$$"
# setsid: the job survives the submitting shell, like a batch job; its exit code is the status.
setsid bash -c 'bash "$1" > "$2/$3.out" 2>&1; echo $? > "$2/$3.rc.tmp"; mv "$2/$3.rc.tmp" "$2/$3.rc"' \
    _ "$jobscript" "$state" "$id" < /dev/null > /dev/null 2>&1 &
echo "$!" > "$state/$id.pid"
echo "$id"
