"""A map in xarray: ``ConvergenceMap.to_xarray()`` and ``xarray.open_dataset`` on its file agree.

xarray and h5netcdf are in the test extras, so these tests run (never skip)."""

import numpy as np
import pytest
import xarray as xr

import descentsim as ds
from descentsim import Axis, MapSpec

MAPS = {
    "two knobs": lambda: ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 7), y=Axis("a", 0.5, 2.0, 3),
                                            steps=50)),
    "one row": lambda: ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 5, "log"), steps=50)),
    "refined": lambda: ds.refine_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 9), y=Axis("w0", -1, 1, 5),
                                             steps=50), 1),
}


@pytest.mark.parametrize("case", MAPS)
def test_to_xarray_names_dims_and_coords_as_the_file_does(tmp_path, case):
    m = MAPS[case]()
    m.save(tmp_path / "m.h5")
    memory = m.to_xarray()
    with xr.open_dataset(tmp_path / "m.h5", engine="h5netcdf") as stored:
        assert dict(memory.sizes) == dict(stored.sizes)
        assert set(memory.coords) == set(stored.coords)
        for name in stored.coords:  # values, dimension and attributes
            xr.testing.assert_identical(memory[name], stored[name])
        assert set(memory.data_vars) == set(stored.data_vars)
        for name in stored.data_vars:
            assert memory[name].dims == stored[name].dims, name
            np.testing.assert_array_equal(memory[name].values, stored[name].values)
            assert memory[name].attrs["description"] == stored[name].attrs["description"]


def test_to_xarray_labels_with_the_knobs():
    m = MAPS["two knobs"]()
    dataset = m.to_xarray()
    assert dataset["outcome"].dims == ("a", "lr") and dataset["lr"].attrs == {"long_name": "lr", "axis_scale": "linear"}
    np.testing.assert_array_equal(dataset["score"].values, m.fields["score"])
    np.testing.assert_array_equal(dataset["a"].values, m.y)
    assert "quadratic" in dataset.attrs["spec"]
