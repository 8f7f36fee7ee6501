#!/usr/bin/env bash
# The GPU engine's check on a machine with a GPU, CUDA, CuPy and JAX (issue 13): installs this checkout, runs the GPU
# tests (tests/test_gpu.py: the GPU against the NumPy reference, bit for bit) and the GPU benchmark
# (bench/bench_gpu.py: against JAX on the same GPU), and prints a compact report; 8 minutes at most.
#
#   bash bench/gpu_check.sh                 # from the checkout's root or anywhere
#   CHECK_SECONDS=300 bash bench/gpu_check.sh
#
# The build needs Cython and Meson; meson-python too for pip, and without it the script builds with Meson itself.
# Everything it prints also goes to $OUT/gpu_check.log where OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
TOTAL=${CHECK_SECONDS:-470}
PYTHON=${PYTHON:-python3}
LOG=${OUT:-/tmp}/gpu_check.log
mkdir -p "$(dirname "$LOG")"
exec > >(tee "$LOG") 2>&1
say() { echo "[gpu_check $(( $(date +%s) - START ))s] $*"; }
left() { echo $(( TOTAL - ($(date +%s) - START) )); }

say "machine: $(nvidia-smi -L 2>/dev/null | head -1 || echo 'nvidia-smi absent'); $(nproc) cores; $($PYTHON --version)"
$PYTHON - <<'PY'
import importlib
for name in ("numpy", "cupy", "jax", "Cython", "mesonpy"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as exc:
        print(f"  {name}: absent ({type(exc).__name__})")
PY

say "installing the checkout"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if $PYTHON -c "import mesonpy" 2>/dev/null; then
    $PYTHON -m pip install -q --no-build-isolation --no-deps "$ROOT" || { say "FAILED: pip install"; exit 1; }
else  # no meson-python: Meson builds and installs into a prefix put on PYTHONPATH
    PREFIX=$(mktemp -d /tmp/descentsim-prefix.XXXX)
    BUILD=$(mktemp -d /tmp/descentsim-build.XXXX)
    meson setup "$BUILD" "$ROOT" --prefix "$PREFIX" -Dpython.install_env=prefix -Dbuildtype=release \
        >/tmp/descentsim-meson.log 2>&1 && meson install -C "$BUILD" >>/tmp/descentsim-meson.log 2>&1 \
        || { tail -20 /tmp/descentsim-meson.log; say "FAILED: meson build"; exit 1; }
    SITE=$(dirname "$(find "$PREFIX" -path '*/descentsim/__init__.py' | head -1)")
    export PYTHONPATH="$(dirname "$SITE")${PYTHONPATH:+:$PYTHONPATH}"
fi
cd "$(mktemp -d)"  # an empty directory: the source tree (or any stray module) would shadow the installed package
$PYTHON -c "import descentsim, descentsim._kernels; print('  descentsim from', descentsim.__file__)" \
    || { say "FAILED: descentsim does not import"; exit 1; }
$PYTHON -c "from descentsim.backends.gpu import cupy_unavailable as u; print('  GPU engine:', u() or 'available')"

export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX takes GPU memory as it needs it, not 75 % of it at start
# Three passes, most telling first, each cut off by its share of the time (150 s are kept for the benchmark; each
# network shape is one NVRTC compile of 5-20 s, cached for later passes and the benchmark): the cooperative layout on
# the SD and digits maps; the one-thread kernels and the compile checks; the cooperative layout's other networks.
say "GPU tests (tests/test_gpu.py): the cooperative layout on the SD and digits maps first; $(left) s left"
PYTEST=($PYTHON -m pytest -q -p no:cacheprovider --maxfail=3 -rfE --tb=short --rootdir "$ROOT" "$ROOT/tests/test_gpu.py")
TEST_BUDGET=$(( $(left) - 150 ))
budget() { local b=$(( $1 < $(left) - 150 ? $1 : $(left) - 150 )); echo $(( b > 30 ? b : 30 )); }
timeout "$(budget $(( TEST_BUDGET * 3 / 10 )))" "${PYTEST[@]}" -k "cupy and cooperative and (sd or digits)" 2>&1 \
    | tail -25
COOP=${PIPESTATUS[0]}
say "the one-thread kernels and the compile checks; $(left) s left"
timeout "$(budget $(( TEST_BUDGET * 4 / 10 )))" "${PYTEST[@]}" \
    -k "(cupy and not cooperative) or compile_for_a_gpu or gpu_is_named" 2>&1 | tail -25
REST=${PIPESTATUS[0]}
say "the cooperative layout's other networks; $(left) s left"
timeout "$(budget "$(left)")" "${PYTEST[@]}" -k "cupy and cooperative and not (sd or digits)" 2>&1 | tail -25
OTHERS=${PIPESTATUS[0]}
TESTS=$(( COOP > REST ? COOP : REST ))
TESTS=$(( OTHERS > TESTS ? OTHERS : TESTS ))
say "GPU tests exit status: cooperative (SD, digits) $COOP, the rest $REST, cooperative (others) $OTHERS (124: out of time)"

say "GPU benchmark (bench/bench_gpu.py), $(left) s left"
UNTIL=$(( $(date +%s) + $(left) - 40 ))
run_bench() {  # skipped once fewer than 20 s are left; each run stops 5 s before the check's end
    local budget=$(( $(left) - 5 ))
    if (( budget < 20 )); then say "skipped (out of time): bench_gpu.py $*"; return; fi
    timeout "$budget" $PYTHON "$ROOT/bench/bench_gpu.py" --until "$UNTIL" "$@" 2>&1
}
run_bench --maps sd --dtypes float64 --arithmetic exact,fast --budget-s 8
run_bench --maps quadratic --dtypes float32 --arithmetic exact --budget-s 5
# the same map in the one-thread kernel: what the cooperative layout (a group of threads a network) gains
run_bench --maps sd --dtypes float64 --arithmetic exact --budget-s 5 --skip-jax --one-thread
run_bench --maps sd --dtypes float32 --arithmetic exact,fast --budget-s 6
run_bench --maps relu,digits --dtypes float32 --arithmetic exact --budget-s 5
say "done: tests exit $TESTS; the log is $LOG"
exit "$TESTS"
