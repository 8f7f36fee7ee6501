#!/bin/bash
# A descentsim map as a SLURM batch job that resubmits itself until the map is complete.
#
#   sbatch examples/batch/slurm_map.sh examples/relu_neuron.toml relu.h5
#
# Ranks × threads: --ntasks-per-node × --cpus-per-task should be the cores of a node.
# Before the wall-time limit SLURM sends USR1 to this script (--signal=B:USR1@120; SLURM may send it up
# to a minute earlier than asked, so leave room for that). The script then sends SIGTERM to the ranks
# through SLURM (scancel --signal=TERM: srun itself must not get SIGTERM, it would kill them), they finish
# the work in hand, save their finished tiles in OUT.partial and exit 75, and the script submits the same
# job again, which continues with --resume. It resubmits only while each job saves new tiles, up to
# MAX_SUBMISSIONS. A run killed harder (node failure) resumes the same way when resubmitted by hand.
# scancel (SIGTERM) also stops the run cleanly, but does not resubmit it.
#
# The resubmitted job keeps the nodes, tasks, CPUs per task, time limit and partition of this one, even
# those given on the sbatch command line (SLURM tells a job these); other options come from the #SBATCH
# lines below, or from SBATCH_* variables exported when submitting (SBATCH_SIGNAL=B:USR1@300 sbatch ...),
# which every resubmission inherits.
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

journal_bytes() { stat -c %s "$OUT.partial" 2>/dev/null || echo 0; }
saved_before=$(journal_bytes)

out_of_time=0
trap 'out_of_time=1' USR1

# srun in the background, so that this shell can take USR1 while it waits. --kill-on-bad-exit ends the
# job if one rank dies.
srun --cpus-per-task="$OMP_NUM_THREADS" --cpu-bind=cores --kill-on-bad-exit=1 \
    descentsim-map "$CONFIG" -o "$OUT" --threads "$OMP_NUM_THREADS" --resume &
pid=$!
wait "$pid"
status=$?
if kill -0 "$pid" 2>/dev/null; then  # woken by USR1: SIGTERM to the ranks until they have saved and left
    while kill -0 "$pid" 2>/dev/null; do  # (again: a step that had not started yet missed the first)
        scancel --quiet --signal=TERM "$SLURM_JOB_ID"
        sleep 2
    done
    wait "$pid"
    status=$?
fi

if [ "$out_of_time" -eq 1 ] && [ ! -e "$OUT" ] && [ "$status" -ne 2 ]; then
    if [ "$(journal_bytes)" -le "$saved_before" ]; then
        echo "descentsim-map saved no tile in this job (the signal came too early for it); not resubmitting"
    elif [ "$SUBMISSION" -ge "$MAX_SUBMISSIONS" ]; then
        echo "descentsim-map is still incomplete after $MAX_SUBMISSIONS submissions; not resubmitting"
    else
        echo "descentsim-map stopped at the time limit (exit $status); resubmitting (submission $((SUBMISSION + 1)))"
        sbatch --export=ALL,SUBMISSION=$((SUBMISSION + 1)) --nodes="$SLURM_JOB_NUM_NODES" \
            --ntasks="$SLURM_NTASKS" ${SLURM_NTASKS_PER_NODE:+--ntasks-per-node="$SLURM_NTASKS_PER_NODE"} \
            ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"} --partition="$SLURM_JOB_PARTITION" \
            --time="$(squeue -h -j "$SLURM_JOB_ID" -o %l)" "$0" "$CONFIG" "$OUT"
    fi
fi
exit "$status"
