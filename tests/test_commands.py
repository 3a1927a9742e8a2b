"""Every command: flags built from the settings (real defaults in --help, config values not
overridden), .zarr volumes through train and predict, one-line errors, the paper preset."""
import json

import numpy as np
import pytest

from rapidtomo.cli import COMMANDS, build_parser, main
from rapidtomo.config import build_settings, preset
from rapidtomo.io import Volume, read_volume, write_volume


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_real_defaults_only(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "(default: None)" not in out and "(default: False)" not in out


def test_help_defaults_come_from_the_settings_fields(capsys):
    from rapidtomo.recon.two_step import TwoStepSettings
    from rapidtomo.train import TrainSettings
    for command, flag, default in (("train", "--epochs", TrainSettings.model_fields["epochs"].default),
                                   ("golden", "--sweeps", TwoStepSettings.model_fields["sweeps"].default),
                                   ("golden", "--method", "sart"), ("baseline", "--method", "fbp"),
                                   ("simulate", "--shape", "32 64 256")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split("options:")[1].split())
        after = text[text.index(flag + " "):]
        assert f"(default: {default})" in after[:400], (command, flag)


def test_config_values_are_not_overridden_by_flag_defaults(tmp_path):
    from rapidtomo.commands import golden
    from rapidtomo.commands.flags import settings_overrides
    from rapidtomo.recon.two_step import TwoStepSettings
    cfg = tmp_path / "c.toml"
    cfg.write_text("[baseline]\nsweeps = 3\nmethod = \"sart\"\n")
    parser = build_parser()
    fields = TwoStepSettings.model_fields
    args = parser.parse_args(["baseline", "s.h5", "-o", "o.h5", "--config", str(cfg), "--epochs", "4"])
    s = build_settings(TwoStepSettings, "baseline", args.config, settings_overrides(args, fields), {"method": "fbp"})
    assert (s.sweeps, s.method, s.epochs) == (3, "sart", 4)  # file, file (over the command's default), flag
    args = parser.parse_args(["baseline", "s.h5", "-o", "o.h5", "--no-refine-attenuation"])
    s = build_settings(TwoStepSettings, "baseline", None, settings_overrides(args, fields), golden.DEFAULTS)
    assert s.method == "sart" and s.refine_attenuation is False


def pair(za=4, ya=8, xa=40, seed=0):
    rng = np.random.default_rng(seed)
    g = (rng.random((za, 2 * ya, 2 * xa)) > 0.5).astype(np.float32)
    a = g[:, ::2, ::2] + 0.1 * rng.standard_normal((za, ya, xa)).astype(np.float32)
    return Volume(a, (2e-8, 2e-8, 2e-8)), Volume(g, (2e-8, 1e-8, 1e-8))


TINY_TRAIN = "[train]\nwidths = [2, 4]\nrates = [1, 2]\nz_rates = [2, 3]\npatch = 8\nepochs = 1\n"


def test_zarr_volumes_through_train_predict_and_export(tmp_path, one_thread):
    a, g = pair()
    write_volume(tmp_path / "a.zarr", a)
    write_volume(tmp_path / "g.zarr", g)
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY_TRAIN)
    model = tmp_path / "m.pt"
    assert main(["train", "--approximant", str(tmp_path / "a.zarr"), "--target", str(tmp_path / "g.zarr"),
                 "-o", str(model), "--config", str(cfg)]) == 0
    assert json.loads(model.with_suffix(".json").read_text())["sources"] == [str(tmp_path / "a.zarr"),
                                                                            str(tmp_path / "g.zarr")]
    out = tmp_path / "p.zarr"
    assert main(["predict", str(model), str(tmp_path / "a.zarr"), "-o", str(out)]) == 0
    p = read_volume(out)
    assert p.shape == g.shape and p.voxel_size_m == pytest.approx(g.voxel_size_m)
    assert json.loads(p.attrs["sources"]) == [str(model), str(tmp_path / "a.zarr")]
    assert json.loads((tmp_path / "p.json").read_text())["stage"] == "predict"
    assert main(["export-tiff", str(out)]) == 0 and (tmp_path / "p.tif").is_file()
    assert main(["evaluate", str(out), "--reference", f"golden={tmp_path / 'g.zarr'}", "-o", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics["vs_golden"]["p"]) == {"pcc", "ms_ssim", "ber", "dice"} and "evaluate" in metrics["timings_s"]


def test_a_patch_larger_than_the_volume_is_one_line(tmp_path, capsys):
    a, g = pair()
    write_volume(tmp_path / "a.h5", a)
    write_volume(tmp_path / "g.h5", g)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["train", "--approximant", str(tmp_path / "a.h5"), "--target", str(tmp_path / "g.h5"),
                 "-o", str(tmp_path / "m.pt"), "--patch", "16"]) == 2
    err = capsys.readouterr().err
    assert "a.h5" in err and "16×16 patch" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_pipeline_refuses_a_train_patch_that_does_not_fit_before_any_work(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[simulate]\nshape = [8, 32, 64]\n[train]\npreset = \"paper\"\n")
    assert main(["pipeline", str(tmp_path / "run"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "[train] patch 64" in err and "16 rows" in err and "at most 16" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["paper", "thick"])
def test_paper_preset_is_the_one_source_and_consistent(name):
    from rapidtomo.commands.simulate import settings_from_args
    from rapidtomo.config import preset_path
    from rapidtomo.physics.geometry import angle_set_deg, beam_grid, object_pixel_size_m, wavelength_m
    from rapidtomo.pipeline import Context, check_patch_fits, load_pipeline_config, stage_settings
    args = build_parser().parse_args(["simulate", "--preset", name, "--n-reduced", "9"])
    sim = settings_from_args(args)
    assert sim.shape == tuple(preset(name)["simulate"]["shape"]) and sim.n_reduced == 9
    # the voxel is the detector geometry's object pixel
    assert sim.voxel_size_m == pytest.approx(object_pixel_size_m(sim.energy_kev, sim.detector_distance_m,
                                                                 sim.detector_pixel_m, sim.detector_size), rel=1e-4)
    config, pipe = load_pipeline_config(preset_path(name))
    ctx = Context(None, config, pipe, stage_settings(config, pipe))
    check_patch_fits(ctx)  # the [train] patch fits the slab's approximant
    assert ctx.settings["train"].preset == ("paper" if name == "paper" else "small")
    # the golden standard's slices are thinner than the depth of field 2·dx²/λ at every angle
    # (docs/reconstruction.md): the operator's slabs split the sample's extent along the beam
    angles = np.deg2rad(angle_set_deg(sim.n_nominal, sim.theta_max_nominal_deg or sim.theta_max_deg))
    for name in ("golden", "fbp", "sart"):
        two = ctx.settings[name]
        grid = beam_grid(sim.shape, (sim.voxel_size_m,) * 3, (sim.detector_size,) * 2, two.n_slices)
        thickest = max(grid.slab_thickness_m(t) for t in angles)
        assert thickest <= 2 * sim.voxel_size_m ** 2 / wavelength_m(sim.energy_kev)


def test_thick_preset_is_in_the_papers_regime():
    """3.92 µm plate, ±70.4°, 12 modes, 14 nm voxels (28 nm approximant pixel) and the longest beam
    path through the plate about the approximant grid's depth of field (the paper: 11.7 / 11.3 µm)."""
    import math

    from rapidtomo.commands.pipeline import config_path
    from rapidtomo.config import preset_path
    from rapidtomo.physics.geometry import wavelength_m
    from rapidtomo.simulate import SimulateSettings
    sim = SimulateSettings(**preset("thick")["simulate"])
    Z, _, X = sim.shape
    half = math.radians(sim.theta_max_deg / 2)
    path = min(Z * sim.voxel_size_m / math.cos(half), X * sim.voxel_size_m / math.sin(half))
    dof = 2 * (2 * sim.voxel_size_m) ** 2 / wavelength_m(sim.energy_kev)
    assert Z * sim.voxel_size_m == pytest.approx(3.92e-6, rel=0.01) and sim.theta_max_deg == 140.8
    assert 0.95 < path / dof < 1.1 and sim.n_modes == 12
    assert sim.scan_steps_px[1] * sim.voxel_size_m == pytest.approx(100e-9, rel=0.05)  # the paper's x step
    # its 500 nm y step does not fit the 0.18 µm spot: rows of windows must overlap
    assert sim.scan_steps_px[0] < sim.spot_fraction * sim.detector_size
    for cmd in (["pipeline", "run"], ["demo"]):
        assert config_path(build_parser().parse_args(cmd + ["--preset", "thick"])) == preset_path("thick")
    assert config_path(build_parser().parse_args(["demo"])) == preset_path("demo")


def test_depth_of_field_note_names_the_slices_needed():
    from types import SimpleNamespace

    from rapidtomo.physics.geometry import wavelength_m
    from rapidtomo.stages import depth_of_field_note
    from rapidtomo.physics.geometry import angle_set_deg
    sim = preset("paper")["simulate"]
    scan = SimpleNamespace(intensities=np.zeros((1, 1, 256, 256)), volume_shape=tuple(sim["shape"]),
                           voxel_size_m=(sim["voxel_size_m"],) * 3, wavelength_m=wavelength_m(8.8),
                           angles_deg=angle_set_deg(sim["n_nominal"], sim["theta_max_deg"]))
    # the 3.94 × 7.21 µm plate is 8.22 µm deep along the beam near 61°
    note = depth_of_field_note(scan, 1)
    assert "thicker than the depth of field 2.82 µm" in note and "8.22 µm along the beam" in note
    assert "n_slices >= 3" in note
    assert depth_of_field_note(scan, preset("paper")["golden"]["n_slices"]) is None


def test_depth_of_field_note_uses_the_slabs_at_the_scans_angles():
    """The slices are the operator's: the sample's extent along the beam at each angle / n_slices,
    not the volume's diagonal; within ±10° the plate is 3.89-5.14 µm deep, so 2 slices suffice."""
    from types import SimpleNamespace

    from rapidtomo.physics.geometry import wavelength_m
    from rapidtomo.stages import depth_of_field_note
    sim = preset("paper")["simulate"]
    scan = SimpleNamespace(intensities=np.zeros((1, 1, 256, 256)), volume_shape=tuple(sim["shape"]),
                           voxel_size_m=(sim["voxel_size_m"],) * 3, wavelength_m=wavelength_m(8.8),
                           angles_deg=np.linspace(-10, 10, 5))
    assert depth_of_field_note(scan, 2) is None
    note = depth_of_field_note(scan, 1)
    assert "up to 5.14 µm thick" in note and "n_slices >= 2" in note
    scan.angles_deg = np.array([0.0])
    assert "3.94 µm along the beam" in depth_of_field_note(scan, 1)
