"""Streamed scan files: lazy per-angle patterns checked as read, and the atomic, resumable writer."""
import pickle

import h5py
import numpy as np
import pytest

from rapidtomo.errors import UserError
from rapidtomo.io import Patterns, ScanData, ScanWriter, open_scan, read_scan, write_scan


def small_scan(rng, n_angles=4, n_pos=5, h=8):
    return ScanData(rng.random((n_angles, n_pos, h, h)).astype(np.float32) * 100,
                    rng.normal(size=(n_pos, 2)) * 1e-7, np.linspace(-10, 10, n_angles),
                    (rng.normal(size=(1, h, h)) + 1j * rng.normal(size=(1, h, h))).astype(np.complex64),
                    8.8, 0.5, 75e-6, (4, 6, 8), (28e-9,) * 3, {"note": "x"})


def header(path, scan):
    """The scan with patterns of ``path`` that a ScanWriter is to write (shape only)."""
    return ScanData(Patterns(path, shape=scan.intensities.shape), scan.positions_m, scan.angles_deg, scan.probe,
                    scan.energy_kev, scan.detector_distance_m, scan.detector_pixel_m, scan.volume_shape,
                    scan.voxel_size_m, dict(scan.attrs))


def test_patterns_are_chunked_by_angle_and_read_one_angle_at_a_time(tmp_path, rng):
    s = small_scan(rng)
    write_scan(tmp_path / "s.h5", s)
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["/entry/data/intensities"].chunks[0] == 1
    lazy = open_scan(tmp_path / "s.h5")
    I = lazy.intensities
    assert isinstance(I, Patterns) and I.shape == s.intensities.shape and I.reads == 0
    np.testing.assert_array_equal(I[2], s.intensities[2])
    np.testing.assert_array_equal(I[-1], s.intensities[-1])
    assert I.reads == 2
    np.testing.assert_array_equal(I[1:3, :, ::2], s.intensities[1:3, :, ::2])
    np.testing.assert_array_equal(np.asarray(I), s.intensities)
    sub = lazy.subset([3, 0])  # a view: nothing read
    assert isinstance(sub.intensities, Patterns) and sub.intensities.reads == 0 and sub.n_angles == 2
    np.testing.assert_array_equal(sub.intensities[0], s.intensities[3])
    again = pickle.loads(pickle.dumps(sub.intensities))  # a worker process reopens the file
    np.testing.assert_array_equal(again[1], s.intensities[0])
    np.testing.assert_array_equal(read_scan(tmp_path / "s.h5").intensities, s.intensities)


@pytest.mark.parametrize("value,words", [(np.nan, "NaN"), (-1.0, "negative")])
def test_a_bad_angle_is_named_in_one_line_when_read(tmp_path, rng, value, words):
    path = tmp_path / "s.h5"
    write_scan(path, small_scan(rng))
    with h5py.File(path, "a") as f:
        f["/entry/data/intensities"][2, 1, 3, 3] = value
    I = open_scan(path).intensities  # opening reads no patterns
    I[1]
    with pytest.raises(UserError) as e:
        I[2]
    msg = str(e.value)
    assert str(path) in msg and "/entry/data/intensities" in msg and words in msg and "angle 2" in msg
    assert "\n" not in msg
    with pytest.raises(UserError, match=words):  # read whole, as before
        read_scan(path)


def test_scan_writer_is_atomic_and_resumes_at_the_first_angle_not_written(tmp_path, rng):
    s = small_scan(rng)
    path = tmp_path / "s.h5"
    with ScanWriter(path, header(path, s), key="k1") as w:  # killed after two angles
        assert w.todo() == [0, 1, 2, 3]
        for i in (0, 1):
            w.write_angle(i, s.intensities[i])
    assert not path.exists()  # no half-written scan under the final name
    partial = tmp_path / ".s.h5.partial"
    assert partial.exists()
    with ScanWriter(path, header(path, s), key="k1") as w:
        assert w.todo() == [2, 3]
        for i in w.todo():
            w.write_angle(i, s.intensities[i])
        assert w.finish() == path
    assert not partial.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    r = read_scan(path)
    np.testing.assert_array_equal(r.intensities, s.intensities)
    with h5py.File(path) as f:
        assert "angles_done" not in f["/entry/data/intensities"].attrs
    # another key, or a partial file killed mid-write, starts afresh
    with ScanWriter(path, header(path, s), key="k1") as w:
        w.write_angle(0, s.intensities[0])
    with ScanWriter(path, header(path, s), key="k2") as w:
        assert w.todo() == [0, 1, 2, 3]
    partial.write_bytes(b"truncated")
    with ScanWriter(path, header(path, s), key="k2") as w:
        assert w.todo() == [0, 1, 2, 3]
        with pytest.raises(ValueError, match="not written"):
            w.finish()
    np.testing.assert_array_equal(read_scan(path).intensities, s.intensities)  # the finished file untouched


def test_failed_scan_write_leaves_no_file(tmp_path, rng, monkeypatch):
    def boom(self, i, patterns):
        raise RuntimeError("disk full")
    monkeypatch.setattr(ScanWriter, "write_angle", boom)
    with pytest.raises(RuntimeError):
        write_scan(tmp_path / "s.h5", small_scan(rng))
    assert list(tmp_path.iterdir()) == []


def test_uncompressed_scan_round_trip(tmp_path, rng):
    s = small_scan(rng)
    write_scan(tmp_path / "s.h5", s, compress=False)
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["/entry/data/intensities"].compression is None
    np.testing.assert_array_equal(open_scan(tmp_path / "s.h5").intensities[3], s.intensities[3])
