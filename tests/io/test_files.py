"""Scan and volume files: round trips, one-line errors naming file and field, atomic writes."""
import h5py
import numpy as np
import pytest

from rapidtomo.errors import UserError
from rapidtomo.io import ScanData, Volume, read_scan, read_volume, write_scan, write_volume


def small_scan(rng, n_angles=3, n_pos=4, h=8):
    return ScanData(rng.random((n_angles, n_pos, h, h)).astype(np.float32) * 100,
                    rng.normal(size=(n_pos, 2)) * 1e-7, np.linspace(-10, 10, n_angles),
                    (rng.normal(size=(2, h, h)) + 1j * rng.normal(size=(2, h, h))).astype(np.complex64),
                    8.8, 0.5, 75e-6, (4, 6, 8), (28e-9, 28e-9, 28e-9), {"n_slabs": 5, "note": "x"})


def test_scan_round_trip(tmp_path, rng):
    s = small_scan(rng)
    write_scan(tmp_path / "s.h5", s)
    r = read_scan(tmp_path / "s.h5")
    np.testing.assert_array_equal(r.intensities, s.intensities)
    np.testing.assert_array_equal(r.positions_m, s.positions_m)
    assert r.positions_m.shape == (3, 4, 2)
    np.testing.assert_array_equal(r.probe, s.probe)
    assert r.volume_shape == (4, 6, 8) and r.voxel_size_m == s.voxel_size_m and r.attrs["n_slabs"] == 5
    assert r.pixel_size_m == pytest.approx(1.409e-10 * 0.5 / (8 * 75e-6), rel=1e-3)
    sub = r.subset([0, 2])
    assert sub.n_angles == 2 and sub.angles_deg.tolist() == [-10, 10]


def test_scan_round_trip_of_detector_mask_saturation_and_true_positions(tmp_path, rng):
    s = small_scan(rng)
    mask = np.zeros((8, 8), bool)
    mask[2, 3] = mask[7, 0] = True
    s.detector_mask, s.saturation_level = mask, 90.0
    s.true_positions_m = s.positions_m + rng.normal(size=s.positions_m.shape) * 1e-9
    write_scan(tmp_path / "s.h5", s)
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["/entry/instrument/detector_mask"].dtype == np.uint8
    r = read_scan(tmp_path / "s.h5")
    np.testing.assert_array_equal(r.detector_mask, mask)
    np.testing.assert_array_equal(r.true_positions_m, s.true_positions_m)
    assert r.saturation_level == 90.0 and r.subset([1]).true_positions_m.shape == (1, 4, 2)
    write_scan(tmp_path / "plain.h5", small_scan(rng))
    plain = read_scan(tmp_path / "plain.h5")
    assert plain.detector_mask is None and plain.saturation_level is None and plain.true_positions_m is None


def test_volume_round_trip_with_attenuation(tmp_path, rng):
    v = Volume(rng.random((3, 4, 5)).astype(np.float32), (1e-8, 2e-8, 2e-8), {"quantity": "phase", "list": [1, 2]},
               attenuation=rng.random((3, 4, 5)))
    write_volume(tmp_path / "v.h5", v)
    r = read_volume(tmp_path / "v.h5")
    np.testing.assert_array_equal(r.data, v.data)
    np.testing.assert_array_equal(r.attenuation, v.attenuation)
    assert r.voxel_size_m == (1e-8, 2e-8, 2e-8) and r.attrs["quantity"] == "phase"
    assert r.extent_m == pytest.approx((3e-8, 8e-8, 1e-7))


