"""The GPU engine: its source compiles for a GPU (NVRTC or nvcc, no GPU needed), its per-thread code — built for
the host (``backend="gpu-host"``) — agrees bit for bit on every model, optimiser, schedule, minibatch order and
outcome rule with the compiled CPU engine (itself bit for bit the NumPy reference: test_engines, test_network), and,
where CuPy finds a GPU, so does the GPU itself.

Without a GPU only CuPy's launch and transfers (``CupyDevice``) go untested here; ``bench/gpu_check.sh`` runs the
tests marked for a GPU on a machine with one.
"""

import ctypes
import dataclasses
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
from importlib import resources

import numpy as np
import pytest
from helpers import assert_same_fields
from hypothesis import given, settings
from test_engines import SPECS, random_specs

import descentsim as ds
from descentsim import Axis, MapSpec
from descentsim.backends import gpu

NO_GPU = gpu.cupy_unavailable()
needs_gpu = pytest.mark.skipif(NO_GPU is not None, reason=f"no GPU: {NO_GPU}")
needs_compiler = pytest.mark.skipif(gpu.host_compiler() is None, reason="no C++ compiler for the host copy")
ENGINES = [pytest.param("gpu-host", marks=needs_compiler), pytest.param("cupy", marks=needs_gpu)]

NETWORKS = {
    "mlp": MapSpec(model="mlp", x=Axis("lr1", 0.1, 3.0, 7), y=Axis("lr2", 0.1, 3.0, 5), steps=80),
    "mlp-relu-deep": MapSpec(model="mlp", x=Axis("lr", 0.05, 2.0, 7), y=Axis("init_scale", 0.2, 2.0, 3), steps=60,
                             params={"nonlinearity": "relu", "depth": 3}),
    "softmax-adam-minibatch": MapSpec(
        model="softmax-mlp", optimizer="adam", x=Axis("lr", 1e-3, 1.0, 6, "log"), y=Axis("init_scale", 0.3, 2.0, 3),
        steps=50, params={"batch_size": 4}),
    "network-sigmoid-bce-rmsprop": MapSpec(
        model="network", optimizer="rmsprop", x=Axis("lr", 1e-3, 1.0, 6, "log"), y=Axis("init_scale", 0.3, 2.0, 3),
        steps=50, params={"data": "xor", "widths": "4", "activation": "sigmoid", "loss": "sigmoid_bce", "bias": 1,
                          "weight_decay": 1e-3}),
    "network-tanh-mean-field-frozen": MapSpec(
        model="network", x=Axis("lr", 0.05, 3.0, 6), y=Axis("init_scale", 0.3, 2.0, 3), steps=50,
        params={"data": "moons", "widths": "9,5", "activation": "leaky_relu", "parameterization": "mean_field",
                "lr_layers": "0,1,1", "offset_mode": "every_step", "init_offset": 0.01}),
    "quadratic-momentum-cosine-warmup": MapSpec(
        model="quadratic", optimizer="nesterov", x=Axis("lr", 0.1, 4.0, 13), y=Axis("momentum", 0.0, 0.95, 5),
        steps=120, params={"schedule": "cosine", "warmup_steps": 10}),
}


#: Made when a test runs: the formula model needs SymPy (a test extra; the GPU check's machine may lack it).
FORMULA = dict(model="formula", x=Axis("lr", 0.1, 1.5, 9), y=Axis("w0", -2.0, 2.0, 5), steps=100,
               params={"loss": "w**2 * (1 + 0.3*cos(2*pi*w/0.2)) + log(1 + exp(-w)) + tanh(w)*sin(w)",
                       "parameters": "w"})


def run_on(spec: MapSpec, backend: str, **kwargs) -> ds.ConvergenceMap:
    return ds.run_map(spec, backend=backend, **kwargs)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(SPECS) + sorted(NETWORKS) + ["formula"])
def test_gpu_code_matches_reference(name, engine, dtype, monkeypatch):
    """The one-thread kernel (every network in it, as those whose weights do not fit the cooperative layout's
    shared memory; the cooperative kernels have their own tests below)."""
    if name == "formula":
        pytest.importorskip("sympy")
    monkeypatch.setattr(gpu, "COOP_MIN_PARAMETERS", False)
    spec = (MapSpec(**FORMULA) if name == "formula" else {**SPECS, **NETWORKS}[name]).replace(dtype=dtype)
    assert_same_fields(run_on(spec, "cython"), run_on(spec, engine))


