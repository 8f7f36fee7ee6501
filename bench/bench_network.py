"""Speed of the general network kernel (model = "network") against JAX, on the SD map and the digits map, in one run.

What it measures
----------------
Network-steps per second (one loss-and-gradient evaluation and update of one network) of descentsim's
compiled engine (Cython, OpenMP) and of a plain JAX implementation of the same work, on two maps, in
float32 and float64:

* **the SD map**: the fractal-trainability map of Sohl-Dickstein (2024) as ``bench/bench_mlp.py`` runs it
  (model ``mlp`` at its defaults: width 16, d 16, 272 data points, tanh, mean-field; lr1 × lr2 log
  1…1000 with lr = 1; full-batch gradient descent), once as ``model = "mlp"`` and once expressed as
  ``model = "network"`` (``widths = "16"``, ``activation = "tanh_sqrt2"``, ``bias = 0``, ``loss = "mse"``,
  ``parameterization = "mean_field"``, the mlp's data and initial weights through ``data_file`` and
  ``init_file``, lr1 × lr2 swept). The mlp is a preset of the network, so both run the network's kernel (its
  one-hidden-layer path): the two rows time the preset and the same network written out by hand, which
  must give the same bits (the benchmark checks that they do).
  JAX: ``bench_mlp.jax_mlp_map_fn`` (a ``vmap`` of a ``lax.scan`` of ``jax.value_and_grad``, with
  descentsim's early-stopping rules), one JAX run serving both rows;
* **the digits map**: ``examples/digits_collapse.toml`` on a smaller grid with fewer steps (hidden widths
  25, 12, ReLU, biases, softmax cross-entropy on scikit-learn's digits, 1797 × 64, standardised; Adam on
  minibatches of 32; the outcome rules judge the loss on the first 256 images at every step; lr ×
  init_scale). JAX: a ``vmap`` of a ``lax.scan`` doing per step the same work — the loss on the 256
  evaluation images (a forward pass, for the rules), then the gradient on a minibatch of 32 and Adam's
  update, written out by hand (no optax) as ``descentsim.optimizers`` performs it. **JAX draws its own
  minibatches** (``jax.random``, with replacement, the same for every grid point as descentsim's default
  ``batch_per_point = 0``), not descentsim's sequence, so the two engines train on different batches:
  compare steps/s, not outcomes, on this map (its outcomes are printed only as a sanity check).

Rates: *nominal* = grid points × steps / wall time (the map-equivalent rate, comparable between an engine
that stops decided trajectories early and one that runs every step); *actual* = steps actually run / wall.
JAX runs every step of every network. "vs JAX" is descentsim's nominal rate over JAX's of the same map and
precision. Each engine is warmed up (JAX compiled ahead of time, its compile time printed apart) before it
is timed; ``--repeats N`` keeps the best of N timed runs in a row, ``--rounds N`` measures every engine N
times in turn and keeps each one's best (on a shared machine, where other jobs come and go, the rounds
give each engine its share of the quiet moments).

FLOP count (per network step; the same count for every engine, whatever it executes):

* SD map: 333,745 FLOP (``bench_mlp.flop_count``; the 4,352 tanh not counted);
* digits map: layers (a_l × b_l) = 64 × 25, 25 × 12, 12 × 10, P = 2,067 parameters, k = 10 classes. Per
  sample, forward Σ (2·a_l·b_l + b_l) + the hidden ReLUs Σ b_l + the cross-entropy 4k + 2 = 4,166;
  backward 2k (softmax − one-hot) + Σ (2·a_l·b_l + b_l) for ∂L/∂W_l, ∂L/∂b_l + Σ_{l>1} (2·a_l·b_l + a_l) for
  the error sent back through the layers and the ReLU's mask = 4,984. Per step: 256 evaluation samples
  forward (the rules' loss), 32 minibatch samples forward and backward, the mean (P) and Adam's update
  (14·P): 256·4,166 + 32·(4,166 + 4,984) + 15·P = 1,390,301 FLOP, of which 1,319,680 in the matrix
  products; the 10 exp and 1 log per sample and pass are not counted. (``digits_flop_count`` computes it
  from the spec.)

How to run
----------
From the repository root, with JAX (``pip install ".[bench]"``) and scikit-learn (the digits) installed:

    python bench/bench_network.py                # SD 32×32, 500 steps; digits 16×16, 300 steps; both dtypes
    python bench/bench_network.py --rounds 3     # the README's figures
    python bench/bench_network.py --grid 64 --digits-grid 32 --repeats 3
    python bench/bench_network.py --dtypes float32 --skip-jax
    python bench/bench_network.py --help

One round at the defaults takes about 45 s on a 2-core machine, ``--rounds 3`` about 2–3 minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np

import descentsim as ds
from bench_mlp import cpu_model, flop_count, jax_mlp_map_fn, mlp_map_spec, mlp_sizes, xla_flop_estimate
from common import (
    UNDECIDED,
    JaxRun,
    Measurement,
    argument_parser,
    class_fractions,
    fields_identical,
    import_jax,
    jax_rules,
    jax_rules_start,
    outcome_class,
    parse_checked,
    print_jax_agreement,
    print_jax_status,
    time_descentsim,
    time_jax,
)
from descentsim.cli import load_config
from descentsim.map_data import package_version
from descentsim.threads import available_cores

DIGITS_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_collapse.toml"


# ---- the maps ------------------------------------------------------------------------------------


def sd_as_network(spec: ds.MapSpec, where: Path) -> ds.MapSpec:
    """The mlp map ``spec`` (one hidden layer, tanh, at init_scale 1 and no w1_offset) as ``model = "network"``:
    its data and initial weights, read from ``descentsim.problem``, in ``where``/data.npz and init.npz."""
    width, d, _ = mlp_sizes(spec)
    pb = ds.problem(spec)
    np.savez(where / "data.npz", X=pb.data[:d].T, y=pb.data[d])
    np.savez(where / "init.npz", W1=pb.theta0[0, : d * width].reshape(d, width), W2=pb.theta0[0, d * width :, None])
    params = dict(widths=str(width), activation="tanh_sqrt2", bias=0, loss="mse", init="file",
                  init_file=str(where / "init.npz"), parameterization="mean_field", data="file",
                  data_file=str(where / "data.npz"), task="regression", lr=spec.params["lr"])
    return spec.replace(model="network", params=params)


def digits_map_spec(grid: int, steps: int, dtype: str) -> ds.MapSpec:
    """examples/digits_collapse.toml on a ``grid`` × ``grid`` lattice (its ranges), ``steps`` steps, ``dtype``."""
    return load_config(str(DIGITS_EXAMPLE), [f"x.n={grid}", f"y.n={grid}", f"steps={steps}", f"dtype={dtype}"])


def layer_shapes(spec: ds.MapSpec) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each weight layer of the digits network: the data's features, widths, classes."""
    pb = ds.problem(spec)
    features = pb.data.shape[0] - 1
    classes = int(pb.data[features].max()) + 1
    sizes = [features, *(int(w) for w in str(spec.params["widths"]).split(",")), classes]
    return list(zip(sizes[:-1], sizes[1:]))


