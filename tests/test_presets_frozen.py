"""The mlp and softmax-mlp maps, frozen: small maps of every variant written to tests/data/presets by the
code of descentsim 0.1 (before issue 12's general network model) must come out byte for byte the same,
whatever later replaces their kernels (issue 12: "the same bits, a test compares maps made before and after").

Each file, ``NAME-DTYPE.npz``, holds the spec as TOML text (``spec``) and every field of the map of
``PRESET_SPECS[NAME]`` in that precision, computed by the compiled engine; ``python tests/test_presets_frozen.py``
wrote them (run it again only to freeze a deliberate change of the presets' maths, and say so).
"""

from pathlib import Path

import numpy as np
import pytest

import descentsim as ds

FROZEN = Path(__file__).parent / "data" / "presets"

_MLP = dict(model="mlp", x=ds.Axis("lr1", 1.0, 300.0, 12, "log"), y=ds.Axis("lr2", 1.0, 300.0, 10, "log"), steps=80)
_SOFTMAX = dict(model="softmax-mlp", x=ds.Axis("lr", 0.01, 5.0, 12, "log"), y=ds.Axis("init_scale", 0.3, 3.0, 8),
                steps=80)
PRESET_SPECS = {
    "mlp-tanh": ds.MapSpec(**_MLP, params={"lr": 1.0, "width": 6, "seed": 3}),
    "mlp-relu": ds.MapSpec(**_MLP, params={"lr": 1.0, "width": 5, "nonlinearity": "relu"}),
    "mlp-identity": ds.MapSpec(**_MLP, params={"lr": 1.0, "width": 4, "nonlinearity": "identity"}),
    "mlp-deep": ds.MapSpec(**_MLP, params={"lr": 1.0, "width": 4, "depth": 3, "d": 3, "n_data": 12}),
    "mlp-offset": ds.MapSpec(**_MLP, params={"lr": 1.0, "width": 4, "w1_offset": 0.1, "w1_offset_mode": "every_step"}),
    "mlp-batch": ds.MapSpec(**_MLP, params={"lr": 1.0, "width": 4, "batch_size": 5}),
    "softmax": ds.MapSpec(**_SOFTMAX, params={"classes": 3, "d": 2, "per_class": 6, "width1": 5, "width2": 4}),
    "softmax-adam-batch": ds.MapSpec(**_SOFTMAX, optimizer="adam",
                                     params={"classes": 4, "d": 3, "per_class": 5, "width1": 6, "width2": 3,
                                             "batch_size": 4, "batch_per_point": 1}),
}


DTYPES = ("float32", "float64")


def freeze() -> None:
    """Write the frozen maps."""
    FROZEN.mkdir(parents=True, exist_ok=True)
    for name, spec in PRESET_SPECS.items():
        for dtype in DTYPES:
            m = ds.run_map(spec.replace(dtype=dtype), backend="cython")
            np.savez_compressed(FROZEN / f"{name}-{dtype}.npz", spec=m.spec.to_toml(), **m.fields)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(PRESET_SPECS))
def test_preset_maps_keep_their_bits(name, dtype):
    spec = PRESET_SPECS[name].replace(dtype=dtype)
    with np.load(FROZEN / f"{name}-{dtype}.npz") as frozen:
        assert ds.MapSpec.from_toml_text(str(frozen["spec"])) == spec, "the frozen file was made from another spec"
        for engine in ("cython", "numpy"):
            now = ds.run_map(spec, backend=engine)
            for field in now.fields:
                assert np.array_equal(frozen[field], now.fields[field], equal_nan=True), f"{engine}: {field} changed"


if __name__ == "__main__":
    freeze()
