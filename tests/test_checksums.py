"""Map files carry a Fletcher-32 checksum on every chunk: a flipped bit on disk is found when read, not shown."""

import h5py
import pytest

import descentsim as ds


def test_a_flipped_bit_in_a_field_chunk_is_refused(tmp_path):
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.0, 64), y=ds.Axis("a", 0.5, 2.0, 32), steps=40)
    path = tmp_path / "map.h5"
    ds.run_map(spec).save(path)
    with h5py.File(path, "r") as f:
        assert f["outcome"].fletcher32 and f["steps"].fletcher32
        chunk = f["steps"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + chunk.size // 2] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(ds.MapFileError, match="damaged"):
        ds.open_map(path)
