"""Dynamic tiles against a static split on a lopsided map, and the coordinator's cost per tile.

What it measures
----------------
A relu-neuron map whose cost is lopsided by rows: the learning rate runs down the y axis from 1e-4 to
1e4 (log), so the upper rows (small lr) run every one of their steps (``converge_loss = 0``: nothing
stops early) while the lower rows (lr above ≈ 4) diverge within a few steps. Tiles are numbered row
by row, so a static split into contiguous halves gives rank 0 nearly all the work.

It runs, in one go, the same map as

* 1 rank × N threads (``descentsim-map --threads N``, no MPI),
* N ranks × 1 thread with dynamic tiles (``mpiexec -n N descentsim-map --threads 1``),
* N ranks × 1 thread with a static split (``--schedule static``),

and prints the wall time of each (the run itself, as recorded in the file's provenance; process
start-up is printed separately), the ratios to the 1-rank run, the share of the work the static
split gave rank 0, and rank 0's measured coordination cost per tile (receive a result, append it to
the journal, send the next assignment), messages and bytes per tile.

How to run
----------
    python bench/bench_mpi.py                      # N = 2 (this machine's cores), best of 3
    python bench/bench_mpi.py --ranks 4 --repeats 1

It needs mpi4py and mpiexec (``pip install ".[test]"`` installs both).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import descentsim as ds
from descentsim.tiles import tiles

CONFIG = """
model = "relu-neuron"
steps = {steps}
[x]
name = "w0"
start = 0.5
stop = 1.5
n = {nx}
[y]
name = "lr"
start = 1e-4
stop = 1e4
n = {ny}
scale = "log"
[params]
samples = 64
[thresholds]
converge_loss = 0.0
"""


def run(command: list[str], out: Path) -> tuple[float, float, dict]:
    """(process wall s, run wall s from the provenance, provenance) of one descentsim-map run."""
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=out.parent)  # not a source tree
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr}")
    provenance = ds.open_map(out).provenance
    return wall, provenance["wall_time_s"], provenance


def static_share(cmap: ds.ConvergenceMap, ranks: int, tile_shape: tuple[int, int]) -> float:
    """The fraction of all trajectory-steps in rank 0's block of a static split."""
    layout = tiles(cmap.shape, tile_shape)
    costs = np.array([cmap.fields["steps"][t.region].sum() for t in layout], dtype=float)
    blocks = np.array_split(np.arange(len(layout)), ranks)
    return costs[blocks[0]].sum() / costs.sum()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2, help="ranks (and threads of the 1-rank run); default 2")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--grid", default="128x256", help="NXxNY (default 128x256)")
    parser.add_argument("--tile", default="4x128", help="tile shape ROWSxCOLS (default 4x128)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the best is kept")
    args = parser.parse_args(argv)
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("mpiexec not found: pip install '.[test]' (mpi4py and the mpich wheel)")
    nx, ny = (int(v) for v in args.grid.split("x"))
    tile_shape = tuple(int(v) for v in args.tile.split("x"))
    n = args.ranks
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "lopsided.toml"
        config.write_text(CONFIG.format(steps=args.steps, nx=nx, ny=ny))
        out = Path(tmp) / "map.h5"
        cli = [sys.executable, "-m", "descentsim.cli", str(config), "-o", str(out), "--tile", args.tile]
        configurations = {
            f"1 rank × {n} threads": cli + ["--threads", str(n)],
            f"{n} ranks × 1 thread, dynamic": [mpiexec, "-n", str(n), *cli, "--threads", "1"],
            f"{n} ranks × 1 thread, static": [mpiexec, "-n", str(n), *cli, "--threads", "1", "--schedule", "static"],
        }
        results = {}
        for name, command in configurations.items():
            runs = [run(command, out) for _ in range(args.repeats)]
            results[name] = min(runs, key=lambda r: r[1])
        cmap = ds.open_map(out)
        share = static_share(cmap, n, tile_shape)
        print(f"lopsided map {nx}×{ny}, {args.steps} steps, {len(tiles(cmap.shape, tile_shape))} tiles of {args.tile}")
    base = results[f"1 rank × {n} threads"][1]
    print(f"static split: rank 0's block holds {share:.1%} of the trajectory-steps")
    print(f"{'configuration':<32} {'run s':>8} {'process s':>10} {'vs 1 rank':>10}")
    for name, (wall, inner, _) in results.items():
        print(f"{name:<32} {inner:8.3f} {wall:10.3f} {inner / base:9.2f}×")
    prov = results[f"{n} ranks × 1 thread, dynamic"][2]
    n_tiles = len(tiles(cmap.shape, tile_shape))
    print(
        f"coordinator (rank 0) per tile from a worker: {prov['coordinator_s_per_tile'] * 1e6:.0f} µs "
        f"(journal fsyncs, spread over all tiles: {prov['journal_sync_s'] / n_tiles * 1e6:.0f} µs), "
        f"{prov['messages_per_tile']} messages, {prov['bytes_per_tile']:.0f} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
