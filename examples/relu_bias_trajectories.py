"""The dead-ReLU map over (w0, b0) with gradient-descent paths drawn on top.

    python examples/relu_bias_trajectories.py [OUT.png]

Computes examples/relu_bias.toml (a few seconds), then follows a ring of starts through training
with descentsim.trajectories (the reference engine's exact path) and draws each path (w_t, b_t):
a dot at the start, a cross where a path stops dead, a circle where it converges.
"""

import sys
from pathlib import Path

import numpy as np

import descentsim as ds

here = Path(__file__).parent
spec = ds.MapSpec.from_toml(here / "relu_bias.toml")
cmap = ds.run_map(spec)

angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
w0, b0 = 2.6 * np.cos(angles), 2.6 * np.sin(angles)
paths = ds.trajectories(spec, np.zeros(16, int), np.zeros(16, int), overrides={"w0": w0, "b0": b0}).theta

ax = cmap.plot()
for path in paths:
    w, b = path[:, 0], path[:, 1]
    w, b = w[np.isfinite(w)], b[np.isfinite(b)]
    ax.plot(w, b, color="white", linewidth=1.0, alpha=0.9)
    ax.plot(w[0], b[0], "o", color="white", markersize=3)
    ax.plot(w[-1], b[-1], "x" if abs(w[-1] - 1) + abs(b[-1]) > 1e-2 else "o", color="#F0E442", markersize=7,
            markeredgewidth=2)
ax.set_title(ax.get_title() + "\npaths of (w, b) from a ring of starts: × stopped dead, ○ learned w = 1, b = 0",
             fontsize="medium")
out = sys.argv[1] if len(sys.argv) > 1 else "relu_bias_paths.png"
ax.figure.savefig(out, dpi=120)
print(f"wrote {out}")