@needs_compiler
@settings(max_examples=12, deadline=None)
@given(random_specs())
def test_gpu_host_matches_compiled_on_random_specs(spec):
    assert_same_fields(run_on(spec, "cython", threads=1), run_on(spec, "gpu-host"))


@pytest.mark.parametrize("engine", ENGINES)
def test_gpu_code_records_the_same_curves(engine):
    spec = NETWORKS["softmax-adam-minibatch"]
    iy, ix = np.array([0, 1, 2, 2]), np.array([0, 3, 5, 1])
    expected = ds.trajectories(spec, iy, ix, backend="cython", stride=7)
    got = ds.trajectories(spec, iy, ix, backend=engine, stride=7)
    for name in ("loss", "theta", "accuracy"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


@needs_gpu
def test_the_gpu_is_named_in_the_provenance():
    assert run_on(SPECS["quadratic"], "cupy").provenance["device"].startswith("GPU 0: ")


@needs_compiler
def test_kernels_specialised_for_a_group_agree_with_the_reference():
    """The GPU compiles each group's kernel with its kernel ids and sizes as constants (DS_FIXED_*): the host copy
    built the same way gives the reference's bits."""
    engine = gpu.GpuBackend(gpu.HostDevice(specialise=True))
    for spec in (NETWORKS["quadratic-momentum-cosine-warmup"], SPECS["relu-wbac"].replace(dtype="float32")):
        iy, ix = np.divmod(np.arange(spec.shape[0] * spec.shape[1]), spec.shape[1])
        got = ds.runner.compute_points(spec, engine, iy, ix, 1)
        expected = ds.runner.compute_points(spec, ds.backends.get_backend("numpy"), iy, ix, 1)
        for name in got:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.parametrize("engine", ENGINES)
def test_results_do_not_depend_on_the_chunking(engine, monkeypatch):
    """Chunks of 7 points, alternating the two streams, give the bits of one chunk."""
    spec = SPECS["relu-w"]
    whole = run_on(spec, engine)
    monkeypatch.setattr(gpu, "CHUNK_POINTS", 7)
    assert_same_fields(whole, run_on(spec, engine, tile_shape=(5, 29)))


# ---- the cooperative layout (ext/coop.h) ------------------------------------------------------------------------

#: Networks with one hidden layer and the mse loss, each feature of the cooperative kernel: Sohl-Dickstein's map
#: (272 parameters, 16 threads a network), its every_step drift, biases and the standard parameterisation, each
#: activation, adam with minibatches, momentum, a frozen input or output layer (lr_layers), a 2-class mse classifier's
#: accuracy, and converged, diverged, stuck and unresolved points.
COOP = {
    "sd": MapSpec(model="mlp", x=Axis("lr1", 0.1, 3.0, 3), y=Axis("lr2", 0.1, 3.0, 3), steps=30),
    "sd-drift": MapSpec(model="mlp", x=Axis("lr1", 0.1, 3.0, 3), y=Axis("w1_offset", -0.02, 0.02, 2), steps=20,
                        params={"w1_offset_mode": "every_step"}),
    "xor-tanh-bias": MapSpec(model="network", x=Axis("lr", 0.05, 20.0, 8, "log"), y=Axis("init_scale", 0.3, 3.0, 4),
                             steps=300, params={"data": "xor", "widths": "5", "activation": "tanh", "loss": "mse",
                                                "bias": 1}),
    "xor-relu-stuck": MapSpec(model="network", x=Axis("lr", 0.05, 20.0, 6, "log"), y=Axis("init_scale", 0.3, 3.0, 3),
                              steps=300, params={"data": "xor", "widths": "5", "activation": "relu", "loss": "mse",
                                                 "bias": 1}),
    "moons-adam-minibatch": MapSpec(
        model="network", optimizer="adam", x=Axis("lr", 1e-3, 1.0, 4, "log"), y=Axis("init_scale", 0.3, 2.0, 2),
        steps=30, params={"data": "moons", "widths": "5", "activation": "relu", "bias": 1, "loss": "mse",
                          "batch_size": 8}),
    "xor-leaky-frozen-in-drift": MapSpec(
        model="network", x=Axis("lr", 0.05, 3.0, 5), y=Axis("init_scale", 0.3, 2.0, 3), steps=60,
        params={"data": "xor", "widths": "6", "activation": "leaky_relu", "loss": "mse", "leaky_slope": 0.1,
                "parameterization": "mean_field", "lr_layers": "0,1", "offset_mode": "every_step",
                "init_offset": 0.01}),
    "xor-sigmoid-frozen-out-momentum": MapSpec(
        model="network", optimizer="momentum", x=Axis("lr", 0.05, 3.0, 5), y=Axis("init_scale", 0.3, 2.0, 3),
        steps=60, params={"data": "xor", "widths": "9", "activation": "sigmoid", "loss": "mse", "bias": 1,
                          "lr_layers": "1,0"}),
}


@pytest.fixture
def cooperative(monkeypatch):
    """Every dense network in the cooperative layout (however few its parameters); yields the groups' builds as
    launched."""
    builds = []

    def spy(launch):
        def launched(self, dtype, build, *args):
            builds.append(build)
            return launch(self, dtype, build, *args)
        return launched

    monkeypatch.setattr(gpu, "COOP_MIN_PARAMETERS", 0)
    for device in (gpu.HostDevice, gpu.CupyDevice):
        monkeypatch.setattr(device, "launch", spy(device.launch))
    return builds


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(COOP))
def test_cooperative_kernel_matches_reference(name, engine, dtype, cooperative):
    """A group of threads a network, each holding its units' share of θ: the reference's bits in every field."""
    spec = COOP[name].replace(dtype=dtype)
    assert_same_fields(run_on(spec, "cython"), run_on(spec, engine))
    assert cooperative and all(build.coop for build in cooperative)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["sd", "xor-tanh-bias", "moons-adam-minibatch", "xor-sigmoid-frozen-out-momentum"])
