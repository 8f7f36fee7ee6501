"""The classifier that collapses at high learning rate: LINEAR→RELU→LINEAR→RELU→LINEAR→SOFTMAX."""

from __future__ import annotations

import numpy as np

from ..datasets import draw_clusters
from ..knobs import MAX_SEED, Knob
from ..numerics import exp_nonpositive, log_at_least_one
from .base import KnobValues, Model, Problem, per_point


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


def layer_shapes(d: int, width1: int, width2: int, classes: int) -> list[tuple[int, ...]]:
    """The shapes of W1, b1, W2, b2, W3, b3, in θ's order."""
    return [(d, width1), (width1,), (width1, width2), (width2,), (width2, classes), (classes,)]


def unpack(theta: np.ndarray, d: int, width1: int, width2: int, classes: int) -> list[np.ndarray]:
    """θ (m, P) as [W1 (m, d, w1), b1 (m, w1), W2 (m, w1, w2), b2 (m, w2), W3 (m, w2, k), b3 (m, k)] views."""
    parts, start = [], 0
    for shape in layer_shapes(d, width1, width2, classes):
        size = int(np.prod(shape))
        parts.append(theta[:, start : start + size].reshape(len(theta), *shape))
        start += size
    return parts


def forward(layers: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, ...]:
    """(pre1, a1, pre2, a2, logits) of every row's network at inputs x (m, B, d), sums in index order.

    pre1_i = (Σ_l x_l·W1_li) + b1_i, a1 = relu(pre1); pre2_j = (Σ_i a1_i·W2_ij) + b2_j, a2 = relu(pre2);
    z_c = (Σ_j a2_j·W3_jc) + b3_c.
    """
    w1, b1, w2, b2, w3, b3 = layers

    def linear(inputs, w, b):  # inputs (m, B, fan_in), w (m, fan_in, fan_out), b (m, fan_out)
        acc = np.zeros((*inputs.shape[:2], w.shape[2]), dtype=w.dtype)
        for i in range(w.shape[1]):
            acc = acc + inputs[:, :, i : i + 1] * w[:, None, i, :]
        return acc + b[:, None, :]

    zero = w1.dtype.type(0)
    pre1 = linear(x, w1, b1)
    a1 = np.where(pre1 > 0, pre1, zero)
    pre2 = linear(a1, w2, b2)
    a2 = np.where(pre2 > 0, pre2, zero)
    return pre1, a1, pre2, a2, linear(a2, w3, b3)


def first_argmax(z: np.ndarray) -> np.ndarray:
    """Index of the first largest entry along the last axis (by strict >, from entry 0)."""
    best, value = np.zeros(z.shape[:-1], dtype=np.int64), z[..., 0]
    for c in range(1, z.shape[-1]):
        better = z[..., c] > value
        best = np.where(better, c, best)
        value = np.where(better, z[..., c], value)
    return best


