#!/bin/bash
# A one-node SLURM on this machine for tests/test_slurm.py: munge, slurmctld and slurmd of Debian's
# slurm-wlm (installed here if missing), all with files of their own in DIR; nothing under /etc changes.
#
#   tests/slurm/start_cluster.sh DIR CTLD_PORT SLURMD_PORT
#
# Writes DIR/slurm.conf (point SLURM_CONF at it) and waits until the node takes jobs. Exit 0: up;
# 77: SLURM cannot be had here (not root, no apt-get, the install failed), the reason on the last line
# of stderr; anything else: it was installed but did not start (a fault). tests/slurm/stop_cluster.sh
# DIR ends it.
set -u
DIR=${1:?usage: start_cluster.sh DIR CTLD_PORT SLURMD_PORT}
CTLD_PORT=${2:?usage: start_cluster.sh DIR CTLD_PORT SLURMD_PORT}
SLURMD_PORT=${3:?usage: start_cluster.sh DIR CTLD_PORT SLURMD_PORT}
cannot() { echo "$*" >&2; exit 77; }
fail() { echo "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || cannot "not root: starting munged, slurmctld and slurmd needs root"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm-wlm is not installed and there is no apt-get to install it"
    export DEBIAN_FRONTEND=noninteractive
    install() { apt-get install -y -q --no-install-recommends slurm-wlm >>"$DIR/apt.log" 2>&1; }
    install || { apt-get update -q >>"$DIR/apt.log" 2>&1 && install; } ||
        cannot "apt-get install slurm-wlm failed (no network?): $(tail -n 1 "$DIR/apt.log")"
fi

mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool"
chmod 700 "$DIR/munge"
# A munge of our own: its key, socket, pid and log in DIR (the system's munged, if any, is left alone).
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$DIR/munge/munge.key"
munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" ||
    fail "munged did not start: $(tail -n 1 "$DIR/munge/munged.log" 2>/dev/null)"

HOST=$(hostname -s)
cat >"$DIR/slurm.conf" <<EOF
ClusterName=descentsim-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -i || fail "slurmctld did not start: $(tail -n 1 "$DIR/slurmctld.log" 2>/dev/null)"
slurmd || fail "slurmd did not start: $(tail -n 1 "$DIR/slurmd.log" 2>/dev/null)"
for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t 2>/dev/null)
    case "$state" in idle*|mix*|alloc*) exit 0 ;; esac
    sleep 0.5
done
fail "the node never became idle (state '$state'): $(tail -n 1 "$DIR/slurmctld.log" 2>/dev/null)"