def test_cooperative_kernel_with_several_units_a_thread(name, engine, cooperative, monkeypatch):
    """Groups smaller than the hidden layer (as networks wider than 32 units get): threads of several units, some
    of them empty (width 5 or 9 on 2 threads), give the same bits."""
    monkeypatch.setattr(gpu, "COOP_MAX_THREADS", 2)
    spec = COOP[name]
    assert_same_fields(run_on(spec, "cython"), run_on(spec, engine))
    assert {dict(build.coop)["THREADS"] for build in cooperative} == {2}


def test_cooperative_maps_cover_the_outcomes():
    """The maps above decide points by every rule but cycling, so the group's reductions decide them all."""
    seen = set()
    for spec in COOP.values():
        seen.update(np.unique(run_on(spec, "cython").outcome).tolist())
    assert {ds.Outcome.CONVERGED, ds.Outcome.DIVERGED, ds.Outcome.STUCK, ds.Outcome.UNRESOLVED} <= seen


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["moons-adam-minibatch", "sd", "digits-adam-minibatch",
                                  "clusters-identity-frozen-output-mean-field"])
def test_cooperative_kernel_records_the_same_curves(name, engine, cooperative):
    """L_t, θ_t (written by each parameter's owner) and the accuracy at every stride, on the shallow path (COOP) and
    the general one (COOP_DEEP)."""
    if name in COOP_DEEP:
        pytest.importorskip("sklearn")
    spec = {**COOP, **COOP_DEEP}[name]
    iy = np.array([0, 1, 1, 0])
    ix = np.array([0, 1, 0, 1]) if name in COOP_DEEP else np.array([0, 2, 1, 2])  # COOP_DEEP's grids are 2 × 2
    expected = ds.trajectories(spec, iy, ix, backend="cython", stride=3)
    got = ds.trajectories(spec, iy, ix, backend=engine, stride=3)
    for field in ("loss", "theta", "accuracy"):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)
    assert cooperative and all(build.coop for build in cooperative)


