"""Checks of what a descentsim HDF5 file holds against what its spec says it must hold.

Every reader (map files, zoom frames, the history group) reads its datasets through ``read_dataset`` and
checks their values with ``check_values``, so an edited or damaged file is refused with one line naming
the file, the dataset and what is wrong; nothing is reshaped, cast or shown as if it were fine.
"""

from __future__ import annotations

from typing import Iterable

import h5py
import numpy as np

from .errors import MapFileError
from .outcome import Outcome


def where(node: h5py.Group, name: str) -> str:
    """The path of ``name`` inside ``node``'s file as messages show it: ``outcome``, ``frames/001/outcome``."""
    return f"{node.name.rstrip('/')}/{name}".lstrip("/")


def damaged(shown: str, item: str, problem: str) -> MapFileError:
    """The one-line error for ``item`` (e.g. "dataset 'outcome'") of the file ``shown``."""
    return MapFileError(f"{shown}: {item} {problem}; the file was edited or damaged: compute it again")


def read_dataset(node: h5py.Group, name: str, shape: tuple[int, ...], dtype, shown: str) -> np.ndarray:
    """The values of dataset ``name`` of ``node``, which must be shaped exactly ``shape`` and hold exactly
    ``dtype`` (in either byte order; returned in the machine's).

    Raises
    ------
    MapFileError
        naming the file ``shown``, the dataset and what is wrong: missing, not a dataset, another shape or
        another type.
    """
    item = f"dataset {where(node, name)!r}"
    dataset = node.get(name)
    if dataset is None:
        raise damaged(shown, item, "is missing")
    if not isinstance(dataset, h5py.Dataset):
        raise damaged(shown, item, "is not a dataset")
    if dataset.shape != tuple(shape):
        raise damaged(shown, item, f"is shaped {dataset.shape}, not {tuple(shape)}")
    dtype = np.dtype(dtype)
    if dataset.dtype.kind != dtype.kind or dataset.dtype.itemsize != dtype.itemsize:
        raise damaged(shown, item, f"holds {dataset.dtype.newbyteorder('=')}, not {dtype}")
    return dataset[()].astype(dtype, copy=False)


def check_values(values: np.ndarray, allowed: Iterable[int] | tuple[int, int], node: h5py.Group, name: str,
                 shown: str, meaning: str, span: bool = False) -> None:
    """MapFileError unless every entry of ``values`` (dataset ``name`` of ``node``) is one of ``allowed``, or,
    with ``span``, lies in the range ``allowed`` = (low, high) inclusive; ``meaning`` says what the allowed
    values are ("an outcome code (0 to 5)")."""
    if span:
        low, high = allowed
        bad = (values < low) | (values > high)
    else:
        bad = ~np.isin(values, np.fromiter(allowed, dtype=np.int64))
    count = int(np.count_nonzero(bad))
    if count:
        first = values[bad].flat[0]
        points = "1 entry" if count == 1 else f"{count} entries"
        raise damaged(shown, f"dataset {where(node, name)!r}", f"holds {first} ({points}), not {meaning}")


def check_same(values: np.ndarray, expected: np.ndarray, node: h5py.Group, name: str, shown: str, meaning: str) -> None:
    """MapFileError unless ``values`` (dataset ``name``) equal ``expected`` to within 1e-9 of their largest
    magnitude (so that a file written with another NumPy's linspace or geomspace still reads);
    ``meaning`` says what they should be."""
    scale = float(np.max(np.abs(expected), initial=0.0))
    if not np.allclose(values, expected, rtol=0.0, atol=1e-9 * scale):
        raise damaged(shown, f"dataset {where(node, name)!r}", f"holds values that are not {meaning}")


def check_outcomes(values: np.ndarray, node: h5py.Group, name: str, shown: str) -> None:
    """MapFileError unless every entry of ``values`` (dataset ``name``) is the code of an ``Outcome``."""
    codes = ", ".join(f"{o.value} {o.label}" for o in Outcome)
    check_values(values, [o.value for o in Outcome], node, name, shown, f"an outcome code ({codes})")
