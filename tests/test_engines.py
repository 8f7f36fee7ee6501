"""The compiled engine against the NumPy reference, which defines the meaning.

Both sum in the same order and the build disables FP contraction, so they agree bit for bit,
in both precisions, even where the dynamics are chaotic.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome

SPECS = {
    "quadratic": MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 23), y=Axis("a", 0.5, 2.0, 7), steps=300),
    "double-well": MapSpec(model="double-well", x=Axis("lr", 0.05, 1.6, 31), y=Axis("w0", -2.1, 2.1, 13), steps=400),
    "uv": MapSpec(
        model="uv", x=Axis("lr", 0.1, 3.0, 17), y=Axis("init_scale", 0.5, 1.5, 5), steps=300, params={"m": 32}
    ),
    "uv-width-axis": MapSpec(model="uv", x=Axis("lr", 0.2, 3.0, 9), y=Axis("m", 4, 64, 5, scale="log"), steps=200),
    "relu-w": MapSpec(model="relu-neuron", x=Axis("lr", 1e-2, 10.0, 29, "log"), y=Axis("w0", -3.1, 3.1, 19), steps=500),
    "relu-wbac": MapSpec(
        model="relu-neuron",
        x=Axis("w0", -3.1, 3.1, 17),
        y=Axis("b0", -3.1, 3.1, 15),
        steps=400,
        params={"trainable": "wbac", "lr": 0.3},
    ),
    "relu-samples-axis": MapSpec(
        model="relu-neuron", x=Axis("lr", 0.05, 5.0, 11, "log"), y=Axis("samples", 2, 40, 4), steps=200
    ),
}


@pytest.mark.parametrize("name", SPECS)
def test_cython_matches_reference(name, dtype):
    spec = SPECS[name].replace(dtype=dtype)
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    assert (reference.outcome != Outcome.NOT_COMPUTED).all()


def test_maps_cover_every_outcome():
    """The test grids above exercise each outcome class, so agreement covers every rule."""
    seen = set()
    for spec in SPECS.values():
        seen.update(np.unique(ds.run_map(spec).outcome).tolist())
    assert seen == {o.value for o in Outcome if o is not Outcome.NOT_COMPUTED}


def test_backend_auto_is_compiled():
    spec = SPECS["quadratic"]
    assert ds.run_map(spec).provenance["backend"] == "cython"


def test_unknown_backend_is_refused():
    with pytest.raises(ds.SpecError, match="valid backends"):
        ds.run_map(SPECS["quadratic"], backend="jax")


def test_kernel_constants_match_the_definition():
    from descentsim import _kernels, _kernels_fast, _kernels_fast_wide
    from descentsim.outcome import SCORE_CLIP, SCORE_WINDOW

    assert (_kernels.SCORE_CLIP, _kernels.SCORE_WINDOW) == (SCORE_CLIP, SCORE_WINDOW)
    assert _kernels.LANES == {"float32": 8, "float64": 4}  # 32-byte vectors
    assert _kernels_fast.LANES == {"float32": 8, "float64": 4}
    assert _kernels_fast_wide.LANES == {"float32": 16, "float64": 8}  # 64-byte vectors (meson.build's DS_VECTOR_BYTES)


SWEEPS = {
    "quadratic": [("lr", 0.01, 3.0), ("a", 0.0, 3.0), ("w0", -5.0, 5.0)],
    "double-well": [("lr", 0.01, 2.0), ("w0", -2.5, 2.5)],
    "uv": [("lr", 0.01, 4.0), ("init_scale", 0.1, 2.0), ("target", -2.0, 2.0), ("seed", 0, 5)],
    "relu-neuron": [("lr", 0.01, 8.0), ("w0", -3.0, 3.0), ("b0", -2.0, 2.0), ("a0", -2.0, 2.0), ("samples", 1, 20)],
}


@st.composite
def random_specs(draw):
    model = draw(st.sampled_from(sorted(SWEEPS)))
    (xname, x0, x1), (yname, y0, y1) = draw(st.permutations(SWEEPS[model]))[:2]
    optimizer = draw(st.sampled_from(["gd", "momentum", "nesterov", "adam"]))
    params = {}
    if optimizer in ("momentum", "nesterov"):
        params["momentum"] = draw(st.floats(0.0, 0.99))
    if optimizer == "adam":
        params.update(beta1=draw(st.floats(0.0, 0.99)), beta2=draw(st.floats(0.5, 0.9999)))
    params["schedule"] = draw(st.sampled_from(["constant", "step", "exponential", "cosine"]))
    params["warmup_steps"] = draw(st.integers(0, 20))
    if model == "uv":
        params["m"] = draw(st.integers(1, 12))
    if model == "relu-neuron":
        params["trainable"] = draw(st.sampled_from(["w", "wb", "wbac"]))
        params["batch_size"] = draw(st.sampled_from([0, 0, 1, 5]))
        params["batch_per_point"] = draw(st.integers(0, 1))
        if not params["batch_per_point"]:
            params["batch_order"] = draw(st.sampled_from(["random", "sequential"]))
    return MapSpec(
        model=model,
        x=Axis(xname, x0, x1, draw(st.integers(1, 13))),
        y=Axis(yname, y0, y1, draw(st.integers(1, 5))),
        steps=draw(st.integers(1, 150)),
        optimizer=optimizer,
        params=params,
        dtype=draw(st.sampled_from(["float32", "float64"])),
        thresholds={"max_period": draw(st.integers(2, 8)), "stuck_window": draw(st.integers(1, 60)),
                    "converge_window": draw(st.integers(1, 40))},
    )


@settings(max_examples=40, deadline=None)
@given(random_specs(), st.integers(1, 3))
def test_cython_matches_reference_on_random_specs(spec, threads):
    reference, compiled = run_both(spec, threads=threads)
    assert_same_fields(reference, compiled)


def test_a_model_without_a_kernel_is_refused_in_one_line():
    """Every model has its kernel today; one added to descentsim.models before its kernel still gets the line."""
    from types import SimpleNamespace

    from descentsim.backends import get_backend, no_kernel

    pending = SimpleNamespace(name="pending", kernel="pending")
    assert no_kernel(pending) == "the pending model runs in the NumPy reference only until its kernel lands"
    assert all(no_kernel(model) is None for model in ds.MODELS.values())
    with pytest.raises(ds.SpecError, match="until its kernel lands$"):
        get_backend("cython", pending)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_threads_work_space_starts_on_a_cache_line(dtype):
    from descentsim.backends.compiled import WORK_ALIGNMENT, aligned_rows

    for rows, size in ((1, 1), (2, 37), (3, 1000), (5, 16)):
        work = aligned_rows(rows, size, np.dtype(dtype))
        assert work.shape[0] == rows and work.shape[1] >= size and work.flags.c_contiguous
        assert all(work[r].ctypes.data % WORK_ALIGNMENT == 0 for r in range(rows))