def test_the_cooperative_layout_takes_networks_one_thread_cannot_hold():
    """Sohl-Dickstein's map (272 parameters): 16 threads a network, each holding 17 values of θ (the shallow path, no
    mirror); deep networks and other losses too (the general path: each layer's units dealt out, a mirror of the
    hidden layers' weights in shared memory); small networks, networks deeper than COOP_MAX_LAYERS and networks whose
    mirror does not fit the shared memory keep the one-thread kernel."""
    from descentsim.models import network

    sd = network.dense_consts(1, [16, 16, 1], "tanh_sqrt2", "mse", 0, "mean_field", False)
    assert gpu.coop_shape("network", sd, 272) == (
        (("THREADS", 16), ("LAYERS", 2), ("N0", 16), ("N1", 16), ("N2", 1), ("BIAS", 0),
         ("ACTIVATION", network.ACTIVATIONS.index("tanh_sqrt2")), ("MEAN_FIELD", 1), ("LOSS", 0)), 17)
    assert gpu.coop_mirror_values(gpu.coop_shape("network", sd, 272)[0]) == 0
    wide = network.dense_consts(1, [10, 40, 1], "relu", "mse", 1, "standard", True)
    assert gpu.coop_shape("network", wide, 10 * 40 + 40 + 40 + 1)[0][:5] == (
        ("THREADS", 32), ("LAYERS", 2), ("N0", 10), ("N1", 40), ("N2", 1))
    assert gpu.coop_shape("network", wide, 10 * 40 + 40 + 40 + 1)[1] == 2 * (10 + 2) + 1
    assert gpu.coop_shape("network", sd, 32) is None  # one thread holds it in registers
    deep = network.dense_consts(1, [16, 16, 16, 1], "tanh_sqrt2", "mse", 0, "mean_field", False)
    assert gpu.coop_shape("network", deep, 528) == (
        (("THREADS", 16), ("LAYERS", 3), ("N0", 16), ("N1", 16), ("N2", 16), ("N3", 1), ("BIAS", 0),
         ("ACTIVATION", network.ACTIVATIONS.index("tanh_sqrt2")), ("MEAN_FIELD", 1), ("LOSS", 0)), 16 + 16 + 16)
    softmax = network.dense_consts(1, [16, 16, 3], "tanh", "softmax_ce", 0, "standard", True)
    assert gpu.coop_shape("network", softmax, 304)[1] == 16 + 16  # W1's column, and one output's (3 threads' of 16)
    # the digits network: 64 → 25 → 12 → 10, 2067 parameters, 32 threads of at most 65 + 26 + 13; W_1, W_2 mirrored
    digits = network.dense_consts(1, [64, 25, 12, 10], "relu", "softmax_ce", 1, "standard", True)
    shape, share = gpu.coop_shape("network", digits, 2067)
    assert (dict(shape)["THREADS"], share, gpu.coop_mirror_values(shape)) == (32, 104, 25 * 12 + 12 * 10)
    build = gpu.KernelBuild("exact", 1, 1, (), shape)
    assert build.block(8, gpu.HOST_SHARED_BYTES) == (128, 4 * 420 * 8)  # 4 groups a block, each its mirror
    assert build.block(8, 420 * 8) == (32, 420 * 8)  # fewer groups where their mirrors do not fit
    assert gpu.coop_shape("network", digits, 2067, 8, 420 * 8 - 1) is None  # not even one group's
    assert gpu.coop_shape("network", digits, 2067, 4, 420 * 8 - 1) is not None  # float32's half the size
    linear = network.dense_consts(1, [64, 10], "relu", "softmax_ce", 1, "standard", True)
    assert gpu.coop_shape("network", linear, 650)[1] == 65  # one layer: no mirror
    too_deep = network.dense_consts(1, [4] * (gpu.COOP_MAX_LAYERS + 1) + [1], "tanh", "mse", 1, "standard", False)
    assert gpu.coop_shape("network", too_deep, 20 * (gpu.COOP_MAX_LAYERS + 1) + 5) is None


