"""The network model (issue 12): gradients, θ₀'s layout and draws, the mlp and softmax-mlp presets' frozen bits in
both engines, the compiled kernel bit for bit with the reference, and one-line refusals."""

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_presets_frozen import FROZEN, PRESET_SPECS

from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import _kernels
from descentsim.errors import SpecError
from descentsim.models.mlp import mlp_problem_arrays
from descentsim.models import network
from descentsim.models.network import ACTIVATIONS, LOSSES
from descentsim.models.softmax_mlp import softmax_mlp_arrays
from descentsim.runner import run_points

#: A small data set each loss fits (noisy inputs, so that no pre-activation sits on a ReLU's kink).
LOSS_DATA = {
    "mse": {"data": "linear", "samples": 5, "features": 2, "noise": 0.1},
    "softmax_ce": {"data": "clusters", "classes": 3, "features": 2, "per_class": 2},
    "sigmoid_bce": {"data": "xor", "samples": 6, "noise": 0.1},
}


def network_spec(**params) -> ds.MapSpec:
    return ds.MapSpec(model="network", x=ds.Axis("lr", 0.01, 0.1, 2), steps=5, params=params)


def point(**params) -> tuple[ds.MapSpec, ds.models.Problem]:
    spec = network_spec(**params)
    return spec, ds.problem(spec, 0, 0)


# ------------------------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("bias", [0, 1])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_matches_central_differences(activation, loss, bias):
    for parameterization in ("standard", "mean_field"):
        spec, made = point(widths="3,2", activation=activation, loss=loss, bias=bias, init="normal", seed=4,
                           leaky_slope=0.3, parameterization=parameterization, **LOSS_DATA[loss])
        model = spec.model_def
        theta = made.theta0
        p = theta.shape[1]
        h = 1e-6
        rows = np.concatenate([theta + h * np.eye(p), theta - h * np.eye(p)])
        losses, _ = model.loss_grad(rows, np.repeat(made.consts, 2 * p, axis=0), made.data)
        numeric = (losses[:p] - losses[p:]) / (2 * h)
        _, grad = model.loss_grad(theta, made.consts, made.data)
        np.testing.assert_allclose(grad[0], numeric, rtol=1e-5, atol=1e-7, err_msg=parameterization)


def test_minibatch_gradient_is_the_gradient_of_the_batch():
    spec, made = point(widths="3", activation="tanh", loss="softmax_ce", init="normal", **LOSS_DATA["softmax_ce"])
    model = spec.model_def
    batch = np.array([[4, 1, 1]])
    loss, grad = model.loss_grad(made.theta0, made.consts, made.data, batch)
    sub_loss, sub_grad = model.loss_grad(made.theta0, made.consts, np.ascontiguousarray(made.data[:, [4, 1, 1]]))
    assert loss[0] == sub_loss[0] and np.array_equal(grad, sub_grad)


# ------------------------------------------------------------------------------------------------ θ₀ and draws


def expected_theta0(init, widths, bias, seed, scale, offset, low=-1.0, high=1.0, pieces=None):
    """θ₀ as the docstring says, written out afresh: layer by layer, W then b."""
    rng = np.random.default_rng(seed)
    out = []
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        if init == "file":
            w, b = pieces[f"W{layer + 1}"], pieces.get(f"b{layer + 1}")
        elif init == "normal":
            w = rng.standard_normal((fan_in, fan_out))
            b = rng.standard_normal(fan_out) if bias else None
        elif init == "uniform":
            w = rng.uniform(low, high, (fan_in, fan_out))
            b = rng.uniform(low, high, fan_out) if bias else None
        else:
            g = rng.standard_normal((fan_in, fan_out))
            w = {"lecun": g / np.sqrt(fan_in), "he": np.sqrt(2.0) * (g / np.sqrt(fan_in)),
                 "glorot": g / np.sqrt((fan_in + fan_out) / 2)}[init]
            b = np.zeros(fan_out)
        out.append(scale * w.ravel() + (offset if layer == 0 else 0.0))
        if bias:
            out.append(scale * b)
    return np.concatenate(out)


