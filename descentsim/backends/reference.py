"""The NumPy reference engine: the executable definition of every outcome rule and field.

Plain and vectorised over grid points; slow. Every compiled engine is tested against it.
"""

from __future__ import annotations

import numpy as np

from ..fields import FIELDS, empty_fields
from ..history import Recording
from ..models import Model, Problem
from ..optimizers import Optimizer
from ..outcome import SCORE_CLIP, SCORE_WINDOW, Outcome, Thresholds, decision_steps
from ..sampling import batch_indices
from ..errors import SpecError
from ..spec import MapSpec

#: Largest number of floats the cycle-detection history may hold at once (points are chunked).
HISTORY_BUDGET = 1 << 24


def loss_ratio(loss: np.ndarray, loss0: np.ndarray) -> np.ndarray:
    """L/L_0, and 0 where L_0 = 0 (a run that starts at a zero loss): the terms of loss_sum."""
    return np.where(loss0 == 0, 0.0, loss / np.where(loss0 == 0, 1.0, loss0))


def normalised_loss(loss: np.ndarray, loss0: np.ndarray) -> np.ndarray:
    """v = L/L_0 for the score: non-finite (also from a non-finite L_0) → 1e6, clipped at 1e6; 0 where L_0 = 0."""
    v = loss_ratio(loss, loss0)
    return np.where(np.isfinite(v), np.minimum(v, SCORE_CLIP), SCORE_CLIP)


def flush_subnormal(theta: np.ndarray) -> np.ndarray:
    """Parameters below the smallest normal number become 0 (applied to the trainable ones after each update).

    Gradual underflow must not carry a parameter across zero: in exact arithmetic a dead ReLU's
    weight decays towards 0 and never crosses, but rounding at subnormal magnitudes can flip its sign.
    """
    return np.where(np.abs(theta) < np.finfo(theta.dtype).tiny, theta.dtype.type(0), theta)


