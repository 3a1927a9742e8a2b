"""rapidtomo import cxi: CXI files written here at the documented paths round-trip to the original scan."""
import json

import h5py
import numpy as np
import pytest

from rapidtomo.cli import main
from rapidtomo.io import ScanData, read_scan, write_scan

EV_J = 1.602176634e-19
STAGE_OFFSET = np.array([1.2e-3, -0.7e-3, 3e-4])  # motor readings (x, y, z): the scan's centre is not at 0
DEAD = [(0, 0), (3, 5), (7, 2)]


def small_scan(rng, n_angles=3, h=8):
    """A scan with the same centred 3x3 grid of positions at every angle and dead pixels at 0."""
    g = (np.arange(3) - 1) * 90e-9
    pos = np.stack(np.meshgrid(g, g * 1.5, indexing="ij"), -1).reshape(-1, 2)
    I = (rng.random((n_angles, len(pos), h, h)) * 100).astype(np.float32)
    for r, c in DEAD:
        I[:, :, r, c] = 0
    probe = (rng.normal(size=(2, h, h)) + 1j * rng.normal(size=(2, h, h))).astype(np.complex64)
    scan = ScanData(I, pos, np.linspace(-30, 30, n_angles), probe, 8.8, 0.5, 75e-6, (4, 6, 8), (1, 1, 1))
    dx = scan.pixel_size_m
    scan.voxel_size_m = (dx, dx, dx)
    return scan


def write_cxi(path, scan: ScanData, angles: list[int], *, probe=True, energy_j=None, angle=True, data_path="data_1/data",
              translation_path="sample_1/geometry_1/translation", mask=True, garbage=True, dead=DEAD):
    """CXI file with one /entry_N per angle index: patterns (with garbage under the mask of the
    ``dead`` pixels if ``garbage``), sample translations."""
    with h5py.File(path, "w") as f:
        for n, i in enumerate(angles, start=1):
            e = f.create_group(f"entry_{n}")
            I = scan.intensities[i].astype(np.float64).copy()
            if mask and garbage:  # garbage under the mask: the importer must not look at it
                I[:, 0, 0], I[:, 3, 5], I[:, 7, 2] = np.nan, -1.0, 65535.0
            e[data_path] = I
            det = e.require_group("instrument_1/detector_1")
            det["distance"] = scan.detector_distance_m
            det["x_pixel_size"] = det["y_pixel_size"] = scan.detector_pixel_m
            if mask:
                m = np.zeros(I.shape[1:], np.uint32)
                for r, c in dead:
                    m[r, c] = 1
                det["mask"] = m
            e["instrument_1/source_1/energy"] = energy_j if energy_j is not None else scan.energy_kev * 1e3 * EV_J
            y, x = scan.positions_m[i, :, 0], scan.positions_m[i, :, 1]
            e[translation_path] = np.stack([-x, -y, np.zeros_like(x)], -1) + STAGE_OFFSET
            if probe:
                e["instrument_1/source_1/illumination"] = scan.probe
            if angle:
                e["ptychodus/tomography_angle_deg"] = scan.angles_deg[i]


def run_import(*argv):
    return main(["import", *map(str, argv)])


def assert_same_scan(r: ScanData, s: ScanData):
    np.testing.assert_array_equal(r.intensities, s.intensities)
    np.testing.assert_allclose(r.positions_m, s.positions_m, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.angles_deg, s.angles_deg)
    np.testing.assert_array_equal(r.probe, s.probe)
    assert r.energy_kev == pytest.approx(s.energy_kev, rel=1e-12)
    assert r.detector_distance_m == s.detector_distance_m and r.detector_pixel_m == s.detector_pixel_m
    assert r.volume_shape == s.volume_shape
    np.testing.assert_allclose(r.voxel_size_m, s.voxel_size_m, rtol=1e-12)


def test_cxi_per_angle_files_round_trip(tmp_path, rng, capsys):
    s = small_scan(rng)
    files = [tmp_path / f"angle_{i}.cxi" for i in range(s.n_angles)]
    for i, p in enumerate(files):
        write_cxi(p, s, [i])
    out = tmp_path / "scan.h5"
    assert run_import("cxi", *files, "-o", out, "--volume-shape", 4, 6, 8) == 0
    r = read_scan(out)
    assert_same_scan(r, s)
    assert sorted(map(tuple, np.argwhere(r.detector_mask))) == sorted(DEAD)
    text = capsys.readouterr().out
    assert "/entry_1/instrument_1/source_1/energy" in text and "3 bad detector pixels" in text
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["stage"] == "import" and "read" in info["timings_s"]
    assert info["report"]["fields"]["/entry_1/data_1/data"]["files"] == 3


