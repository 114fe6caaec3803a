#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the SLURM end-to-end tests (and for trying
# the SLURM profile by hand): munge, MariaDB, slurmdbd (accounting, so that `sacct` answers:
# the executor plugin polls it), slurmctld and slurmd, from Debian 12's packages.
#
#   sudo .ci/slurm/up.sh      # install (apt-get), configure, start; prints what it started
#   sudo .ci/slurm/down.sh    # stops only what up.sh started
#
# Root only (it installs packages and writes /etc/slurm). Idempotent: a daemon that already
# answers is left alone and not recorded, so a second run, or a cluster that was there before,
# starts nothing. The node is this machine (`slurmd -C`: its CPUs and memory), partition
# `debug`, no GRES (no GPU): a job asking for a GPU is refused by sbatch. Daemons are started
# directly (no systemd needed); their pids go to $STATE/started, logs to /var/log/slurm.
set -euo pipefail

STATE=${TRLEARNER_SLURM_STATE:-/run/trlearner-slurm}
CLUSTER=trlearner
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by trlearner .ci/slurm/up.sh"

die() { echo "slurm-up: $*" >&2; exit 1; }
say() { echo "slurm-up: $*"; }
[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and starts daemons)"
mkdir -p "$STATE"
touch "$STATE/started"

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds
wait_for() {
  local t=$1; shift
  for _ in $(seq $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
# started NAME PIDFILE: record a daemon as soon as it has forked (before its readiness check,
# so that down.sh stops it even when up.sh gives up waiting for it)
started() {
  wait_for 15 test -s "$2" || die "$1 did not start (no pid file $2); see /var/log/slurm/ and /var/log/munge/"
  echo "$1 $(cat "$2")" >>"$STATE/started"
  say "started $1 (pid $(cat "$2"))"
}

# ---------------------------------------------------------------- packages
need=()
for cmd in munged:munge mariadbd:mariadb-server slurmdbd:slurmdbd slurmctld:slurm-wlm slurmd:slurm-wlm sacct:slurm-wlm; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${cmd%%:*}" ] || need+=("${cmd#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  say "installing $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $pkgs >"$STATE/apt.log" 2>&1 \
    || { apt-get update -q >>"$STATE/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends $pkgs >>"$STATE/apt.log" 2>&1; } \
    || { tail -20 "$STATE/apt.log" >&2; die "apt-get install $pkgs failed (log above: $STATE/apt.log)"; }
fi
export PATH=/usr/sbin:/sbin:$PATH
mkdir -p /run/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd

# ---------------------------------------------------------------- slurm.conf (every client reads it)
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  say "keeping the existing $CONF (not written by this script)"
else
  node=$(slurmd -C | head -1)   # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
  cat >"$CONF" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$(hostname -s)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MinJobAge=300
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
fi
# ---------------------------------------------------------------- munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munge already running"
else
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
  chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  started munged /run/munge/munged.pid
  wait_for 10 sh -c 'munge -n | unmunge' || die "munged does not answer; see /var/log/munge/munged.log"
fi

# ---------------------------------------------------------------- MariaDB
if mysqladmin --protocol=socket ping >/dev/null 2>&1; then
  say "MariaDB already running"
else
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$STATE/mariadb-install.log" 2>&1 \
    || die "mariadb-install-db failed; see $STATE/mariadb-install.log"
  nohup mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid --skip-networking \
    --innodb-lock-wait-timeout=900 >/var/log/slurm/mariadb.log 2>&1 &
  echo $! >"$STATE/mariadbd.pid"   # mariadbd does not fork: the background job is the daemon
  started mariadbd "$STATE/mariadbd.pid"
  wait_for 60 mysqladmin --protocol=socket ping || die "MariaDB does not answer; see /var/log/slurm/mariadb.log"
fi

# ---------------------------------------------------------------- slurmdbd
if [ -f "$DBD_CONF" ] && ! grep -qF "$MARK" "$DBD_CONF"; then
  say "keeping the existing $DBD_CONF (not written by this script)"
else
  pass=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" 2>/dev/null || true)
  [ -n "$pass" ] || pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DBD_CONF"
  mariadb --protocol=socket -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
    ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
fi
if sacctmgr -n list cluster >/dev/null 2>&1; then
  say "slurmdbd already running"
else
  rm -f /run/slurm/slurmdbd.pid
  slurmdbd
  started slurmdbd /run/slurm/slurmdbd.pid
  wait_for 60 sacctmgr -n list cluster || die "slurmdbd does not answer; see /var/log/slurm/slurmdbd.log"
fi
sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null

# ---------------------------------------------------------------- slurmctld + slurmd
if scontrol ping 2>/dev/null | grep -q "is UP"; then
  say "slurmctld already running"
else
  rm -f /run/slurm/slurmctld.pid
  slurmctld
  started slurmctld /run/slurm/slurmctld.pid
  wait_for 30 sh -c 'scontrol ping | grep -q "is UP"' || die "slurmctld does not answer; see /var/log/slurm/slurmctld.log"
fi
node_name=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$CONF" | head -1)
if [ -s /run/slurm/slurmd.pid ] && kill -0 "$(cat /run/slurm/slurmd.pid)" 2>/dev/null; then
  say "slurmd already running"
else
  rm -f /run/slurm/slurmd.pid
  slurmd -N "$node_name"
  started slurmd /run/slurm/slurmd.pid
fi
# a node left DOWN/DRAIN by an earlier, unclean stop is returned to service
sinfo -h -N -o '%T' -n "$node_name" | grep -qiE 'down|drain' && scontrol update nodename="$node_name" state=resume || true
wait_for 30 sh -c "sinfo -h -N -o '%T' -n '$node_name' | grep -qE '^(idle|mixed|allocated)'" \
  || die "node $node_name is not up: $(sinfo -h -N -o '%T %E' -n "$node_name"); see /var/log/slurm/slurmd.log"
wait_for 30 sacct -n -X -S now-1hour || die "sacct does not answer; see /var/log/slurm/slurmdbd.log"
say "cluster '$CLUSTER' is up: node $node_name ($(sinfo -h -N -o '%c CPUs, %m MB' -n "$node_name")), partition debug"