def digits_flop_count(spec: ds.MapSpec) -> dict[str, int]:
    """FLOP per network step of the digits map, by part (the module docstring derives it); exp and log not counted."""
    shapes = layer_shapes(spec)
    classes = shapes[-1][1]
    parameters = sum(a * b + b for a, b in shapes)
    batch, evaluated = int(spec.params["batch_size"]), ds.problem(spec).eval_count
    matmul_forward = sum(2 * a * b for a, b in shapes)
    matmul_backward = matmul_forward + sum(2 * a * b for a, b in shapes[1:])
    forward = matmul_forward + sum(b for _, b in shapes) + sum(b for _, b in shapes[:-1]) + 4 * classes + 2
    backward = 2 * classes + matmul_backward + sum(b for _, b in shapes) + sum(a for a, _ in shapes[1:])
    matmul = evaluated * matmul_forward + batch * (matmul_forward + matmul_backward)
    total = evaluated * forward + batch * (forward + backward) + 15 * parameters
    return {"matmul": matmul, "total": total, "parameters": parameters}


# ---- JAX: the digits map -------------------------------------------------------------------------


def jax_digits_map_fn(jax: ModuleType, spec: ds.MapSpec, key_seed: int = 0) -> Callable:
    """A function (lr, init_scale) → (outcome, decided_step) over a batch of grid points, vmapped but not jitted.

    Per point: ``jax.lax.scan`` over t = 0..steps; at each t the mean cross-entropy on the first
    eval_samples images (L_t, judged by the simplified rules of ``common.jax_rules``), then, while
    undecided and t < steps, the gradient on ``batch_size`` images drawn with replacement by
    ``jax.random`` (key folded with t: the same batch for every point) and Adam's update (β₁, β₂, ε from
    the spec; m, v and the running products c₁, c₂ as ``descentsim.optimizers``). The initial parameters
    are init_scale × those of init_scale 1 (He's draw, biases 0), from ``descentsim.problem``.
    """
    jnp = jax.numpy
    dtype = jnp.dtype(spec.dtype)
    rules, steps = spec.resolved_thresholds, spec.steps
    shapes = layer_shapes(spec)
    unit_scale = spec.replace(y=None, params={**spec.params, "init_scale": 1.0})
    pb = ds.problem(unit_scale)
    features = shapes[0][0]
    x_all = jnp.asarray(pb.data[:features].T, dtype=dtype)
    y_all = jnp.asarray(pb.data[features], dtype=jnp.int32)
    evaluated = pb.eval_count
    x_eval, y_eval = x_all[:evaluated], y_all[:evaluated]
    samples, batch = x_all.shape[0], int(spec.params["batch_size"])
    theta0, start = [], 0
    for a, b in shapes:
        theta0.append(jnp.asarray(pb.theta0[0, start : start + a * b].reshape(a, b), dtype=dtype))
        theta0.append(jnp.asarray(pb.theta0[0, start + a * b : start + a * b + b], dtype=dtype))
        start += a * b + b
    values = {name: knob.default for name, knob in spec.knobs.items()} | dict(spec.params)
    beta1, beta2, eps = (jnp.asarray(float(values[k]), dtype=dtype) for k in ("beta1", "beta2", "eps"))
    key = jax.random.PRNGKey(key_seed)
    tree_map = jax.tree_util.tree_map

    def loss(params, x, y):
        h = x
        for i in range(0, len(params) - 2, 2):
            h = jnp.maximum(h @ params[i] + params[i + 1], 0)
        logits = h @ params[-2] + params[-1]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    grad = jax.grad(loss)

    def trajectory(lr, init_scale):
        def step(carry, t):
            params, m, v, c1, c2, decision = carry
            decision = jax_rules(jnp, rules, t, loss(params, x_eval, y_eval), decision)
            rows = jax.random.randint(jax.random.fold_in(key, t), (batch,), 0, samples)
            g = grad(params, x_all[rows], y_all[rows])
            m_next = tree_map(lambda m_i, g_i: beta1 * m_i + (1 - beta1) * g_i, m, g)
            v_next = tree_map(lambda v_i, g_i: beta2 * v_i + (1 - beta2) * (g_i * g_i), v, g)
            c1_next, c2_next = c1 * beta1, c2 * beta2
            updated = tree_map(lambda p, m_i, v_i: p - lr * ((m_i / (1 - c1_next)) / (jnp.sqrt(v_i / (1 - c2_next)) + eps)),
                               params, m_next, v_next)
            go = (decision[1] == UNDECIDED) & (t < steps)
            keep = lambda new, old: tree_map(lambda n, o: jnp.where(go, n, o), new, old)  # noqa: E731
            return (keep(updated, params), keep(m_next, m), keep(v_next, v), jnp.where(go, c1_next, c1),
                    jnp.where(go, c2_next, c2), decision), None

        params = [init_scale * p for p in theta0]
        zeros = [jnp.zeros_like(p) for p in theta0]
        one = jnp.ones((), dtype)
        carry = (params, zeros, zeros, one, one, jax_rules_start(jnp, dtype, steps))
        (*_, (_, outcome, decided_step, _)), _ = jax.lax.scan(step, carry, jnp.arange(steps + 1, dtype=jnp.int32))
        return outcome, decided_step

    return jax.vmap(trajectory)