def softmax_cross_entropy(z: np.ndarray, labels: np.ndarray, count) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's ℓ (m, B) and ∂ℓ/∂z divided by ``count`` (m, B, classes), at logits z (m, B, classes) and
    int labels (m, B): μ = the first largest logit, s = Σ_c exp(z_c − μ) in class order, ℓ = (μ + log s) − z_y,
    ∂ℓ/∂z_c = (exp(z_c − μ)/s − [c = y])/count."""
    with np.errstate(invalid="ignore"):
        top = np.take_along_axis(z, first_argmax(z)[..., None], axis=-1)[..., 0]
        e = exp_nonpositive(z - top[..., None])
    s = np.zeros_like(top)
    for c in range(z.shape[-1]):
        s = s + e[..., c]
    picked = np.take_along_axis(z, labels[..., None], axis=-1)[..., 0]
    onehot = labels[..., None] == np.arange(z.shape[-1])
    return (top + log_at_least_one(s)) - picked, (e / s[..., None] - onehot.astype(z.dtype)) / count


class SoftmaxMLP(Model):
    """LINEAR→RELU→LINEAR→RELU→LINEAR→SOFTMAX with cross-entropy, on Gaussian clusters of ``classes`` classes.

    z = W3ᵀ·relu(W2ᵀ·relu(W1ᵀ·x + b1) + b2) + b3 (``forward``), with relu'(0) = 0. Per input, with
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

    Knobs: classes (6), d (16), per_class (50), separation (1), cluster_std (1), width1 (25), width2 (12),
    seed (0), init_scale (1).
    """

    name = "softmax-mlp"
    kernel = "softmax_mlp"
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
    minibatches = True
    classifier = True
    value_words = {"collapsed": {0: "more than one class (or not finite)", 1: "one class for every input"}}

    def parameter_count(self, values: KnobValues) -> int:
        sizes = (int(np.max(values[name])) for name in ("d", "width1", "width2", "classes"))
        return sum(int(np.prod(shape)) for shape in layer_shapes(*sizes))

    def data_size(self, values: KnobValues) -> int:
        """X and the labels (and again as the data's rows), and the initial weights."""
        samples = int(np.max(values["classes"])) * int(np.max(values["per_class"]))
        return 2 * (int(np.max(values["d"])) + 1) * samples + self.parameter_count(values)

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
            consts=np.tile(np.array([width1, width2, classes], dtype=np.float64), (n, 1)),
            data=np.concatenate([arrays["X"].T, arrays["labels"][None, :].astype(np.float64)]),
            trainable=np.ones(theta0.shape[1], dtype=bool),
        )

    @staticmethod
    def _layers(theta, consts, data):
        width1, width2, classes = (int(v) for v in consts[0])
        d = data.shape[0] - 1
        return unpack(theta, d, width1, width2, classes), d

    def loss_grad(self, theta, consts, data, batch=None):
        dtype = theta.dtype
        m = len(theta)
        layers, d = self._layers(theta, consts, data)
        w1, b1, w2, b2, w3, b3 = layers
        count = data.shape[1] if batch is None else batch.shape[1]
        columns = np.broadcast_to(np.arange(count), (m, count)) if batch is None else batch
        x = np.moveaxis(data[:d][:, columns], 0, -1)  # (m, B, d)
        labels = data[d][columns].astype(np.int64)  # (m, B)
        pre1, a1, pre2, a2, z = forward(layers, x)
        terms, dz = softmax_cross_entropy(z, labels, dtype.type(count))

        # back-propagation of every sample at once (its own sums in index order) ...
        dpre2 = np.zeros_like(a2)
        for c in range(z.shape[-1]):
            dpre2 = dpre2 + w3[:, None, :, c] * dz[..., c : c + 1]
        dpre2 = np.where(pre2 > 0, dpre2, dtype.type(0))
        dpre1 = np.zeros_like(a1)
        for j in range(a2.shape[-1]):
            dpre1 = dpre1 + w2[:, None, :, j] * dpre2[..., j : j + 1]
        dpre1 = np.where(pre1 > 0, dpre1, dtype.type(0))
        # ... then the sums over samples, in sample order
        loss = np.zeros(m, dtype=dtype)
        grads = [np.zeros_like(part) for part in layers]
        for n in range(count):
            loss = loss + terms[:, n]
            for k, (inputs, delta) in enumerate(((x, dpre1), (a1, dpre2), (a2, dz))):
                grads[2 * k] = grads[2 * k] + inputs[:, n, :, None] * delta[:, n, None, :]
                grads[2 * k + 1] = grads[2 * k + 1] + delta[:, n]
        return loss / dtype.type(count), np.concatenate([g.reshape(m, -1) for g in grads], axis=1)

    def evaluate(self, theta, consts, data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accuracy, collapsed, classes predicted) of each row's network on the whole training set.

        The prediction is the first largest logit. accuracy = fraction of inputs predicted right;
        collapsed = 1 when every input gets the same class, else 0; classes predicted = the number of
        distinct classes predicted (a network near chance often predicts two or three). Where a logit is
        not finite they are undefined: accuracy NaN, collapsed 0, classes predicted 0.
        """
        layers, d = self._layers(theta, consts, data)
        x = np.broadcast_to(data[:d].T, (len(theta), data.shape[1], d))
        with np.errstate(all="ignore"):
            z = forward(layers, x)[-1]
        predicted = first_argmax(z)
        finite = np.all(np.isfinite(z), axis=(1, 2))
        accuracy = np.mean(predicted == data[d].astype(np.int64), axis=1)
        collapsed = np.all(predicted == predicted[:, :1], axis=1)
        seen = np.zeros((len(theta), z.shape[-1]), dtype=bool)
        np.put_along_axis(seen, predicted, True, axis=1)
        distinct = np.where(finite, seen.sum(axis=1), 0).astype(np.int16)
        return np.where(finite, accuracy, np.nan), (finite & collapsed).astype(np.int8), distinct