@pytest.mark.parametrize("bias", [0, 1])
@pytest.mark.parametrize("init", ["normal", "uniform", "he", "glorot", "lecun", "file"])
def test_initial_parameters_are_the_documented_draws(init, bias, tmp_path):
    widths = [2, 4, 3, 1]  # xor: 2 features, mse: 1 output
    pieces = {}
    if init == "file":
        rng = np.random.default_rng(9)
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            pieces[f"W{layer + 1}"] = rng.standard_normal((fan_in, fan_out))
            if bias:
                pieces[f"b{layer + 1}"] = rng.standard_normal(fan_out)
        np.savez(tmp_path / "init.npz", **pieces)
    _, made = point(widths="4,3", init=init, bias=bias, seed=7, init_scale=1.5, init_offset=0.25, init_low=-0.5,
                    init_high=2.0, loss="mse", init_file=str(tmp_path / "init.npz"))
    expected = expected_theta0(init, widths, bias, 7, 1.5, 0.25, -0.5, 2.0, pieces)
    assert np.array_equal(made.theta0[0], expected)
    assert made.theta0.shape == (1, 2 * 4 + 4 * 3 + 3 * 1 + bias * (4 + 3 + 1))


def test_uniform_draws_are_numpys_uniform():
    _, made = point(widths="5", init="uniform", bias=1, seed=3, init_low=0.0, init_high=1.0, loss="mse")
    rng = np.random.default_rng(3)
    expected = np.concatenate([rng.uniform(0, 1, (2, 5)).ravel(), rng.uniform(0, 1, 5), rng.uniform(0, 1, (5, 1)).ravel(),
                               rng.uniform(0, 1, 1)])
    assert np.array_equal(made.theta0[0], expected)


def test_data_rows_and_layer_rates():
    _, made = point(widths="3,2", data="clusters", classes=3, features=2, per_class=2, lr_layers="1,0,2", lr3=0.5)
    data = ds.datasets.load_data({"data": "clusters", "classes": 3, "features": 2, "per_class": 2})
    assert np.array_equal(made.data, np.concatenate([data.X.T, data.y[None, :].astype(float)]))
    sizes = [2 * 3 + 3, 3 * 2 + 2, 2 * 3 + 3]  # W then b, per layer; softmax_ce: 3 outputs
    assert np.array_equal(made.lr_scale[0], np.repeat([1.0, 0.0, 1.0], sizes))
    assert np.array_equal(made.trainable, np.repeat([True, False, True], sizes))
    assert made.lr_scale is not None and made.theta0.shape[1] == sum(sizes)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_frozen_layer_never_moves(backend):
    spec = network_spec(widths="3", lr_layers="0,1", loss="mse", **LOSS_DATA["mse"]).replace(steps=4)
    traj = ds.trajectories(spec, [0], [1], theta=True, backend=backend)
    theta = np.asarray(traj.theta)[0]
    frozen = 2 * 3 + 3
    assert np.array_equal(theta[:, :frozen], np.broadcast_to(theta[:1, :frozen], theta[:, :frozen].shape))
    assert not np.array_equal(theta[0, frozen:], theta[-1, frozen:])


# ------------------------------------------------------------------------------------------------ presets


def as_network(spec: ds.MapSpec, where: Path) -> ds.MapSpec:
    """The network configured as an mlp or softmax-mlp preset map: their data and initial weights through files
    (the mlp) or the clusters generator (the softmax-mlp), the same architecture and parameterisation."""
    values = {k.name: k.default for k in spec.model_def.knobs} | dict(spec.params)
    if spec.model == "mlp":
        a = mlp_problem_arrays(values)
        np.savez(where / "data.npz", X=a["X"], y=a["y"])
        weights = [a["W1"], *a["hidden"], a["W2"][:, None]]
        np.savez(where / "init.npz", **{f"W{i + 1}": w for i, w in enumerate(weights)})
        activation = {"tanh": "tanh_sqrt2", "relu": "relu_sqrt2", "identity": "identity"}[values["nonlinearity"]]
        params = dict(widths=",".join([str(values["width"])] * (int(values["depth"]) - 1)), activation=activation,
                      bias=0, loss="mse", init="file", init_file=str(where / "init.npz"),
                      parameterization="mean_field", data="file", data_file=str(where / "data.npz"),
                      task="regression", init_scale=values["init_scale"], init_offset=values["w1_offset"],
                      offset_mode=values["w1_offset_mode"])
    else:
        a = softmax_mlp_arrays(values)
        d, w1, w2, k = (int(values[n]) for n in ("d", "width1", "width2", "classes"))
        pieces = {}
        for i, (fan_in, fan_out) in enumerate(((d, w1), (w1, w2), (w2, k))):
            pieces[f"W{i + 1}"] = a[f"W{i + 1}"] / np.sqrt(fan_in)  # the softmax-mlp's W₀/√fan_in
            pieces[f"b{i + 1}"] = np.zeros(fan_out)
        np.savez(where / "init.npz", **pieces)
        params = dict(widths=f"{w1},{w2}", activation="relu", bias=1, loss="softmax_ce", init="file",
                      init_file=str(where / "init.npz"), data="clusters", classes=k, features=d,
                      per_class=values["per_class"], separation=values["separation"],
                      cluster_std=values["cluster_std"], data_seed=values["seed"])
    params |= {key: spec.params[key] for key in ("lr", "batch_size", "batch_per_point") if key in spec.params}
    return spec.replace(model="network", params=params)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(PRESET_SPECS))