# ---- running -------------------------------------------------------------------------------------


def print_xla_flop(jax_run: JaxRun, networks: int, flop: int) -> None:
    """XLA's own FLOP count of one compiled chunk, per network (the scan body counted once), beside ours."""
    xla_flop = xla_flop_estimate(jax_run.compiled)
    if xla_flop is not None:
        print(f"  XLA cost analysis: {xla_flop / networks:,.0f} FLOP per network step (cf. {flop:,})")


def describe(label: str, m: Measurement, conv_map: ds.ConvergenceMap) -> None:
    print(f"  {label} {m.shape[0]}×{m.shape[1]}: {m.wall_s:.3f} s; {class_fractions(outcome_class(conv_map.outcome))}; "
          f"mean steps run {m.steps_run / m.points:.1f} of {m.budget}")


def bench_sd(args: argparse.Namespace, dtype: str, jax: ModuleType | None, flop: int,
             where: Path) -> list[tuple[str, Measurement]]:
    """The SD map as model mlp and as model network (same bits, checked) in the Cython engine, and JAX."""
    spec = mlp_map_spec(args.grid, args.steps, dtype)
    mlp, mlp_map = time_descentsim(spec, "cython", args.threads, args.repeats, flop)
    describe("cython, model mlp", mlp, mlp_map)
    network, network_map = time_descentsim(sd_as_network(spec, where), "cython", args.threads, args.repeats, flop)
    describe("cython, model network", network, network_map)
    print(f"  model network vs model mlp: outcome, steps and final_loss bit-identical: "
          f"{fields_identical(mlp_map, network_map)}")
    rows = [("SD (mlp)", mlp), ("SD (network)", network)]
    if jax is not None:
        jax_run = time_jax(jax, spec, jax_mlp_map_fn(jax, spec), args.jax_chunk_rows, args.repeats, flop)
        print(f"  jax {args.grid}×{args.grid}: compile {jax_run.compile_s:.3f} s, run {jax_run.measurement.wall_s:.3f} s; "
              f"{class_fractions(jax_run.outcome)}")
        print_xla_flop(jax_run, min(args.jax_chunk_rows, args.grid) * args.grid, flop)
        print_jax_agreement(mlp_map, jax_run)
        rows.append(("SD", jax_run.measurement))
    return rows