def test_cxi_of_a_simulated_scan_round_trips(tmp_path):
    from rapidtomo.simulate import SimulateSettings, simulate
    settings = SimulateSettings(shape=(4, 8, 16), detector_size=8, n_nominal=3, n_reduced=1, photons=1000,
                                scan_step_px=4, device="cpu")
    s = simulate(settings)[1]
    write_cxi(tmp_path / "all.cxi", s, [0, 1, 2], mask=False)
    assert run_import("cxi", tmp_path / "all.cxi", "-o", tmp_path / "scan.h5", "--volume-shape", 4, 8, 16) == 0
    r = read_scan(tmp_path / "scan.h5")
    assert_same_scan(r, s)
    assert r.detector_mask is None


def test_cxi_one_file_many_entries_and_alternative_paths(tmp_path, rng):
    s = small_scan(rng)
    write_cxi(tmp_path / "all.cxi", s, [0, 1, 2], data_path="instrument_1/detector_1/data",
              translation_path="data_1/translation")
    assert run_import("cxi", tmp_path / "all.cxi", "-o", tmp_path / "scan.h5", "--volume-shape", 4, 6, 8) == 0
    assert_same_scan(read_scan(tmp_path / "scan.h5"), s)


def test_cxi_probe_in_image_1_unless_it_is_the_object(tmp_path, rng, capsys):
    s = small_scan(rng, n_angles=1)
    write_cxi(tmp_path / "a.cxi", s, [0], probe=False)
    with h5py.File(tmp_path / "a.cxi", "a") as f:
        f["entry_1/image_1/data"] = np.ones((40, 40), np.complex64)  # a reconstructed object, not a probe
    assert run_import("cxi", tmp_path / "a.cxi", "-o", tmp_path / "s.h5", "--volume-shape", 4, 6, 8) == 2
    assert "give --probe" in capsys.readouterr().err
    with h5py.File(tmp_path / "a.cxi", "a") as f:
        del f["entry_1/image_1/data"]
        f["entry_1/image_1/data"] = s.probe
    assert run_import("cxi", tmp_path / "a.cxi", "-o", tmp_path / "s.h5", "--volume-shape", 4, 6, 8) == 0
    np.testing.assert_array_equal(read_scan(tmp_path / "s.h5").probe, s.probe)


def test_cxi_angles_csv_probe_file_and_no_center(tmp_path, rng):
    s = small_scan(rng, n_angles=2)
    write_scan(tmp_path / "probe_source.h5", s)
    files = [tmp_path / f"a{i}.cxi" for i in range(2)]
    for i, p in enumerate(files):
        write_cxi(p, s, [i], probe=False, angle=False)
    csv = tmp_path / "angles.csv"
    csv.write_text("file,angle_deg\na0.cxi,-30\na1.cxi,30\n")
    out = tmp_path / "scan.h5"
    assert run_import("cxi", *files, "-o", out, "--volume-shape", 4, 6, 8, "--angles-csv", csv,
                      "--probe", tmp_path / "probe_source.h5", "--no-center") == 0
    r = read_scan(out)
    np.testing.assert_array_equal(r.angles_deg, [-30, 30])
    np.testing.assert_array_equal(r.probe, s.probe)
    # without centring the stage offset stays: probe (y, x) = −(t_y, t_x)
    np.testing.assert_allclose(r.positions_m, s.positions_m - STAGE_OFFSET[[1, 0]], rtol=0, atol=1e-12)


