"""descentsim: convergence maps of gradient descent.

Train one tiny model per grid point (learning rate against initial weight, or any two knobs) and
record whether training converged, diverged, got stuck, cycled or never settled, and how fast.

Examples
--------
>>> import descentsim as ds
>>> spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.0, 256), y=ds.Axis("a", 0.5, 2.0, 64), steps=500)
>>> m = ds.run_map(spec)
>>> round(m.fraction(ds.Outcome.DIVERGED), 2)
0.41
"""

from .convergence_map import ConvergenceMap, open_map, refine_map, run_map
from .errors import DescentsimError, MapFileError, SpecError
from .knobs import Knob
from .models import MODELS
from .optimizers import OPTIMIZERS
from .outcome import Outcome, Thresholds
from .runner import problem, trajectories
from .spec import Axis, MapSpec

__all__ = [
    "Axis",
    "ConvergenceMap",
    "DescentsimError",
    "Knob",
    "MODELS",
    "MapFileError",
    "MapSpec",
    "OPTIMIZERS",
    "Outcome",
    "SpecError",
    "Thresholds",
    "open_map",
    "problem",
    "refine_map",
    "run_map",
    "trajectories",
]
