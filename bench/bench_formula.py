"""Throughput of a loss given as a formula: descentsim's compiled program against a JAX ``vmap`` of the same formula.

What it measures
----------------
Liu's loss L(x) = x²·(1 + ε·cos(2πx/λ)), ε = 0.2, λ = 0.1, as ``model = "formula"``: learning rate ``lr`` over
0.001..0.2 on x, initial value ``x0`` over 0.2..1.2 on y, full-batch gradient descent for 1000 steps.

For each precision it times

* the **Cython** engine, which interprets the compiled program of the loss and its SymPy gradient
  (``descentsim.formula``) per SIMD lane, with its transcendentals built from + − × ÷;
* the **NumPy** reference on a smaller grid (and checks the two bit for bit there);
* a plain **JAX** version (when ``import jax`` works): ``jax.vmap`` over grid points of a ``jax.lax.scan`` over
  the steps with ``jax.value_and_grad`` of the same formula in ``jax.numpy`` (XLA's own cos), jitted and compiled
  ahead of time; the simplified outcome rules of ``common.jax_rules``; no early exit.

Rates are trajectory-steps per second: *nominal* = points × steps / wall, *actual* = updates actually run / wall
(descentsim stops decided trajectories; JAX runs every step). Outcomes of JAX and Cython are compared; expect
differences at chaotic points, since XLA's cos and order of operations differ from descentsim's.

How to run
----------
    python bench/bench_formula.py                     # 256×256 map, NumPy on 24×24, JAX if installed
    python bench/bench_formula.py --grid 128 --dtypes float64 --skip-jax
"""

from __future__ import annotations

import argparse
import math
import sys
from types import ModuleType
from typing import Callable

import descentsim as ds
from bench_relu_neuron import run_scalar_benchmark
from common import argument_parser, jax_scalar_gd, parse_checked

LOSS = "x**2 * (1 + eps*cos(2*pi*x/lam))"
EPS, LAM = 0.2, 0.1
LR_AXIS = ("lr", 0.001, 0.2, "linear")
X0_AXIS = ("x0", 0.2, 1.2, "linear")


def formula_map_spec(grid: int, steps: int, dtype: str) -> ds.MapSpec:
    """The benchmarked map on a ``grid`` × ``grid`` lattice."""
    return ds.MapSpec(model="formula", x=ds.Axis(*LR_AXIS[:3], grid, scale=LR_AXIS[3]),
                      y=ds.Axis(*X0_AXIS[:3], grid, scale=X0_AXIS[3]), steps=steps, dtype=dtype,
                      params={"loss": LOSS, "parameters": "x", "eps": EPS, "lam": LAM})


def jax_formula_map_fn(jax: ModuleType, spec: ds.MapSpec) -> Callable:
    """(lr, x0) → (outcome, decided_step) over a batch of grid points: vmap of a scan of value_and_grad steps."""
    jnp = jax.numpy
    k = 2 * math.pi / LAM

    def loss(x):
        return x * x * (1 + EPS * jnp.cos(k * x))

    return jax_scalar_gd(jax, spec, loss)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0], grid=256, steps=1000, jax_chunk_rows=16)
    parser.add_argument("--numpy-grid", type=int, default=24, help="points per axis for the NumPy reference (24)")
    return parse_checked(parser, argv, sizes=("numpy_grid",))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_scalar_benchmark(
        args, f"formula map: L = {LOSS}, eps = {EPS}, lam = {LAM}; lr {LR_AXIS[1]:g}..{LR_AXIS[2]:g} (x), "
        f"x0 {X0_AXIS[1]:g}..{X0_AXIS[2]:g} (y), {args.steps} steps", formula_map_spec, jax_formula_map_fn)


if __name__ == "__main__":
    sys.exit(main())