#: Networks of coop.h's general path (every network but one hidden layer, the mse loss and one output), each feature:
#: the digits network (softmax_ce, adam, minibatches; 64 → 25 → 12 → 10), deep mse regression (mean-field and
#: standard, bias on and off), sigmoid_bce and softmax_ce classifiers, every activation, a frozen lowest layer and a
#: frozen output layer, the W1 drift, momentum, nesterov and rmsprop, one layer (no hidden layer, no mirror), and
#: widths no multiple of the group's threads (empty units).
COOP_DEEP = {
    "digits-adam-minibatch": MapSpec(
        model="network", optimizer="adam", x=Axis("lr", 1e-3, 1.0, 2, "log"), y=Axis("init_scale", 0.3, 3.0, 2, "log"),
        steps=6, params={"data": "digits", "standardize": 1, "train_samples": 150, "widths": "25,12",
                         "activation": "relu", "loss": "softmax_ce", "init": "he", "batch_size": 8,
                         "eval_samples": 40}),
    "teacher-deep-tanh-mean-field": MapSpec(
        model="network", x=Axis("lr", 0.05, 4.0, 4), y=Axis("init_scale", 0.3, 2.0, 2), steps=40,
        params={"data": "teacher", "features": 3, "samples": 24, "widths": "6,5,4", "activation": "tanh",
                "loss": "mse", "bias": 0, "parameterization": "mean_field"}),
    "teacher-relu-sqrt2-drift-momentum": MapSpec(
        model="network", optimizer="momentum", x=Axis("lr", 0.01, 1.0, 4, "log"), y=Axis("init_scale", 0.3, 2.0, 2),
        steps=40, params={"data": "linear", "features": 2, "samples": 24, "widths": "7,3", "activation": "relu_sqrt2",
                          "loss": "mse", "bias": 1, "offset_mode": "every_step", "init_offset": 0.01}),
    "xor-sigmoid-bce-rmsprop": MapSpec(
        model="network", optimizer="rmsprop", x=Axis("lr", 1e-3, 1.0, 4, "log"), y=Axis("init_scale", 0.3, 2.0, 2),
        steps=40, params={"data": "xor", "samples": 24, "widths": "5,3", "activation": "sigmoid",
                          "loss": "sigmoid_bce", "bias": 1, "weight_decay": 1e-3}),
    "clusters-leaky-frozen-lowest-nesterov": MapSpec(
        model="network", optimizer="nesterov", x=Axis("lr", 0.05, 3.0, 4), y=Axis("init_scale", 0.3, 2.0, 2),
        steps=40, params={"data": "clusters", "classes": 3, "features": 4, "per_class": 8, "widths": "6,5",
                          "activation": "leaky_relu", "leaky_slope": 0.1, "loss": "softmax_ce", "lr_layers": "0,1,1"}),
    "clusters-identity-frozen-output-mean-field": MapSpec(
        model="network", x=Axis("lr", 0.05, 3.0, 4), y=Axis("init_scale", 0.3, 2.0, 2), steps=40,
        params={"data": "clusters", "classes": 3, "features": 4, "per_class": 8, "widths": "9", "bias": 0,
                "activation": "identity", "loss": "softmax_ce", "parameterization": "mean_field", "lr_layers": "1,0"}),
    "moons-tanh-sqrt2-bce-adam-minibatch": MapSpec(
        model="network", optimizer="adam", x=Axis("lr", 1e-3, 1.0, 4, "log"), y=Axis("init_scale", 0.3, 2.0, 2),
        steps=30, params={"data": "moons", "samples": 24, "widths": "9,6", "activation": "tanh_sqrt2",
                          "loss": "sigmoid_bce", "batch_size": 5, "parameterization": "mean_field"}),
    "clusters-linear-softmax": MapSpec(
        model="network", x=Axis("lr", 0.05, 5.0, 4, "log"), y=Axis("init_scale", 0.3, 2.0, 2), steps=40,
        params={"data": "clusters", "classes": 4, "features": 8, "per_class": 6, "widths": ""}),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(COOP_DEEP))
def test_cooperative_kernel_matches_reference_on_any_dense_network(name, engine, dtype, cooperative):
    """coop.h's general path (units of every layer dealt out to the group's threads, the errors' rows from the mirror
    of the weights): the reference's bits in every field."""
    pytest.importorskip("sklearn")
    spec = COOP_DEEP[name].replace(dtype=dtype)
    assert_same_fields(run_on(spec, "cython"), run_on(spec, engine))
    assert cooperative and all(build.coop and not gpu.coop_shallow(build.coop) for build in cooperative)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name, dtype", [("digits-adam-minibatch", "float32"),
                                         ("teacher-deep-tanh-mean-field", "float64"),
                                         ("clusters-leaky-frozen-lowest-nesterov", "float32"),
                                         ("xor-sigmoid-bce-rmsprop", "float64")])
