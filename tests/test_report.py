import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rapidtomo.cli import main
from rapidtomo.experiments.timing import acquisition_time_table, computation_from_stages, format_time_table
from rapidtomo.io import Volume, write_volume
from rapidtomo.report import build_report, plot_metric_curves, referenced_images
from rapidtomo.runinfo import write_run_info

CHROMIUM = Path("/usr/bin/chromium")
VOX = (28e-9, 28e-9, 28e-9)


def ic_like(rng, shape=(12, 32, 64)):
    """Layers of wires (x- or y-running) in air: a small IC-like two-phase volume."""
    v = np.zeros(shape)
    for z in range(2, shape[0] - 2, 3):
        for k in range(rng.integers(3, 7)):
            if z % 2:
                y = rng.integers(0, shape[1] - 3)
                v[z:z + 2, y:y + 2, 4:-4] = 1.0
            else:
                x = rng.integers(0, shape[2] - 3)
                v[z:z + 2, 2:-2, x:x + 2] = 1.0
    return v


def make_run(tmp_path: Path, rng, full: bool = True) -> Path:
    """A run directory like the pipeline's, from a synthetic phantom and degraded copies."""
    run = tmp_path / "run"
    run.mkdir()
    truth = ic_like(rng)
    write_volume(run / "golden.h5", Volume(truth + 0.05 * rng.normal(size=truth.shape), VOX))
    write_volume(run / "prediction.h5", Volume(truth + 0.2 * rng.normal(size=truth.shape), VOX))
    coarse = truth.reshape(12, 16, 2, 32, 2).mean((2, 4)) + 0.3 * rng.normal(size=(12, 16, 32))
    write_volume(run / "approximant.h5", Volume(coarse, (VOX[0], 2 * VOX[1], 2 * VOX[2])))
    if not full:
        return run
    write_volume(run / "phantom.h5", Volume(truth, VOX))
    write_volume(run / "sart.h5", Volume(truth + 0.4 * rng.normal(size=truth.shape), VOX))
    assert main(["evaluate", "--reference", str(run / "golden.h5"), "--reference", str(run / "phantom.h5"),
                 str(run / "prediction.h5"), str(run / "approximant.h5"), str(run / "sart.h5"),
                 "--region", "x=0.6:1.0"]) == 0
    (run / "timings.json").write_text(json.dumps({"simulate": 3.0, "golden": 120.0, "sart": 30.0,
                                                  "approximant": 5.0, "train": 60.0, "predict": 1.0}))
    (run / "pipeline_settings.json").write_text(json.dumps({"pipeline": {"seed": 0},
                                                            "simulate": {"n_nominal": 90, "n_reduced": 21}}))
    write_run_info(run / "train.run.json", "train", {"epochs": 3}, {"train": 60.0})
    with open(run / "model.log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "step", "lr", "train_loss", "val_loss"])
        w.writeheader()
        w.writerows({"epoch": e, "step": 10 * e, "lr": 1e-3, "train_loss": 1 / e, "val_loss": 1.2 / e}
                    for e in range(1, 6))
    records = [{"value": n, "method": m, "pcc": 1 - 1 / (n + k), "ms_ssim": 0.9 - 1 / (n + k), "ber": 0.1 / n,
                "dice": 1 - 0.1 / n, "seconds": 1.0} for n in (1, 5, 21) for k, m in ((1, "rapid"), (2, "approximant"))]
    (run / "sweep_angles.json").write_text(json.dumps({"kind": "angles", "records": records}))
    (run / "ablation.json").write_text(json.dumps([{"variant": v, "pcc": 0.9, "ms_ssim": 0.8, "ber": 0.05,
                                                    "dice": 0.9, "parameters": 1000} for v in "ABC"]))
    return run


def test_report_of_a_full_run_references_only_existing_images(rng, tmp_path):
    run = make_run(tmp_path, rng)
    index = build_report(run)
    assert index == run / "report" / "index.html"
    page = index.read_text()
    images = referenced_images(index)
    names = {p.name for p in images}
    assert all(p.is_file() and p.stat().st_size > 1000 for p in images)
    assert all(p.parent == index.parent for p in images)
    assert {"view_yz.png", "view_xz.png", "psd.png", "metrics_vs_golden.png", "metrics_vs_truth.png",
            "sweep_angles.png", "ablation.png", "training.png"} <= names
    assert len([n for n in names if n.startswith("view_xy_z")]) == 2
    for text in ("RAPID", "SART", "golden standard", "Table 1", "train.run.json", "fbp.h5"):
        assert text in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_report_skips_missing_pieces(rng, tmp_path):
    run = make_run(tmp_path, rng, full=False)
    index = build_report(run)
    names = {p.name for p in referenced_images(index)}
    assert all(p.is_file() for p in referenced_images(index))
    assert "psd.png" in names and not any(n.startswith(("metrics", "sweep", "training")) for n in names)
    # a golden standard made elsewhere, named in the pipeline settings; a corrupt metrics file is ignored
    (run / "golden.h5").rename(tmp_path / "my_golden.h5")
    (run / "pipeline_settings.json").write_text(json.dumps({"pipeline": {"golden": str(tmp_path / "my_golden.h5")}}))
    (run / "metrics.json").write_text("[1, 2")
    page = build_report(run).read_text()
    assert "golden standard" in page and "golden.h5" not in page.split("Not in this run")[-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert referenced_images(build_report(empty)) == []
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_plot_metric_curves_for_experiments(tmp_path):
    records = [{"theta_max_deg": t, "pcc": t / 200, "ms_ssim": 0.5, "ber": 0.1, "dice": 0.8} for t in (8, 32, 140.8)]
    png = plot_metric_curves(records, "theta_max_deg", tmp_path / "c.png", x_label="θmax (°)")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timing_model_reproduces_the_papers_table_1():
    h = 3600.0
    rows = acquisition_time_table({"golden": 66.5 * h, "rapid": 0.38 * h, "fbp": 4.86 * h, "sart": 9.53 * h},
                                  n_nominal=349, n_reduced=21, time_per_angle_s=129.0, volume_fraction=0.15)
    assert rows["golden"]["acquisition_s"] / h == pytest.approx(1.90, rel=0.02)
    assert rows["rapid"]["acquisition_s"] / h == pytest.approx(0.110, rel=0.03)
    assert rows["rapid"]["acquisition_ratio"] == pytest.approx(349 / 21)
    assert rows["rapid"]["computation_ratio"] == pytest.approx(175, rel=0.01)
    assert rows["rapid"]["total_ratio"] == pytest.approx(140, rel=0.02)
    assert rows["sart"]["total_ratio"] == pytest.approx(7, rel=0.02)
    for r in rows.values():
        assert r["total_s"] == pytest.approx(r["acquisition_s"] + r["computation_s"])
    assert rows["golden"]["total_ratio"] == 1.0
    assert "acquisition" in format_time_table(rows)
    assert computation_from_stages({"golden": 5, "approximant": 2, "predict": 1, "train": 50, "sart": 3}) == \
        {"golden": 5, "rapid": 3, "sart": 3}
    with pytest.raises(ValueError):
        acquisition_time_table({"rapid": 1.0}, 349, 21)


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_export_tiff_round_trip_with_voxel_size(rng, tmp_path, suffix):
    import tifffile
    data = rng.normal(size=(5, 7, 9)).astype(np.float32)
    src = write_volume(tmp_path / f"v{suffix}", Volume(data, (30e-9, 20e-9, 10e-9)))
    assert main(["export-tiff", str(src), "-o", str(tmp_path / "v.tif")]) == 0
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:
        np.testing.assert_array_equal(tif.asarray(), data)
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.03)
        assert tif.imagej_metadata["unit"] in ("um", "micron", "µm")
        xres = tif.pages[0].tags["XResolution"].value
        assert xres[0] / xres[1] == pytest.approx(1 / 0.01, rel=1e-4)
    assert main(["export-tiff", str(src), "-o", str(tmp_path / "v.png")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "v.tif"])


@pytest.mark.slow
def test_report_renders_in_headless_chromium(rng, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    from PIL import Image
    index = build_report(make_run(tmp_path, rng))
    assert all(p.is_file() for p in referenced_images(index))
    shot = tmp_path / "shot.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,1000",
           index.resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape == (1000, 1400)
    assert img.std() > 10 and (img < 128).mean() > 0.01  # not a blank page: text and figures are drawn
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