def test_network_as_preset_keeps_the_frozen_bits(name, dtype, backend, tmp_path):
    net = as_network(PRESET_SPECS[name], tmp_path).replace(dtype=dtype)
    with np.load(FROZEN / f"{name}-{dtype}.npz") as npz:
        frozen = {field: npz[field] for field in npz.files if field != "spec"}
    if name == "mlp-deep":  # the mlp's third layer learns at lr1 (its odd layers share a rate): lr3 follows lr1
        iy, ix = (a.ravel() for a in np.indices(net.shape))
        fields = run_points(net, iy, ix, overrides={"lr3": net.point_values(iy, ix)["lr1"]}, backend=backend)
        fields = {k: v.reshape(net.shape) for k, v in fields.items()}
    else:
        fields = ds.run_map(net, backend=backend).fields
    for field, values in frozen.items():
        assert np.array_equal(values, fields[field], equal_nan=True), field


# ------------------------------------------------------------------------------------------------ engines


def test_the_kernel_reads_the_models_codes_and_columns():
    assert _kernels.NETWORK_ACTIVATION_IDS == {name: code for code, name in enumerate(ACTIVATIONS)}
    assert _kernels.NETWORK_LOSS_IDS == {name: code for code, name in enumerate(LOSSES)}
    assert _kernels.NETWORK_COLUMNS == (network.C_ACTIVATION, network.C_LOSS, network.C_BIAS, network.C_PARAM,
                                        network.C_CLASSIFIER, network.C_SLOPE, network.C_DRIFT, network.C_EVERY_STEP,
                                        network.C_LAYERS, network.C_WIDTHS)
    assert _kernels.NETWORK_MAX_LAYERS == network.MAX_LAYERS