def test_general_cooperative_kernel_with_several_units_a_thread(name, dtype, engine, cooperative, monkeypatch):
    """Groups of 4 threads: several units of each layer a thread, empty ones where a width is no multiple of 4
    (25, 12, 10; 6, 5, 4; 5, 3, 1)."""
    pytest.importorskip("sklearn")
    monkeypatch.setattr(gpu, "COOP_MAX_THREADS", 4)
    spec = COOP_DEEP[name].replace(dtype=dtype)
    assert_same_fields(run_on(spec, "cython"), run_on(spec, engine))
    assert {dict(build.coop)["THREADS"] for build in cooperative} == {4}


@pytest.mark.parametrize("engine", ENGINES)
def test_fast_arithmetic_reaches_the_cooperative_kernels(engine, cooperative):
    """arithmetic = "fast" builds the general path with fast arithmetic too (the compile test: fma in its PTX; here
    the reciprocals of mean-field's output scale and the count, which the host copy has as well): a map of no chaotic
    band keeps exact's outcomes and, to rounding, its losses, which are not exact's bits."""
    pytest.importorskip("sklearn")
    spec = COOP_DEEP["teacher-deep-tanh-mean-field"]
    fast = run_on(spec.replace(arithmetic="fast"), engine)
    assert cooperative and {build.arithmetic for build in cooperative} == {"fast"}
    exact = run_on(spec, "cython")
    np.testing.assert_array_equal(fast.fields["outcome"], exact.fields["outcome"])
    np.testing.assert_allclose(fast.fields["final_loss"], exact.fields["final_loss"], rtol=1e-9)
    assert not np.array_equal(fast.fields["final_loss"], exact.fields["final_loss"])


@needs_compiler
def test_a_network_whose_mirror_does_not_fit_takes_the_one_thread_kernel(monkeypatch):
    """Where one group's mirror of the weights exceeds the shared memory a block may take, the group takes the
    one-thread kernel (the reference's bits there too)."""
    pytest.importorskip("sklearn")
    builds = []
    launch = gpu.HostDevice.launch
    monkeypatch.setattr(gpu.HostDevice, "launch", lambda self, dtype, build, *rest: (
        builds.append(build), launch(self, dtype, build, *rest))[1])
    monkeypatch.setattr(gpu, "HOST_SHARED_BYTES", 25 * 12 * 8)  # W_1's mirror alone; not W_2's too
    spec = COOP_DEEP["digits-adam-minibatch"].replace(steps=3)
    assert_same_fields(run_on(spec, "cython"), run_on(spec, "gpu-host"))
    assert builds and not any(build.coop for build in builds)


@pytest.mark.parametrize("engine", ENGINES)
def test_fast_arithmetic_runs_its_own_build(engine, monkeypatch):
    """arithmetic = "fast" reaches the kernels' build (--fmad=true, whose PTX holds fused multiply-adds: the compile
    test; the host copy -ffp-contract=fast): the outcomes of a map with no chaotic band agree with exact's, and the
    map says how it was made."""
    builds = []
    for device in (gpu.HostDevice, gpu.CupyDevice):
        launch = device.launch
        monkeypatch.setattr(device, "launch", lambda self, dtype, build, *rest, launch=launch: (
            builds.append(build.arithmetic), launch(self, dtype, build, *rest))[1])
    spec = SPECS["quadratic"]
    fast = run_on(spec.replace(arithmetic="fast"), engine)
    assert builds and set(builds) == {"fast"}
    assert fast.provenance["arithmetic"] == "fast"
    np.testing.assert_array_equal(fast.outcome, run_on(spec, "cython").outcome)


@needs_compiler
def test_the_engine_is_recorded_in_the_provenance():
    provenance = run_on(SPECS["quadratic"], "gpu-host").provenance
    assert (provenance["backend"], provenance["device"]) == ("gpu-host", gpu.HostDevice.description)