def train(
    model: Model,
    optimizer: Optimizer,
    problem: Problem,
    hyper: np.ndarray,
    factors: np.ndarray | None,
    steps: int,
    thresholds: Thresholds,
    dtype: str = "float64",
    recording: Recording | None = None,
) -> dict[str, np.ndarray]:
    """Train every row of ``problem`` for up to ``steps`` updates and classify it; fields shaped (n,).

    ``factors`` are the learning-rate schedule's f(t), t < steps (None: constant). ``recording``, if
    given, receives every row's curves up to its deciding step (``descentsim.history.Recording``).
    """
    n, p = problem.theta0.shape
    chunk = max(1, HISTORY_BUDGET // (p * (thresholds.max_period + 2)))
    parts = [
        _train_chunk(
            model, optimizer, problem, hyper, factors, slice(s, s + chunk), steps, thresholds, np.dtype(dtype),
            None if recording is None else recording.rows(slice(s, s + chunk)),
        )
        for s in range(0, n, chunk)
    ]
    return {name: np.concatenate([part[name] for part in parts]) for name in FIELDS}


def _train_chunk(model, optimizer, problem, hyper, factors, rows, steps, th: Thresholds, dtype,
                 recording: Recording | None) -> dict[str, np.ndarray]:
    theta = problem.theta0[rows].astype(dtype)
    consts = problem.consts[rows].astype(dtype)
    data = problem.data.astype(dtype)
    evaluation = data[:, : problem.eval_count]  # the samples of the full-data loss the rules judge
    hyper = hyper[rows].astype(dtype)  # rounded to the run's precision once, as the kernel's copy
    n, p = theta.shape
    state = optimizer.initial_state(n, p, dtype)
    lr = hyper[:, 0:1]
    lr_scale = None if problem.lr_scale is None else problem.lr_scale[rows].astype(dtype)
    point_id = None if problem.point_id is None else problem.point_id[rows]
    out = empty_fields((n,))
    running = np.ones(n, dtype=bool)
    loss0 = np.zeros(n)
    loss_sum = np.zeros(n)  # Σ_{t<T} L_t/L_0 (terms 0 where L_0 = 0)
    sum_v = np.zeros(n)  # Σ_{t<T} v_t
    sum_inv = np.zeros(n)  # Σ_{t<T} 1/v_t
    last_sum = np.zeros(n)  # Σ v_t over t ∈ [steps − 20, T)
    below = np.zeros(n, dtype=np.int64)  # steps in a row up to t with L <= converge_loss, from converge_from on
    window_max = np.full(n, -np.inf)
    window_min = np.full(n, np.inf)
    k_max = min(th.max_period, steps)
    history = np.empty((k_max + 1, n, p), dtype=dtype)  # history[steps − t] = θ_t for the last steps
    window_start = max(0, steps - th.stuck_window)
    last_start = max(0, steps - SCORE_WINDOW)
    final_v = np.zeros(n)
    converge_from, diverge_from = decision_steps(factors, steps)

    with np.errstate(all="ignore"):
        for t in range(steps + 1):
            act = np.flatnonzero(running)
            if act.size == 0:
                break
            batch = None
            if problem.batch is not None:
                size, seed, per_point, sequential = problem.batch
                points = point_id[act] if per_point else np.zeros(act.size, dtype=np.int64)
                batch = batch_indices(seed, t, points, size, data.shape[1], bool(sequential))
            batch_loss, grad = model.loss_grad(theta[act], consts[act], data, batch)
            # the rules judge the full-data loss; with minibatches a forward pass over the evaluation samples
            loss = batch_loss if batch is None else model.loss_grad(theta[act], consts[act], evaluation)[0]
            loss, batch_loss = loss.astype(np.float64), batch_loss.astype(np.float64)
            if recording is not None:
                _record(recording, model, t, act, theta, consts, data, loss)
            if t == 0:
                loss0[:] = loss
            diverged = ~np.isfinite(loss) | ((loss > th.diverge_factor * loss0[act]) & (t >= diverge_from))
            below[act] = np.where((loss <= th.converge_loss) & (t >= converge_from), below[act] + 1, 0)
            converged = ~diverged & (below[act] >= th.converge_window)
            stop = diverged | converged | (t == steps)
            stopped = act[stop]
            out["outcome"][act[diverged]] = Outcome.DIVERGED
            out["outcome"][act[converged]] = Outcome.CONVERGED
            out["steps"][stopped] = t
            out["final_loss"][stopped] = loss[stop]
            out["batch_loss"][stopped] = batch_loss[stop]
            final_v[stopped] = normalised_loss(loss[stop], loss0[stopped])
            conv = act[converged]
            out["attractor"][conv] = model.attractor(theta[conv])
            running[stopped] = False

            if t >= window_start:
                window_max[act] = np.maximum(window_max[act], loss)
                window_min[act] = np.minimum(window_min[act], loss)
            if t >= steps - k_max:
                history[steps - t, act] = theta[act]
            if t == steps:
                end = act[~(diverged | converged)]
                _classify_end(out, end, theta, history, window_max, window_min, k_max, th)
                break

            go = act[~stop]
            loss_go = loss[~stop]
            v = normalised_loss(loss_go, loss0[go])
            loss_sum[go] += loss_ratio(loss_go, loss0[go])
            sum_v[go] += v
            sum_inv[go] += 1 / np.maximum(v, 1 / SCORE_CLIP)
            if t >= last_start:
                last_sum[go] += v
            lr_t = lr[go] if factors is None else lr[go] * dtype.type(factors[t])
            if lr_scale is not None:
                lr_t = lr_t * lr_scale[go]
            updated, moved = optimizer.step(
                theta[go], grad[~stop], lr_t, hyper[go], {k: v[go] for k, v in state.items()}
            )
            updated = np.where(problem.trainable, flush_subnormal(updated), theta[go])
            theta[go] = model.after_update(updated, consts[go], data)
            for k, v in moved.items():
                state[k][go] = v

    if model.classifier:  # every row's θ is now θ_T: stopped rows stay where they were decided
        with np.errstate(all="ignore"):
            out["accuracy"], out["collapsed"], out["classes_predicted"] = model.evaluate(theta, consts, data)
    decided = out["steps"]
    out["loss_sum"] = loss_sum
    out["score"] = _score(decided, final_v, sum_v, sum_inv, last_sum, steps)
    return out


def _record(recording: Recording, model: Model, t: int, act, theta, consts, data, loss) -> None:
    """The curves of the running rows ``act`` at step t: L_t, θ_t and, at multiples of the stride, the accuracy."""
    recording.loss[act, t] = loss
    if recording.theta is not None:
        recording.theta[act, t] = theta[act]
    if recording.accuracy is not None and model.classifier and t % recording.stride == 0:
        recording.accuracy[act, t // recording.stride] = model.evaluate(theta[act], consts[act], data)[0]


def _classify_end(out, end, theta, history, window_max, window_min, k_max, th: Thresholds) -> None:
    """CYCLING, STUCK or UNRESOLVED for the points ``end`` that spent their whole budget."""
    last = theta[end].astype(np.float64)
    tol = th.cycle_tol * (1 + np.max(np.abs(last), axis=1))
    period = np.zeros(len(end), dtype=np.int32)
    for lag in range(k_max, 0, -1):  # the smallest matching lag wins
        gap = np.max(np.abs(last - history[lag, end].astype(np.float64)), axis=1)
        period[gap <= tol] = lag
    cycling = period >= 2
    stuck = ~cycling & (window_max[end] - window_min[end] <= th.stuck_tol * window_max[end])
    out["outcome"][end] = np.where(cycling, Outcome.CYCLING, np.where(stuck, Outcome.STUCK, Outcome.UNRESOLVED))
    out["period"][end] = np.where(cycling, period, 0)


def _score(decided, final_v, sum_v, sum_inv, last_sum, steps) -> np.ndarray:
    """The trainability score, with a trajectory stopped at T held at v_T for t ∈ [T, steps)."""
    held = steps - decided
    last_start = max(0, steps - SCORE_WINDOW)
    held_last = steps - np.maximum(decided, last_start)
    total = sum_v + held * final_v
    last_mean = (last_sum + held_last * final_v) / max(1, steps - last_start)
    trainable = (steps > 0) & (last_mean < 1)
    inverse = sum_inv + held / np.maximum(final_v, 1 / SCORE_CLIP)
    return np.where(trainable, -total, inverse)


class NumpyBackend:
    """The reference engine (single thread; ``threads`` is ignored). Exact arithmetic only: it defines what
    ``arithmetic = "exact"`` means, so a spec asking for ``"fast"`` is refused (SpecError, ``exact_only``)."""

    name = "numpy"
    parallel = False

    def run(self, spec: MapSpec, problem: Problem, hyper: np.ndarray, factors, threads: int,
            recording: Recording | None = None) -> dict[str, np.ndarray]:
        problem_text = exact_only(spec.arithmetic, "numpy")
        if problem_text:
            raise SpecError(problem_text)
        return train(
            spec.model_def,
            spec.optimizer_def,
            problem,
            hyper,
            factors,
            spec.steps,
            spec.resolved_thresholds,
            spec.dtype,
            recording,
        )


def exact_only(arithmetic: str, backend: str) -> str | None:
    """Why the NumPy reference (asked for as backend ``backend``) cannot compute a map of ``arithmetic``, in one
    line with the fix; None for ``"exact"``."""
    if arithmetic == "exact":
        return None
    return (f"arithmetic = {arithmetic!r} needs the compiled engine, but backend {backend!r} is the NumPy reference, "
            "which is exact by definition; use backend 'cython' (or 'auto'), or arithmetic = 'exact'")
