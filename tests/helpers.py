"""Shared test helpers."""

import time

import numpy as np
import pytest

import descentsim as ds
from descentsim.journal import TileJournal, read_journal


def run_both(spec: ds.MapSpec, threads: int = 2):
    """The same map from the reference and the compiled engine."""
    return ds.run_map(spec, backend="numpy"), ds.run_map(spec, backend="cython", threads=threads)


def assert_same_fields(a: ds.ConvergenceMap, b: ds.ConvergenceMap) -> None:
    for name in a.fields:
        np.testing.assert_array_equal(a.fields[name], b.fields[name], err_msg=f"field {name}")


def write_config(path, text):
    """Write a TOML config and return its path."""
    path.write_text(text)
    return path


def journal_with_tiles(path, spec, reference, count, tile_shape=(2, 48)):
    """A journal holding the first ``count`` tiles (of ``tile_shape``) of the map ``reference``."""
    journal = TileJournal.create(path, spec, tile_shape)
    for tile in journal.tiles[:count]:
        journal.append(tile, {name: values[tile.region] for name, values in reference.fields.items()})
    journal.close()
    return journal


def wait_for_tiles(partial, count, timeout=60):
    """Until the journal ``partial`` holds ``count`` tiles; fails on timeout (the kill must land mid-run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(read_journal(partial)[2]) >= count:
                return
        except ds.MapFileError:
            pass
        time.sleep(0.005)
    pytest.fail(f"the journal never held {count} tiles")


#: A map that takes about 1.5 s on one thread (nothing converges or stops early): for kill tests.
SLOW_CONFIG = """
model = "relu-neuron"
steps = 3000
[x]
name = "lr"
start = 0.001
stop = 0.05
n = 48
scale = "log"
[y]
name = "w0"
start = -2.0
stop = 2.0
n = 64
[params]
samples = 256
[thresholds]
converge_loss = 0.0
"""
