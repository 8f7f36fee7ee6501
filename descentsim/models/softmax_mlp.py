"""The classifier that collapses at high learning rate: LINEAR→RELU→LINEAR→RELU→LINEAR→SOFTMAX."""

from __future__ import annotations

import numpy as np

from ..datasets import draw_clusters
from ..knobs import MAX_SEED, Knob
from .base import KnobValues, Problem, per_point
from .network import COLLAPSE_WORDS, DenseNetwork, dense_consts, parameter_total


def softmax_mlp_shape(values: KnobValues) -> tuple[int, int, int, int]:
    """(d, width1, width2, classes)."""
    return int(values["d"]), int(values["width1"]), int(values["width2"]), int(values["classes"])


def softmax_mlp_arrays(values: KnobValues) -> dict[str, np.ndarray]:
    """The data set and the initial weights (before scaling) of a softmax-mlp map, drawn from its seed.

    ``rng = numpy.random.default_rng(seed)``; then, in this order: centres = separation ·
    rng.standard_normal((classes, d)); labels = 0..classes−1, each per_class times (class by class);
    X = centres[labels] + cluster_std · rng.standard_normal((n, d)); both shuffled by
    rng.permutation(n) (``datasets.draw_clusters``); then W1 = rng.standard_normal((d, width1)), W2 = rng.standard_normal((width1,
    width2)), W3 = rng.standard_normal((width2, classes)).
    """
    d, width1, width2, classes = softmax_mlp_shape(values)
    rng = np.random.default_rng(int(values["seed"]))
    x, labels, centres = draw_clusters(rng, classes, d, int(values["per_class"]), float(values["separation"]),
                                       float(values["cluster_std"]))
    return {
        "X": x,
        "labels": labels,
        "centres": centres,
        "W1": rng.standard_normal((d, width1)),
        "W2": rng.standard_normal((width1, width2)),
        "W3": rng.standard_normal((width2, classes)),
    }


class SoftmaxMLP(DenseNetwork):
    """LINEAR→RELU→LINEAR→RELU→LINEAR→SOFTMAX with cross-entropy, on Gaussian clusters of ``classes`` classes.

    z = W3ᵀ·relu(W2ᵀ·relu(W1ᵀ·x + b1) + b2) + b3, with relu'(0) = 0. Per input, with
    μ = max_c z_c (the first largest), s = Σ_c exp(z_c − μ) in class order: ℓ = (μ + log s) − z_y, and
    ∂ℓ/∂z_c = exp(z_c − μ)/s − [c = y]. L = mean of ℓ over the data (or the minibatch), summed in sample
    order; each sample's ∂ℓ/∂z is divided by the sample count before it is back-propagated and added.
    exp and log are ``descentsim.numerics.exp_nonpositive`` and ``log_at_least_one``.

    θ = (W1 (d × width1, row-major), b1, W2 (width1 × width2), b2, W3 (width2 × classes), b3). Initial
    weights: W = init_scale·W₀/√fan_in with W₀ ~ N(0, 1) (init_scale √2 is He's initialisation),
    biases 0. Data: ``softmax_mlp_arrays``; data rows: X's d columns, then the label.

    At high learning rates (Adam) training collapses: the hidden ReLUs die, the output becomes the
    bias b3 alone, every input gets the same class, the loss sits near ln(classes) and the accuracy at
    1/classes. ``evaluate`` reports the final network's training accuracy and whether it is collapsed
    (the ``accuracy`` and ``collapsed`` fields).

    A preset of the ``network`` model (issue 12), the same maps bit for bit as before it: widths "width1,width2",
    relu, biases, softmax_ce, the standard parameterisation (``DenseNetwork``: the same kernel and reference),
    on its own clusters and draws.

    Knobs: classes (6), d (16), per_class (50), separation (1), cluster_std (1), width1 (25), width2 (12),
    seed (0), init_scale (1).
    """

    name = "softmax-mlp"
    knobs = (
        Knob("classes", 6, "number of classes (Gaussian clusters)", kind=int, minimum=2, maximum=1024),
        Knob("d", 16, "input dimension", kind=int, minimum=1, maximum=4096),
        Knob("per_class", 50, "training points per class", kind=int, minimum=1, maximum=2**20),
        Knob("separation", 1.0, "standard deviation of the cluster centres", minimum=0.0),
        Knob("cluster_std", 1.0, "standard deviation of the points about their centre", minimum=0.0),
        Knob("width1", 25, "units of the first hidden layer", kind=int, minimum=1, maximum=4096),
        Knob("width2", 12, "units of the second hidden layer", kind=int, minimum=1, maximum=4096),
        Knob("seed", 0, "seed of the data and the initial weights", kind=int, minimum=0, maximum=MAX_SEED),
        Knob("init_scale", 1.0, "initial weights are init_scale·N(0,1)/√fan_in"),
    )
    shape_knobs = frozenset({"classes", "d", "per_class", "separation", "cluster_std", "width1", "width2", "seed"})
    converge_loss = 1e-3
    classifier = True
    value_words = COLLAPSE_WORDS

    def parameter_count(self, values: KnobValues) -> int:
        return parameter_total([int(np.max(values[name])) for name in ("d", "width1", "width2", "classes")], 1)

    def data_size(self, values: KnobValues) -> int:
        """X and the labels (and again as the data's rows), and the initial weights."""
        samples = int(np.max(values["classes"])) * int(np.max(values["per_class"]))
        return 2 * (int(np.max(values["d"])) + 1) * samples + self.parameter_count(values)

    def class_counts(self, values: KnobValues) -> tuple[int, int]:
        return int(values["classes"]), int(values["classes"]) * int(values["per_class"])

    def problem(self, values: KnobValues, n: int) -> Problem:
        d, width1, width2, classes = softmax_mlp_shape(values)
        arrays = softmax_mlp_arrays(values)
        scale = per_point(values["init_scale"], n)[:, None]
        pieces = []
        for name, fan_in, width in (("W1", d, width1), ("W2", width1, width2), ("W3", width2, classes)):
            pieces += [scale * (arrays[name].ravel() / np.sqrt(fan_in)), np.zeros((n, width))]
        theta0 = np.concatenate(pieces, axis=1)
        return Problem(
            theta0=theta0,
            consts=dense_consts(n, [d, width1, width2, classes], "relu", "softmax_ce", 1, "standard", True),
            data=np.concatenate([arrays["X"].T, arrays["labels"][None, :].astype(np.float64)]),
            trainable=np.ones(theta0.shape[1], dtype=bool),
        )
