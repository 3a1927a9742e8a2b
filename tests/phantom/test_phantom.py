"""Synthetic IC phantoms (layer stack, wiring, vias, materials) and the analytic test objects."""
import json
import math
import time

import numpy as np
import pydantic
import pytest
import xraylib

from rapidtomo.phantom import (LABELS, ICSettings, analytic_phantom, material_constants, metal_fraction, synthetic_ic,
                               synthetic_ic_labels)
from rapidtomo.phantom.figure import main as figure_main
from rapidtomo.phantom.figure import save_views
from rapidtomo.physics.geometry import wavelength_m

CU, W = LABELS["Cu"], LABELS["W"]


def layers_of(volume):
    return [tuple(layer) for layer in json.loads(volume.attrs["layers"])]


def runs(mask, axis):
    """Lengths of the runs of True along ``axis`` of a 2D mask."""
    m = np.moveaxis(mask, axis, -1).astype(np.int8)
    d = np.diff(np.pad(m, [(0, 0), (1, 1)]), axis=-1)
    return np.flatnonzero(d.ravel() == -1) - np.flatnonzero(d.ravel() == 1)


@pytest.fixture(scope="module")
def default():
    labels, layers = synthetic_ic_labels((64, 128, 128), seed=3)
    return labels, layers


@pytest.mark.parametrize("shape", [(32, 64, 128), (33, 47, 61), (8, 16, 16), (283, 24, 20)])
def test_shapes_dtypes_and_contiguous_layers(shape):
    v = synthetic_ic(shape, (2e-8, 2e-8, 2e-8), seed=1)
    assert v.shape == shape and v.data.dtype == np.float32 and v.attenuation.dtype == np.float32
    assert v.attenuation.shape == shape and v.attrs["quantity"] == "phase_rad_per_voxel"
    z = [(l[0], l[1]) for l in layers_of(v)]  # bottom → top: z decreases
    assert z[0][1] == shape[0] and z[-1][0] == 0 and all(a[0] == b[1] for a, b in zip(z, z[1:]))
    assert all(z1 - z0 >= 1 for z0, z1 in z)
    assert v.attrs["n_layers"] == len(z) == min(13, shape[0]) - (min(13, shape[0]) % 2 == 0)
    labels, _ = synthetic_ic_labels(shape, seed=1)
    assert labels.dtype == np.uint8 and labels.shape == shape


def test_small_z_reduces_layers_and_says_so():
    v = synthetic_ic((8, 32, 32), (1e-8,) * 3)
    layers = layers_of(v)
    assert v.attrs["n_layers_requested"] == 13 and v.attrs["n_layers"] == len(layers) == 7
    assert [l[2] for l in layers][:3] == ["substrate", "contact", "metal"] and layers[-1][2] == "metal"


def test_default_stack_alternates_and_grows(default):
    _, layers = default
    assert len(layers) == 13
    assert [l[2] for l in layers] == ["substrate", "contact"] + ["metal", "via"] * 5 + ["metal"]
    metals = [l for l in layers if l[2] == "metal"]  # bottom first
    dirs = [l[5] for l in metals]
    assert dirs[0] == "x" and all(a != b for a, b in zip(dirs, dirs[1:]))
    pitches, widths = [l[3] for l in metals], [l[4] for l in metals]
    assert all(b >= a for a, b in zip(pitches, pitches[1:])) and pitches[-1] > 2 * pitches[0]
    assert all(b >= a for a, b in zip(widths, widths[1:])) and widths[-1] > 2 * widths[0] and widths[0] >= 2
    thick = [l[1] - l[0] for l in metals]
    assert thick[-1] > thick[0]


