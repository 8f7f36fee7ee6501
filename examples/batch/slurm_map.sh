#!/bin/bash
# A descentsim map as a SLURM batch job that resubmits itself until the map is complete.
#
#   sbatch examples/batch/slurm_map.sh examples/relu_neuron.toml relu.h5
#
# Each rank runs --threads OpenMP threads; ranks × threads should equal the cores you ask for.
# At the wall-time limit SLURM sends SIGTERM (here 120 s before, see --signal): descentsim-map
# saves its finished tiles in OUT.partial and exits 75; the script then queues the same job again,
# which continues with --resume. A run killed harder (node failure) resumes the same way.
#SBATCH --job-name=descentsim
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=4
#SBATCH --time=01:00:00
#SBATCH --signal=B:TERM@120
#SBATCH --output=descentsim-%j.log

set -u
CONFIG=${1:?usage: sbatch slurm_map.sh CONFIG.toml OUT.h5}
OUT=${2:?usage: sbatch slurm_map.sh CONFIG.toml OUT.h5}

# Environment: adapt to your site (a module system, a virtual environment with descentsim and an
# mpi4py built against the site's MPI: MPICC=mpicc pip install --no-binary mpi4py mpi4py).
# module load gcc openmpi python
# source ~/venvs/descentsim/bin/activate

export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OMP_PROC_BIND=close OMP_PLACES=cores

# SIGTERM reaches this batch shell (--signal=B:...); pass it on to srun, which forwards it to every
# rank. srun runs in the background so that the shell can take the signal while it waits.
srun --cpu-bind=cores descentsim-map "$CONFIG" -o "$OUT" --threads "$OMP_NUM_THREADS" --resume &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM
wait "$pid"
status=$?
while kill -0 "$pid" 2>/dev/null; do  # wait returned early for the signal: wait for the ranks to save
    wait "$pid"
    status=$?
done

if [ "$status" -eq 75 ]; then
    echo "descentsim-map stopped before the map was complete; resubmitting"
    sbatch "$0" "$CONFIG" "$OUT"
fi
exit "$status"