def test_cupy_without_a_gpu_is_refused_in_one_line():
    if NO_GPU is None:
        pytest.skip("this machine has a GPU")
    with pytest.raises(ds.SpecError, match=r"^the cupy backend is not available: .+") as info:
        run_on(SPECS["quadratic"], "cupy")
    assert "\n" not in str(info.value)


def test_auto_takes_the_gpu_only_where_cupy_finds_one():
    expected = "cython" if NO_GPU is not None else "cupy"
    assert run_on(SPECS["quadratic"], "auto").provenance["backend"] == expected


@pytest.mark.parametrize("variable, value, rank", [
    ("OMPI_COMM_WORLD_LOCAL_RANK", "3", 3), ("MPI_LOCALRANKID", "1", 1), ("SLURM_LOCALID", "2", 2), (None, None, 0),
])
def test_each_rank_takes_the_gpu_of_its_local_rank(variable, value, rank, monkeypatch):
    for name in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "PALS_LOCAL_RANKID",
                 "SLURM_LOCALID"):
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, value)
    assert gpu.local_rank() == rank


def test_structs_match_the_headers():
    """ctypes lays the structs out as the C compiler does; their fields are problem.h's, in its order."""
    header = resources.files("descentsim").joinpath("ext", "problem.h").read_text()
    header = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    for struct, name in ((gpu.ProblemStruct, "ds_problem"), (gpu.RulesStruct, "ds_rules"),
                         (gpu.OutputsStruct, "ds_outputs")):
        body = header[:header.index(f"}} {name};")]
        body = body[body.rindex("typedef struct {") + len("typedef struct {"):]
        assert re.findall(r"(\w+)\s*[,;]", body) == [field for field, _ in struct._fields_], name


def test_kernel_source_inlines_every_header():
    source = gpu.kernel_source()
    assert '#include "' not in source
    assert source.count('#line 1 "trajectory.h"') == 2  # once per precision
    assert '#line 1 "models/network.h"' in source


# ---- compiling for a GPU without one -----------------------------------------------------------------------


def nvrtc_library() -> ctypes.CDLL | None:
    """NVRTC from the CUDA wheels (nvidia-cuda-nvrtc) or the system, or None."""
    candidates = []
    try:
        import nvidia

        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "**", "libnvrtc.so*"), recursive=True))
    except ImportError:
        pass
    found = ctypes.util.find_library("nvrtc")
    candidates += [found] if found else []
    for candidate in candidates:
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


def nvrtc_ptx(library: ctypes.CDLL, source: str, options: list[str]) -> tuple[int, str, str]:
    """(result code, log, PTX) of NVRTC compiling ``source``."""
    program = ctypes.c_void_p()
    assert library.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"gpu_kernels.cu", 0, None, None) == 0
    try:
        encoded = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        code = library.nvrtcCompileProgram(program, len(options), encoded)
        size = ctypes.c_size_t()
        library.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        library.nvrtcGetProgramLog(program, log)
        ptx = b""
        if code == 0:
            library.nvrtcGetPTXSize(program, ctypes.byref(size))
            buffer = ctypes.create_string_buffer(size.value)
            library.nvrtcGetPTX(program, buffer)
            ptx = buffer.value
        return code, log.value.decode(errors="replace"), ptx.decode(errors="replace")
    finally:
        library.nvrtcDestroyProgram(ctypes.byref(program))


NVRTC = nvrtc_library()
NVCC = shutil.which("nvcc")