def test_cxi_wavelength_instead_of_energy_and_another_angle_dataset(tmp_path, rng):
    s = small_scan(rng, n_angles=2)
    files = [tmp_path / f"a{i}.cxi" for i in range(2)]
    for i, p in enumerate(files):
        write_cxi(p, s, [i], angle=False)
        with h5py.File(p, "a") as f:
            del f["entry_1/instrument_1/source_1/energy"]
            f["entry_1/instrument_1/source_1/wavelength"] = s.wavelength_m
            f["entry_1/sample_1/rotation_deg"] = s.angles_deg[i]
    assert run_import("cxi", *files, "-o", tmp_path / "s.h5", "--volume-shape", 4, 6, 8,
                      "--angle-dataset", "/entry_1/sample_1/rotation_deg") == 0
    r = read_scan(tmp_path / "s.h5")
    assert r.energy_kev == pytest.approx(8.8, rel=1e-12)
    np.testing.assert_array_equal(r.angles_deg, s.angles_deg)


@pytest.mark.parametrize("field,value,words", [
    ("/entry_1/data_1/data", None, "/entry_1/data_1/data or /entry_1/instrument_1/detector_1/data"),
    ("/entry_1/data_1/data", np.zeros((9, 8)), "/entry_1/data_1/data must have 3 dimensions"),
    ("/entry_1/data_1/data", np.full((9, 8, 8), np.nan), "NaN or infinite values outside the mask"),
    ("/entry_1/instrument_1/detector_1/mask", np.zeros((4, 4)), "mask shape"),
    ("/entry_1/instrument_1/source_1/energy", 8800.0, "looks like eV"),
    ("/entry_1/instrument_1/source_1/energy", 8.8, "looks like keV"),
    ("/entry_1/instrument_1/source_1/energy", None, "energy or /entry_1/instrument_1/source_1/wavelength"),
    ("/entry_1/instrument_1/detector_1/distance", 500.0, "detector_1/distance = 500"),
    ("/entry_1/instrument_1/detector_1/x_pixel_size", 75.0, "x_pixel_size = 75"),
    ("/entry_1/instrument_1/detector_1/y_pixel_size", 55e-6, "differ"),
    ("/entry_1/sample_1/geometry_1/translation", np.zeros((9, 2)), "must be (n_pos, 3)"),
    ("/entry_1/sample_1/geometry_1/translation", np.full((9, 3), 5.0), "not a sample translation in metres"),
    ("/entry_1/sample_1/geometry_1/translation", None, "missing dataset /entry_1/sample_1/geometry_1/translation"),
    ("/entry_1/ptychodus/tomography_angle_deg", None, "missing dataset /entry_1/ptychodus/tomography_angle_deg"),
    ("/entry_1/ptychodus/tomography_angle_deg", np.nan, "tomography_angle_deg contains NaN"),
    ("/entry_1/instrument_1/source_1/illumination", None, "give --probe"),
    ("/entry_1/instrument_1/source_1/illumination", np.ones((2, 6, 6), np.complex64), "does not match the patterns"),
])
def test_cxi_malformed_is_one_line_exit_2_nothing_written(tmp_path, rng, capsys, replace_dataset, field, value,
                                                         words):
    s = small_scan(rng, n_angles=2)
    files = [tmp_path / f"a{i}.cxi" for i in range(2)]
    for i, p in enumerate(files):
        write_cxi(p, s, [i])
    for p in files if "illumination" in field else files[:1]:  # a probe in any file would do
        replace_dataset(p, field, value)
    out = tmp_path / "scan.h5"
    assert run_import("cxi", *files, "-o", out, "--volume-shape", 4, 6, 8) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(files[0]) in err and words in err, err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_cxi_inconsistent_files_and_missing_volume_shape(tmp_path, rng, capsys, replace_dataset):
    s = small_scan(rng, n_angles=2)
    files = [tmp_path / f"a{i}.cxi" for i in range(2)]
    for i, p in enumerate(files):
        write_cxi(p, s, [i])
    replace_dataset(files[1], "/entry_1/instrument_1/detector_1/distance", 0.6)
    assert run_import("cxi", *files, "-o", tmp_path / "s.h5", "--volume-shape", 4, 6, 8) == 2
    err = capsys.readouterr().err
    assert str(files[1]) in err and "distance 0.6 m differs from 0.5 m" in err
    assert run_import("cxi", *files, "-o", tmp_path / "s.h5") == 2
    assert "--volume-shape" in capsys.readouterr().err
    assert not (tmp_path / "s.h5").exists()


