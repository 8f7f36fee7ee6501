#!/bin/bash
# A descentsim map as a SLURM batch job that resubmits itself until the map is complete.
#
#   sbatch examples/batch/slurm_map.sh examples/relu_neuron.toml relu.h5
#
# Ranks × threads: --ntasks-per-node × --cpus-per-task should be the cores of a node.
# Two minutes before the wall-time limit SLURM sends USR1 to this script (--signal=B:USR1@120); the
# script passes SIGTERM to the ranks, descentsim-map saves its finished tiles in OUT.partial and
# exits 75, and the script queues the same job again, which continues with --resume. A run killed
# harder (node failure) resumes the same way when resubmitted by hand. scancel (SIGTERM) also stops
# the run cleanly, but does not resubmit it.
#SBATCH --job-name=descentsim
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=4
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --output=descentsim-%j.log

set -u
CONFIG=${1:?usage: sbatch slurm_map.sh CONFIG.toml OUT.h5}
OUT=${2:?usage: sbatch slurm_map.sh CONFIG.toml OUT.h5}
MAX_SUBMISSIONS=${MAX_SUBMISSIONS:-20}   # a safety cap on the chain of resubmissions
SUBMISSION=${SUBMISSION:-1}

# Environment: adapt to your site (modules, a virtual environment with descentsim, and mpi4py built
# against the site's MPI: MPICC=mpicc pip install --no-binary mpi4py mpi4py).
# module load gcc openmpi python
# source ~/venvs/descentsim/bin/activate

export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OMP_PROC_BIND=close OMP_PLACES=cores

out_of_time=0
trap 'out_of_time=1; kill -TERM "$pid" 2>/dev/null' USR1

# srun in the background, so that this shell can take USR1 while it waits; srun passes SIGTERM on
# to every rank. --kill-on-bad-exit ends the job if one rank dies.
srun --cpus-per-task="$OMP_NUM_THREADS" --cpu-bind=cores --kill-on-bad-exit=1 \
    descentsim-map "$CONFIG" -o "$OUT" --threads "$OMP_NUM_THREADS" --resume &
pid=$!
wait "$pid"
status=$?
while [ "$out_of_time" -eq 1 ] && kill -0 "$pid" 2>/dev/null; do  # woken by USR1: let the ranks save
    wait "$pid"
    status=$?
done

if [ "$status" -eq 75 ] && [ "$out_of_time" -eq 1 ]; then
    if [ "$SUBMISSION" -lt "$MAX_SUBMISSIONS" ]; then
        echo "descentsim-map stopped at the time limit; resubmitting (submission $((SUBMISSION + 1)))"
        sbatch --export=ALL,SUBMISSION=$((SUBMISSION + 1)) "$0" "$CONFIG" "$OUT"
    else
        echo "descentsim-map is still incomplete after $MAX_SUBMISSIONS submissions; not resubmitting"
    fi
fi
exit "$status"