def test_auto_runs_the_compiled_kernel():
    spec = network_spec(widths="2", loss="mse", **LOSS_DATA["mse"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = ds.run_map(spec)
    assert m.provenance["backend"] == "cython"


def engine_spec(dtype: str, **params) -> ds.MapSpec:
    """A small map across lr (some points diverge) and init_scale, every field exercised."""
    return ds.MapSpec(model="network", x=ds.Axis("lr", 0.01, 3.0, 5, "log"), y=ds.Axis("init_scale", 0.5, 2.0, 3),
                      steps=30, dtype=dtype, params={"init": "normal", "leaky_slope": 0.3, **params})


@pytest.mark.parametrize("bias", [0, 1])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_engines_agree_bit_for_bit(activation, loss, bias):
    for parameterization in ("standard", "mean_field"):
        for dtype in ("float32", "float64"):
            spec = engine_spec(dtype, widths="3,2", activation=activation, loss=loss, bias=bias,
                               parameterization=parameterization, **LOSS_DATA[loss])
            reference, compiled = run_both(spec)
            assert_same_fields(reference, compiled)
            if loss == "mse":
                assert np.all(np.isnan(compiled.fields["accuracy"]))  # regression: no classifier fields


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_one_hidden_layer_mse_fast_path_agrees_bit_for_bit(activation):
    """One hidden layer with the mse loss takes the kernel's blocked path (ds_network_shallow: 8 units and 8
    samples at a time): 11 units and 13 samples leave remainders of both; every bias, parameterisation,
    precision, full batches and minibatches, and either layer frozen."""
    data = {"data": "linear", "samples": 13, "features": 3, "noise": 0.1}
    for bias, parameterization, dtype, lr_layers, batch in itertools.product(
            (0, 1), ("standard", "mean_field"), ("float32", "float64"), ("1,1", "0,1", "1,0"), (0, 5)):
        spec = engine_spec(dtype, widths="11", activation=activation, loss="mse", bias=bias, lr_layers=lr_layers,
                           parameterization=parameterization, batch_size=batch, **data)
        reference, compiled = run_both(spec)
        assert_same_fields(reference, compiled)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_every_step_offset_moves_w1_by_the_offset_each_step(backend):
    """offset_mode = every_step with W1 frozen (lr_layers "0,1"): the drift alone moves W1, by init_offset after
    every update (the fractal notebook's paraminit_vs_lr); offset_mode = init adds it once."""
    params = {"widths": "2", "bias": 0, "lr_layers": "0,1", **LOSS_DATA["mse"]}
    spec = ds.MapSpec(model="network", x=ds.Axis("init_offset", 0.0, 0.25, 2), steps=6,
                      params={**params, "offset_mode": "every_step"})
    run = ds.trajectories(spec, [0, 0], [0, 1], backend=backend)
    w1 = run.theta[:, :, :4]  # features 2 × width 2
    drawn = w1[0, 0]
    for t in range(1, 7):
        assert np.array_equal(w1[0, t], drawn)  # offset 0: W1 stays
        assert np.array_equal(w1[1, t], w1[1, t - 1] + 0.25)  # offset 0.25: one offset a step
    assert np.array_equal(w1[1, 0], drawn + 0.25)
    once = ds.trajectories(spec.replace(params={**params}), [0], [1], backend=backend).theta[0, :, :4]
    assert np.array_equal(once, np.broadcast_to(drawn + 0.25, once.shape))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lr_layers", ["1,1,1", "0,1,1", "1,0,1", "1,1,0"])
@pytest.mark.parametrize("loss", LOSSES)
def test_engines_agree_with_minibatches_adam_and_frozen_layers(loss, lr_layers, dtype):
    data = {**LOSS_DATA[loss], "classes": 2, "data": "clusters"} if loss == "mse" else LOSS_DATA[loss]
    spec = engine_spec(dtype, widths="4,3", activation="leaky_relu", loss=loss, lr_layers=lr_layers, batch_size=3,
                       batch_per_point=1, **data).replace(optimizer="adam")
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    assert np.all(np.isfinite(compiled.fields["accuracy"][compiled.fields["outcome"] != ds.Outcome.DIVERGED]))


def test_engines_record_the_same_curves():
    spec = engine_spec("float32", widths="3", activation="sigmoid", loss="sigmoid_bce", **LOSS_DATA["sigmoid_bce"])
    runs = [ds.trajectories(spec, [0, 2], [1, 4], stride=3, backend=backend) for backend in ("numpy", "cython")]
    for name in ("loss", "theta", "accuracy"):
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[1], name), err_msg=name)
    assert np.isfinite(runs[1].accuracy[0, 0])


def test_classifier_fields():
    spec = network_spec(widths="4", loss="sigmoid_bce", **LOSS_DATA["sigmoid_bce"])
    m = ds.run_map(spec, backend="numpy")
    assert np.all((m.fields["accuracy"] >= 0) & (m.fields["accuracy"] <= 1))
    assert set(np.unique(m.fields["classes_predicted"])) <= {1, 2}


def test_chance_level_and_learned_count_the_datas_classes_and_samples():
    """learned and chance level judge a network by its data's class count and samples (iris: 3 classes; a
    training subset swept on an axis: 30 or 90 samples), not by the softmax-mlp's classes and per_class
    knobs, which a network does not read (they gave 2 classes of 100 samples here)."""
    pytest.importorskip("sklearn", reason="iris is scikit-learn's: pip install \"descentsim[datasets]\"")
    from descentsim.boundary import chance_accuracy, chance_level, class_counts, learned, learned_accuracy

    spec = ds.MapSpec(model="network", x=ds.Axis("train_samples", 30, 90, 2), y=ds.Axis("lr", 1e-3, 1.0, 4, "log"),
                      steps=60, params={"data": "iris", "standardize": 1, "widths": "4"})
    m = ds.run_map(spec)
    shape_values = {name: m.knob(name) if name == "train_samples" else spec.params.get(name, spec.knobs[name].default)
                    for name in spec.model_def.shape_knobs}
    classes, samples = class_counts(spec.model_def, shape_values)
    assert np.all(classes == 3) and np.array_equal(samples, np.broadcast_to([30.0, 90.0], m.shape))
    accuracy = m.fields["accuracy"]
    assert np.array_equal(learned(m), accuracy >= learned_accuracy(3))
    assert np.array_equal(chance_level(m), (accuracy <= chance_accuracy(3, samples)) & ~learned(m))


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("params, message", [
    ({"widths": "25,x"}, "knob 'widths' must be whole numbers separated by commas"),
    ({"widths": "0"}, "knob 'widths': every value must be from 1 to 4096"),
    ({"widths": "4", "lr_layers": "1"}, "knob 'lr_layers' needs one multiplier per weight layer, 2"),
    ({"widths": "4", "lr_layers": "0,0"}, "freezes every layer"),
    ({"widths": "4", "lr_layers": "1,-1"}, "knob 'lr_layers': every value must be from 0"),
    ({"activation": "swish"}, "knob 'activation' of model 'network' must be one of"),
    ({"bias": 2}, "knob 'bias' of model 'network' must be 0 or 1"),
    ({"data": "linear", "loss": "softmax_ce"}, "loss 'softmax_ce' needs class labels"),
    ({"data": "clusters", "classes": 3, "loss": "sigmoid_bce"}, "loss 'sigmoid_bce' needs two classes"),
    ({"data": "clusters", "classes": 3, "loss": "mse"}, "loss 'mse' fits one output to the label"),
    ({"init": "file"}, "init = \"file\" needs init_file"),
    ({"init": "file", "init_file": "/nonexistent/init.npz"}, "does not exist"),
])
def test_bad_knobs_are_refused_in_one_line(params, message):
    with pytest.raises(SpecError) as info:
        ds.problem(network_spec(**params), 0, 0)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_init_file_of_the_wrong_shape_is_refused(tmp_path):
    np.savez(tmp_path / "init.npz", W1=np.zeros((3, 4)), b1=np.zeros(4), W2=np.zeros((4, 2)), b2=np.zeros(2))
    with pytest.raises(SpecError, match=r"W1 must be numbers shaped \(2, 4\)"):
        ds.problem(network_spec(widths="4", init="file", init_file=str(tmp_path / "init.npz")), 0, 0)