@pytest.mark.parametrize("dataset,value,words", [
    ("/entry/data/angles_deg", np.zeros(5), "angles_deg"),
    ("/entry/data/intensities", None, "missing dataset /entry/data/intensities"),
    ("/entry/data/intensities", np.full((3, 4, 8, 8), np.nan, np.float32), "NaN"),
    ("/entry/data/intensities", -np.ones((3, 4, 8, 8), np.float32), "negative"),
    ("/entry/data/positions_m", np.zeros((3, 5, 2)), "positions_m"),
    ("/entry/probe", np.zeros((2, 6, 6), np.complex64), "/entry/probe"),
    ("/entry/instrument/energy_kev", -1.0, "energy_kev"),
    ("/entry/instrument/detector_mask", np.zeros((4, 4), np.uint8), "detector_mask shape"),
    ("/entry/instrument/saturation_level", -5.0, "saturation_level must be positive"),
])
def test_malformed_scan_gives_one_clear_line(tmp_path, rng, replace_dataset, dataset, value, words):
    path = tmp_path / "bad.h5"
    scan = small_scan(rng)
    scan.detector_mask, scan.saturation_level = np.zeros((8, 8), bool), 100.0
    write_scan(path, scan)
    replace_dataset(path, dataset, value)
    with pytest.raises(UserError) as e:
        read_scan(path)
    msg = str(e.value)
    assert str(path) in msg and words in msg and "\n" not in msg


def test_not_hdf5_and_missing_file(tmp_path):
    (tmp_path / "junk.h5").write_text("not hdf5")
    for p in (tmp_path / "junk.h5", tmp_path / "none.h5"):
        with pytest.raises(UserError, match=str(p)):
            read_scan(p)
        with pytest.raises(UserError, match=str(p)):
            read_volume(p)


def test_malformed_volume(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["volume"] = np.zeros((2, 2))
    with pytest.raises(UserError, match="3D"):
        read_volume(tmp_path / "v.h5")
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f["volume"] = np.zeros((2, 2, 2))
    with pytest.raises(UserError, match="voxel_size_m"):
        read_volume(tmp_path / "w.h5")


def test_failed_write_leaves_existing_file_untouched(tmp_path, rng, monkeypatch):
    path = tmp_path / "v.h5"
    write_volume(path, Volume(np.ones((2, 2, 2)), (1, 1, 1)))
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(h5py.File, "create_dataset", boom)
    with pytest.raises(RuntimeError):
        write_volume(path, Volume(np.zeros((2, 2, 2)), (1, 1, 1)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.h5"]  # no temporary left behind


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_volume_round_trip_both_formats_and_streaming_open(tmp_path, rng, suffix):
    from rapidtomo.io import open_volume
    v = Volume(rng.random((3, 4, 5)).astype(np.float32), (1e-8, 2e-8, 2e-8),
               {"quantity": "phase", "settings": {"a": 1}, "n": np.int64(3)}, attenuation=rng.random((3, 4, 5)))
    path = write_volume(tmp_path / f"v{suffix}", v)
    r = read_volume(path)
    np.testing.assert_array_equal(r.data, v.data)
    np.testing.assert_array_equal(r.attenuation, v.attenuation)
    assert r.voxel_size_m == v.voxel_size_m and r.attrs["quantity"] == "phase" and r.attrs["n"] == 3
    assert type(r.attrs["n"]) is int  # plain Python, so the attributes go on into JSON provenance
    with open_volume(path) as f:  # slices read without loading the rest
        assert f.shape == (3, 4, 5)
        np.testing.assert_array_equal(f.data[:, 1:3, 4:5], v.data[:, 1:3, 4:5])
    write_volume(path, Volume(np.zeros((2, 2, 2)), (1, 1, 1)))  # replaces an existing file or store
    assert read_volume(path).shape == (2, 2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"v{suffix}"]


def test_failed_zarr_write_leaves_existing_store_untouched(tmp_path):
    from rapidtomo.io import create_volume
    path = write_volume(tmp_path / "v.zarr", Volume(np.ones((2, 2, 2)), (1, 1, 1)))
    with pytest.raises(RuntimeError):
        with create_volume(path, (4, 4, 4), (1, 1, 1)) as f:
            f.data[:2] = 0
            raise RuntimeError("killed half-way")
    np.testing.assert_array_equal(read_volume(path).data, np.ones((2, 2, 2)))
    assert [p.name for p in tmp_path.iterdir()] == ["v.zarr"]


def test_malformed_zarr_gives_one_clear_line(tmp_path):
    import zarr
    (tmp_path / "empty.zarr").mkdir()
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w").create_array("other", shape=(2,), dtype="f4")
    for name, words in (("empty.zarr", "not a readable zarr store"), ("g.zarr", "missing array /volume"),
                        ("none.zarr", "file not found")):
        with pytest.raises(UserError) as e:
            read_volume(tmp_path / name)
        assert str(tmp_path / name) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)