def test_cxi_negative_counts_clipped_and_saturation_level_read(tmp_path, rng, capsys):
    s = small_scan(rng, n_angles=1)
    write_cxi(tmp_path / "a.cxi", s, [0])
    with h5py.File(tmp_path / "a.cxi", "a") as f:
        d = f["entry_1/data_1/data"]
        d[0, 1, 1] = -3.0
        f["entry_1/instrument_1/detector_1/saturation_value"] = 90.0
    assert run_import("cxi", tmp_path / "a.cxi", "-o", tmp_path / "s.h5", "--volume-shape", 4, 6, 8) == 0
    r = read_scan(tmp_path / "s.h5")
    assert r.intensities[0, 0, 1, 1] == 0 and r.saturation_level == 90.0
    assert "1 negative counts" in capsys.readouterr().out
    assert run_import("cxi", tmp_path / "a.cxi", "-o", tmp_path / "s.h5", "--volume-shape", 4, 6, 8,
                      "--saturation-level", 50) == 0
    assert read_scan(tmp_path / "s.h5").saturation_level == 50.0


def test_cxi_with_dead_pixels_gives_the_original_approximant(tmp_path):
    """Issue #15's done-when: a CXI file at the published paths (sample translations, energy in J,
    a mask with dead pixels, the angle in the ptychodus extension) imports, its approximant matches
    the original scan's (PCC ≥ 0.99), and the dead pixels move it less with the mask than without."""
    from rapidtomo.metrics import pcc
    from rapidtomo.recon.approximant import ApproximantSettings, approximant
    from rapidtomo.simulate import SimulateSettings, simulate
    settings = SimulateSettings(shape=(8, 16, 32), detector_size=16, n_nominal=3, n_reduced=1, photons=1e5,
                                scan_step_px=4, model="fast", device="cpu")
    clean = simulate(settings)[1]
    dead = [(6, 9), (9, 5), (10, 10), (5, 5)]  # inside the central half the approximant keeps
    broken = ScanData(clean.intensities.copy(), clean.positions_m, clean.angles_deg, clean.probe, clean.energy_kev,
                      clean.detector_distance_m, clean.detector_pixel_m, clean.volume_shape, clean.voxel_size_m)
    hot = 20 * float(clean.intensities.max())
    for k, (r, c) in enumerate(dead):
        broken.intensities[:, :, r, c] = hot if k % 2 else 0.0  # stuck hot or dead
    volumes = {}
    for name, mask in (("masked", True), ("unmasked", False)):
        write_cxi(tmp_path / f"{name}.cxi", broken, [0, 1, 2], mask=mask, garbage=False, dead=dead)
        assert run_import("cxi", tmp_path / f"{name}.cxi", "-o", tmp_path / f"{name}.h5", "--volume-shape",
                          *clean.volume_shape) == 0
        volumes[name] = approximant(read_scan(tmp_path / f"{name}.h5"), ApproximantSettings(device="cpu")).data
    print("dead pixels", dead, "hot", hot)
    assert read_scan(tmp_path / "masked.h5").detector_mask.sum() == len(dead)
    reference = approximant(clean, ApproximantSettings(device="cpu")).data
    masked, unmasked = (float(pcc(volumes[k], reference)) for k in ("masked", "unmasked"))
    print(f"PCC vs the clean scan's approximant: with mask {masked:.4f}, without {unmasked:.4f}")
    assert masked >= 0.99
    assert np.linalg.norm(volumes["masked"] - reference) < np.linalg.norm(volumes["unmasked"] - reference)
    assert unmasked < masked


def test_cxi_import_reads_one_entry_at_a_time(tmp_path, rng, monkeypatch):
    from rapidtomo.io.importers import read_cxi
    from rapidtomo.io.importers.cxi import CxiPatterns
    s = small_scan(rng, n_angles=4)
    write_cxi(tmp_path / "all.cxi", s, [0, 1, 2, 3])
    scan = read_cxi([tmp_path / "all.cxi"], (4, 6, 8))
    assert isinstance(scan.intensities, CxiPatterns) and scan.intensities.reads == 0  # left in the file
    reads = []
    real = CxiPatterns._read
    monkeypatch.setattr(CxiPatterns, "_read", lambda self, k: (reads.append(k), real(self, k))[1])
    write_scan(tmp_path / "scan.h5", scan)
    assert reads == [0, 1, 2, 3]  # one entry at a time, each once
    assert_same_scan(read_scan(tmp_path / "scan.h5"), s)
