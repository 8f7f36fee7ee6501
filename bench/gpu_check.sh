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
    meson setup /tmp/descentsim-build "$ROOT" --prefix "$PREFIX" -Dpython.install_env=prefix -Dbuildtype=release \
        >/tmp/descentsim-meson.log 2>&1 && meson install -C /tmp/descentsim-build >>/tmp/descentsim-meson.log 2>&1 \
        || { tail -20 /tmp/descentsim-meson.log; say "FAILED: meson build"; exit 1; }
    SITE=$(dirname "$(find "$PREFIX" -path '*/descentsim/__init__.py' | head -1)")
    export PYTHONPATH="$(dirname "$SITE")${PYTHONPATH:+:$PYTHONPATH}"
fi
cd /tmp  # away from the source tree, which would shadow the installed package
$PYTHON -c "import descentsim, descentsim._kernels; print('  descentsim from', descentsim.__file__)" \
    || { say "FAILED: descentsim does not import"; exit 1; }
$PYTHON -c "from descentsim.backends.gpu import cupy_unavailable as u; print('  GPU engine:', u() or 'available')"

say "GPU tests (tests/test_gpu.py)"
timeout $(( $(left) - 240 > 60 ? $(left) - 240 : 60 )) $PYTHON -m pytest -q -p no:cacheprovider -x \
    --rootdir "$ROOT" "$ROOT/tests/test_gpu.py" -k "cupy or compile" 2>&1 | tail -15
TESTS=${PIPESTATUS[0]}
say "GPU tests exit status: $TESTS"

say "GPU benchmark (bench/bench_gpu.py), $(left) s left"
UNTIL=$(( $(date +%s) + $(left) - 75 ))
run_bench() { timeout $(( $(left) - 10 )) $PYTHON "$ROOT/bench/bench_gpu.py" --until "$UNTIL" "$@" 2>&1; }
run_bench --maps sd --dtypes float64,float32 --arithmetic exact,fast --budget-s 12
# the same map in the one-thread kernel: what the cooperative layout (a group of threads a network) gains
run_bench --maps sd --dtypes float64 --arithmetic exact --budget-s 6 --skip-jax --one-thread
run_bench --maps quadratic --dtypes float32,float64 --arithmetic exact --budget-s 6
run_bench --maps relu,digits --dtypes float32 --arithmetic exact --budget-s 6
say "done: tests exit $TESTS; the log is $LOG"
exit "$TESTS"
