#!/bin/bash
# A descentsim map on one machine (or a set of hosts) with plain mpiexec, resumed until complete.
#
#   examples/batch/mpiexec_map.sh examples/relu_neuron.toml relu.h5 [RANKS] [THREADS]
#
# RANKS × THREADS should be the number of cores. If the run is stopped (SIGTERM, exit status 75)
# or killed, run the same command again: --resume keeps every finished tile.
set -u
CONFIG=${1:?usage: mpiexec_map.sh CONFIG.toml OUT.h5 [RANKS] [THREADS]}
OUT=${2:?usage: mpiexec_map.sh CONFIG.toml OUT.h5 [RANKS] [THREADS]}
RANKS=${3:-$(nproc)}
THREADS=${4:-1}

export OMP_NUM_THREADS=$THREADS
exec mpiexec -n "$RANKS" descentsim-map "$CONFIG" -o "$OUT" --threads "$THREADS" --resume