def test_linear_regression_blows_up_exactly_above_2_over_lambda_max():
    """examples/linear_regression.toml: gradient descent on a mean squared error diverges exactly where
    lr > 2/λ_max of its Hessian 2·E[(x, 1)(x, 1)ᵀ], computed from each row's own data."""
    from pathlib import Path

    from descentsim.cli import load_config

    example = Path(__file__).parent.parent / "examples" / "linear_regression.toml"
    spec = load_config(str(example), ["x.n=64", "y.n=6", "steps=600"])
    m = ds.run_map(spec)
    for iy in range(spec.shape[0]):
        x = ds.problem(spec, iy, 0).data[0]
        hessian = 2 * np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])
        critical = 2 / np.linalg.eigvalsh(hessian).max()
        diverged = m.outcome[iy] == ds.Outcome.DIVERGED
        assert diverged.any() and not diverged.all()
        assert not diverged[m.x < critical].any(), (iy, critical)  # never below 2/λ_max
        # above it the error grows by |1 − lr·λ_max| > 1 a step: within the budget once clear of the edge
        assert diverged[m.x > 1.05 * critical].all(), (iy, critical)
        assert not (m.outcome[iy][m.x > critical] == ds.Outcome.CONVERGED).any()


def test_digits_network_learns_at_small_lr_and_collapses_to_one_class_at_the_largest():
    """examples/digits_collapse.toml on a 3 × 3 grid (lr 10⁻⁴, 10⁻², 1 × init_scale 0.1, 1, 10), 200 steps: at lr
    10⁻² and He's scale the network learns the digits; at lr 1 every start ends predicting one class for every
    input, its accuracy that class's share of the 1797 images (≈ 1/10); a start ten times He's learns slower."""
    pytest.importorskip("sklearn", reason="the digits are scikit-learn's: pip install \"descentsim[datasets]\"")
    from descentsim.cli import load_config
    from descentsim.datasets import load_data

    example = Path(__file__).parent.parent / "examples" / "digits_collapse.toml"
    spec = load_config(str(example), ["x.n=3", "y.n=3", "steps=200"])
    m = ds.run_map(spec)
    np.testing.assert_allclose(m.x, [1e-4, 1e-2, 1.0])
    np.testing.assert_allclose(m.y, [0.1, 1.0, 10.0])
    accuracy, collapsed = m.fields["accuracy"], m.fields["collapsed"]
    assert accuracy[1, 1] > 0.9  # lr 10⁻², init_scale 1: learned
    assert accuracy[2, 1] < accuracy[1, 1] - 0.3  # init_scale 10: far behind after the same steps
    assert not collapsed[:, :2].any()
    class_shares = np.bincount(load_data({"data": "digits"}).y) / 1797
    assert collapsed[:, 2].all() and (m.fields["classes_predicted"][:, 2] == 1).all()
    for share in accuracy[:, 2]:  # one class for every input: right on exactly that class's images
        assert np.isclose(share, class_shares, rtol=0, atol=1e-6).any(), share