#: Groups' builds as the GPU engine makes them: the SD map's network (272 parameters, gd; its sizes read at run time),
#: and the quadratic's with momentum (its sizes compiled in).
BUILDS = {"sd": gpu.KernelBuild("exact", 3 * 272 + 13 + 1, 4 * 272 + 3 * 8 * 16 + 9 * 272, ()),
          "quadratic": gpu.KernelBuild("exact", 3 + 1 + 2 + 1, 9, (("MODEL", 0), ("OPTIMIZER", 1), ("P", 1),
                                                                   ("CONSTS", 1), ("HYPER", 2), ("K_MAX", 8))),
          # the SD map in the cooperative layout: 16 threads a network, 17 parameters each (adam: its state too)
          "sd-coop": gpu.KernelBuild("exact", 3 * 17 + 17 + 5 + 2 * 17 + 2, 9 * 17,
                                     (("MODEL", 7), ("OPTIMIZER", 3), ("P", 17), ("CONSTS", 17), ("HYPER", 5),
                                      ("K_MAX", 8)),
                                     (("THREADS", 16), ("LAYERS", 2), ("N0", 16), ("N1", 16), ("N2", 1), ("BIAS", 0),
                                      ("ACTIVATION", 5), ("MEAN_FIELD", 1), ("LOSS", 0))),
          # the digits network (examples/digits_collapse.toml) in the general path: 32 threads a network, at most
          # 104 parameters each (adam), a mirror of W_1 and W_2 in shared memory
          "digits-coop": gpu.KernelBuild("exact", 3 * 104 + 19 + 5 + 2 * 104 + 2, 9 * 104,
                                         (("MODEL", 7), ("OPTIMIZER", 3), ("P", 104), ("CONSTS", 19), ("HYPER", 5),
                                          ("K_MAX", 8)),
                                         (("THREADS", 32), ("LAYERS", 3), ("N0", 64), ("N1", 25), ("N2", 12),
                                          ("N3", 10), ("BIAS", 1), ("ACTIVATION", 1), ("MEAN_FIELD", 0),
                                          ("LOSS", 1)))}


def compiled_ptx(compiler: str, arithmetic: str, tmp_path, build: gpu.KernelBuild = BUILDS["sd"]) -> str:
    """The PTX of the kernels compiled for a group with the GPU engine's own NVRTC options (compute capability 9.0);
    nvcc takes the same options."""
    source = gpu.kernel_source()
    options = gpu.nvrtc_options(dataclasses.replace(build, arithmetic=arithmetic), "compute_90")
    if compiler == "nvrtc":
        code, log, ptx = nvrtc_ptx(NVRTC, source, options)
        assert code == 0, log
        assert "warning" not in log, log
    else:
        path = tmp_path / "gpu_kernels.cu"
        path.write_text(source)
        done = subprocess.run([NVCC, "-ptx", *options, str(path), "-o", str(tmp_path / "k.ptx")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr, done.stderr
        ptx = (tmp_path / "k.ptx").read_text()
    assert ".ftz" not in ptx  # subnormals kept, as on the CPU and in the reference (CuPy's own compile flushes them)
    return ptx


COMPILERS = [pytest.param("nvrtc", marks=pytest.mark.skipif(NVRTC is None, reason="no NVRTC (nvidia-cuda-nvrtc)")),
             pytest.param("nvcc", marks=pytest.mark.skipif(NVCC is None, reason="no nvcc"))]


@pytest.mark.parametrize("compiler", COMPILERS)
def test_kernels_compile_for_a_gpu_and_exact_mode_has_no_fused_multiply_add(compiler, tmp_path):
    ptx = compiled_ptx(compiler, "exact", tmp_path)
    for kernel in ("ds_train_f32", "ds_train_f64"):
        assert f".entry {kernel}(" in ptx
    assert "fma.rn" not in ptx  # every product rounds before the sum, as on the CPU and in the reference
    assert "fma.rn" in compiled_ptx(compiler, "fast", tmp_path)
    assert "fma.rn" not in compiled_ptx(compiler, "exact", tmp_path, BUILDS["quadratic"])


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("build", ["sd-coop", "digits-coop"])
def test_the_cooperative_kernels_compile_for_a_gpu_and_exact_mode_has_no_fused_multiply_add(compiler, build,
                                                                                          tmp_path):
    """The group kernels of the SD map (the shallow path) and of the digits network (the general path, its mirror in
    dynamic shared memory, synced by __syncwarp): entry points, warp shuffles within the group, no fma in exact
    mode."""
    ptx = compiled_ptx(compiler, "exact", tmp_path, BUILDS[build])
    for kernel in ("ds_coop_train_f32", "ds_coop_train_f64"):
        assert f".entry {kernel}(" in ptx
    assert ".entry ds_train_f64(" not in ptx  # a build holds one layout's kernels
    assert "shfl.sync" in ptx
    assert "fma.rn" not in ptx
    if build == "digits-coop":
        assert "ds_coop_shared" in ptx and "bar.warp.sync" in ptx
    assert "fma.rn" in compiled_ptx(compiler, "fast", tmp_path, BUILDS[build])