def test_lines_run_along_their_direction_and_are_two_voxels_wide(default):
    labels, layers = default
    for z0, z1, kind, pitch, width, direction in layers:
        if kind != "metal":
            continue
        cu = labels[(z0 + z1) // 2] == CU
        along, across = (1, 0) if direction == "x" else (0, 1)
        assert runs(cu, along).mean() > 2 * runs(cu, across).mean() and runs(cu, along).max() > 4 * width
        assert runs(cu, across).min() >= 2 and runs(cu, across).max() == width
        n_lines = len(np.unique(np.nonzero(cu)[across]) // pitch)
        assert n_lines >= 3  # several lines per layer
        assert np.all(labels[z0:z1] == labels[z0])  # a layer is uniform along z


def test_vias_and_contacts_connect_lines(default):
    labels, layers = default
    for k, (z0, z1, kind, _, side, _) in enumerate(layers):
        if kind == "via":
            below, above = labels[layers[k - 1][0]] == CU, labels[layers[k + 1][0]] == CU
            via = labels[z0] == CU
            assert via.any() and not np.any(via & ~(below & above))
            assert runs(via, 0).min() >= 2 and runs(via, 1).min() >= 2
        if kind == "contact":
            m1 = labels[layers[k + 1][0]] == CU
            plugs = labels[z0] == W  # the upper part holds the contacts only
            assert plugs.any() and not np.any(plugs & ~m1)
            assert (labels[z1 - 1] == W).sum() > plugs.sum()  # gates below
    sub = labels[layers[0][0]:layers[0][1]]
    assert np.all(sub[:, 20:-20, 20:-20] == LABELS["Si"])


def test_air_margin_around_a_filled_plate():
    s = ICSettings(margin_fraction=0.1)
    labels, _ = synthetic_ic_labels((16, 40, 60), seed=0, settings=s)
    air = labels == LABELS["air"]
    assert air[:, :4].all() and air[:, -4:].all() and air[:, :, :6].all() and air[:, :, -6:].all()
    assert not air[:, 4:-4, 6:-6].any()
    assert not (synthetic_ic_labels((16, 40, 60), settings=ICSettings(margin_fraction=0))[0] == 0).any()


def test_seeds_give_different_layouts_with_the_same_statistics():
    a, la = synthetic_ic_labels((32, 64, 128), seed=0)
    b, _ = synthetic_ic_labels((32, 64, 128), seed=0)
    c, lc = synthetic_ic_labels((32, 64, 128), seed=7)
    np.testing.assert_array_equal(a, b)
    assert la == lc  # same stack, pitches and widths
    for z0, _, kind, *_ in la:
        if kind in ("metal", "via"):
            assert not np.array_equal(a[z0], c[z0])
    f = np.array([metal_fraction(synthetic_ic_labels((32, 64, 128), seed=s)[0]) for s in range(6)])
    assert f.min() > 0.1 and f.std() < 0.15 * f.mean()
    assert synthetic_ic((8, 16, 16), (1e-8,) * 3, seed=5).attrs["seed"] == 5


def test_phase_and_attenuation_follow_delta_and_beta():
    dz, e = 2.5e-8, 8.8
    shape = (16, 32, 32)
    labels, _ = synthetic_ic_labels(shape, seed=2)
    v = synthetic_ic(shape, (dz, 2e-8, 2e-8), energy_kev=e, seed=2)
    k = 2 * math.pi * dz / wavelength_m(e)
    for name, compound, rho in [("Cu", "Cu", 8.96), ("W", "W", 19.3), ("SiO2", "SiO2", 2.2), ("Si", "Si", 2.33)]:
        inside = labels == LABELS[name]
        assert inside.any()
        delta = 1 - xraylib.Refractive_Index_Re(compound, e, rho)
        beta = xraylib.Refractive_Index_Im(compound, e, rho)
        assert material_constants(e)[name] == pytest.approx((delta, beta))
        np.testing.assert_allclose(v.data[inside], k * delta, rtol=1e-6)
        np.testing.assert_allclose(v.attenuation[inside], k * beta, rtol=1e-6)
    assert np.all(v.data[labels == LABELS["air"]] == 0) and np.all(v.attenuation[labels == 0] == 0)


def test_material_constants_ballpark():
    d = material_constants(8.8)
    assert 1.5e-5 < d["Cu"][0] < 4e-5 and 1e-7 < d["Cu"][1] < 3e-6
    assert d["W"][0] > d["Cu"][0] > d["Si"][0] > d["SiO2"][0] > 0 and d["air"] == (0.0, 0.0)
    assert d["W"][1] > d["Cu"][1] > d["Si"][1] > 0
    assert material_constants(17.0)["Cu"][0] < d["Cu"][0]  # δ falls with energy


def test_bad_shapes_and_settings():
    with pytest.raises(ValueError):
        synthetic_ic((0, 16, 16))
    with pytest.raises(ValueError):
        synthetic_ic((16, 16))
    with pytest.raises(pydantic.ValidationError):
        ICSettings(n_layers=0)
    with pytest.raises(pydantic.ValidationError):
        ICSettings(line_width=3)  # unknown keys are refused
    with pytest.raises(pydantic.ValidationError):
        ICSettings(gap_length=(3, 1))


def test_analytic_phantom_is_not_mirror_symmetric():
    v = analytic_phantom((24, 16, 24), kind="spheres").data
    assert v.max() > 0 and v[0].max() == 0 and v[:, :, 0].max() == 0  # air all around
    for axis in (0, 2):
        assert np.abs(v - np.flip(v, axis)).sum() > 0.2 * np.abs(v).sum()
    c = analytic_phantom((24, 16, 24), kind="cubes").data
    assert np.count_nonzero(c) > np.count_nonzero(v)
    with pytest.raises(ValueError):
        analytic_phantom((8, 8, 8), kind="cones")


def test_figure(tmp_path):
    out = save_views(synthetic_ic((16, 24, 40), (1e-8,) * 3), tmp_path / "v.png", "t")
    figure_main([str(tmp_path / "c.png"), "--shape", "12", "16", "20"])
    for p in (out, tmp_path / "c.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timing_smoke(capsys):
    for shape in [(32, 64, 128), (64, 256, 256)]:
        t = time.perf_counter()
        synthetic_ic(shape, (1e-8,) * 3)
        with capsys.disabled():
            print(f"\nsynthetic_ic{shape}: {time.perf_counter() - t:.3f} s")