def bench_digits(args: argparse.Namespace, dtype: str, jax: ModuleType | None, flop: int) -> list[tuple[str, Measurement]]:
    """The digits map in the Cython engine and in JAX (its own minibatches: outcomes not compared)."""
    spec = digits_map_spec(args.digits_grid, args.digits_steps, dtype)
    network, network_map = time_descentsim(spec, "cython", args.threads, args.repeats, flop)
    describe("cython, model network", network, network_map)
    accuracy = network_map.fields["accuracy"]
    print(f"  cython: accuracy ≤ 0.12 (chance) at {np.mean(accuracy <= 0.12):.1%} of points, collapsed "
          f"{np.mean(network_map.fields['collapsed']):.1%}, accuracy ≥ 0.9 at {np.mean(accuracy >= 0.9):.1%}")
    rows = [("digits", network)]
    if jax is not None:
        chunk_rows = max(1, args.jax_chunk_rows * args.grid // args.digits_grid)  # as many networks per call
        jax_run = time_jax(jax, spec, jax_digits_map_fn(jax, spec), chunk_rows, args.repeats, flop)
        print(f"  jax {args.digits_grid}×{args.digits_grid}: compile {jax_run.compile_s:.3f} s, "
              f"run {jax_run.measurement.wall_s:.3f} s; {class_fractions(jax_run.outcome)} (its own minibatches)")
        print_xla_flop(jax_run, min(chunk_rows, args.digits_grid) * args.digits_grid, flop)
        rows.append(("digits", jax_run.measurement))
    return rows


def print_table(rows: list[tuple[str, Measurement]]) -> None:
    """One line per map × engine × precision: rates, GFLOP/s and descentsim's nominal rate over JAX's."""
    header = (f"{'map':<14}{'engine':<8}{'dtype':<9}{'grid':>7}{'steps':>7}{'wall s':>9}{'nominal st/s':>14}"
              f"{'actual st/s':>13}{'GFLOP/s':>9}{'vs JAX':>8}")
    print(header)
    print("-" * len(header))
    jax_rate = {(label.split(" ")[0], m.dtype): m.nominal_rate for label, m in rows if m.engine == "jax"}
    for label, m in rows:
        reference = jax_rate.get((label.split(" ")[0], m.dtype))
        ratio = f"{m.nominal_rate / reference:.2f}" if reference and m.engine != "jax" else ""
        print(f"{label:<14}{m.engine:<8}{m.dtype:<9}{f'{m.shape[0]}×{m.shape[1]}':>7}{m.budget:>7}{m.wall_s:>9.2f}"
              f"{m.nominal_rate:>14.3e}{m.actual_rate:>13.3e}{m.gflops:>9.2f}{ratio:>8}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0] + " --grid and --steps are the SD map's.", grid=32, steps=500,
                             jax_chunk_rows=4)
    parser.add_argument("--digits-grid", type=int, default=16, help="points per axis of the digits map (16)")
    parser.add_argument("--digits-steps", type=int, default=300, help="steps of the digits map (300)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every engine this many times, in turn, and keep each one's best (1)")
    parser.add_argument("--maps", default="sd,digits", help="comma-separated maps to run (sd,digits)")
    args = parse_checked(parser, argv, sizes=("digits_grid", "rounds"), steps=("digits_steps",))
    args.maps = [name.strip() for name in args.maps.split(",") if name.strip()]
    if not args.maps or set(args.maps) - {"sd", "digits"}:
        parser.error("--maps takes sd and/or digits")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    jax = None if args.skip_jax else import_jax(enable_x64="float64" in args.dtypes)
    print(f"descentsim {package_version()}; Cython threads: {args.threads} (available cores: {available_cores()}); "
          f"CPU: {cpu_model()}")
    print_jax_status(jax, args.skip_jax, args.jax_chunk_rows)
    sd_flop = flop_count(*mlp_sizes(mlp_map_spec(args.grid, args.steps, "float64")))["total"]
    if "sd" in args.maps:
        print(f"SD map: model mlp at its defaults, lr1 × lr2 log 1..1000, lr = 1, {args.grid}×{args.grid}, "
              f"{args.steps} steps; {sd_flop:,} FLOP per network step (tanh not counted)")
    digits_flop = 0
    if "digits" in args.maps:
        digits = digits_map_spec(args.digits_grid, args.digits_steps, "float64")
        counts = digits_flop_count(digits)
        digits_flop = counts["total"]
        print(f"digits map: examples/digits_collapse.toml, lr × init_scale, {args.digits_grid}×{args.digits_grid}, "
              f"{args.digits_steps} steps; layers {layer_shapes(digits)}, {counts['parameters']:,} parameters; "
              f"{digits_flop:,} FLOP per network step ({counts['matmul']:,} in matrix products; exp, log not counted)")
    print()

    best: dict[tuple[str, str, str], Measurement] = {}  # (map, engine, dtype) → the fastest of the rounds
    with tempfile.TemporaryDirectory() as where:
        for round_number in range(1, args.rounds + 1):
            for dtype in args.dtypes:
                measured = []
                if "sd" in args.maps:
                    print(f"== SD map, {dtype}, round {round_number} of {args.rounds} ==")
                    measured += bench_sd(args, dtype, jax, sd_flop, Path(where))
                if "digits" in args.maps:
                    print(f"== digits map, {dtype}, round {round_number} of {args.rounds} ==")
                    measured += bench_digits(args, dtype, jax, digits_flop)
                for label, m in measured:
                    key = (label, m.engine, m.dtype)
                    if key not in best or m.wall_s < best[key].wall_s:
                        best[key] = m
    print()
    print_table([(label, m) for (label, _, _), m in best.items()])
    print("\nst/s = network-steps per second: nominal = grid points × steps / wall; actual = steps actually run / wall "
          "(JAX runs every step). GFLOP/s from the actual steps and the FLOP counts above. vs JAX = descentsim's "
          "nominal rate / JAX's on the same map and precision.")
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
