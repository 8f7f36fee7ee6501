"""Minibatches from a counter-based hash: the samples of update t are a pure function of
(batch_seed, t, grid point), the same on any number of ranks or threads and in every engine.

With the 64-bit mixing function of SplitMix64 (all arithmetic modulo 2^64),

    key(t, p) = mix(mix(batch_seed ^ 0x9E3779B97F4A7C15) + t·0xD1B54A32D192ED03 + p·0x8CB92BA72F3D8DD7)
    index_j   = mix(key + j) mod n_samples,   j = 0 .. batch_size − 1   (drawn with replacement)

where p is the grid point's index (iy·nx + ix) when ``batch_per_point`` is 1, and 0 when every point
sees the same sequence of minibatches.

With ``batch_order = "sequential"`` update t takes index_j = (t·batch_size + j) mod n_samples: the data
in order, pass after pass, the same for every point. With samples = (steps + 1)·batch_size every
evaluation of the loss sees samples no other has seen: fresh samples every step.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STEP = np.uint64(0xD1B54A32D192ED03)
POINT = np.uint64(0x8CB92BA72F3D8DD7)


def mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (uint64 in, uint64 out)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def batch_indices(seed: int, t: int, points: np.ndarray, batch_size: int, n_samples: int,
                  sequential: bool = False) -> np.ndarray:
    """(m, batch_size) sample indices of update t for grid points ``points`` (zeros for a shared sequence)."""
    if sequential:
        j = np.arange(batch_size, dtype=np.int64)
        return np.broadcast_to((t * batch_size + j) % n_samples, (len(points), batch_size))
    with np.errstate(over="ignore"):
        base = mix(np.uint64(seed) ^ GOLDEN)
        key = mix(base + np.uint64(t) * STEP + points.astype(np.uint64) * POINT)
        j = np.arange(batch_size, dtype=np.uint64)
        return (mix(key[:, None] + j[None, :]) % np.uint64(n_samples)).astype(np.int64)
