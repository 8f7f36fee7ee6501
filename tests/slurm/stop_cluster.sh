#!/bin/bash
# Ends the SLURM that tests/slurm/start_cluster.sh DIR started: its slurmd, slurmctld and munged.
#
#   tests/slurm/stop_cluster.sh DIR
set -u
DIR=${1:?usage: stop_cluster.sh DIR}
for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
done
exit 0
