import json
import math

import numpy as np
import pytest
import xraylib

from rapidtomo.phantom import LABELS, ICSettings, analytic_phantom, material_constants, synthetic_ic, synthetic_ic_labels
from rapidtomo.physics.geometry import wavelength_m


@pytest.mark.parametrize("shape", [(32, 64, 128), (33, 47, 61), (8, 16, 16), (120, 64, 64)])
def test_shapes_dtypes_and_layers(shape):
    v = synthetic_ic(shape, (2e-8, 2e-8, 2e-8), seed=1)
    assert v.shape == shape and v.data.dtype == np.float32 and v.attenuation.shape == shape
    layers = json.loads(v.attrs["layers"])
    z = sorted((l[0], l[1]) for l in layers)
    assert z[0][0] == 0 and z[-1][1] == shape[0] and all(a[1] == b[0] for a, b in zip(z, z[1:]))
    assert all(z1 > z0 for z0, z1 in z)


def test_default_has_13_layers_alternating_wiring_and_growing_pitch():
    v = synthetic_ic((64, 128, 128), (1e-8,) * 3)
    layers = json.loads(v.attrs["layers"])
    assert len(layers) == 13
    metals = sorted([l for l in layers if l[2] == "metal"], key=lambda l: -l[0])  # bottom first
    assert len(metals) == 6
    dirs = [l[5] for l in metals]
    assert all(a != b for a, b in zip(dirs, dirs[1:]))
    pitches = [l[3] for l in metals]
    widths = [l[4] for l in metals]
    assert all(b >= a for a, b in zip(pitches, pitches[1:])) and pitches[-1] > 2 * pitches[0]
    assert widths[-1] > widths[0] and min(widths) >= 2
    assert layers[0][2] == "substrate"


def test_seeded_layouts_differ_with_same_statistics():
    a, _ = synthetic_ic_labels((32, 64, 128), seed=0)
    b, _ = synthetic_ic_labels((32, 64, 128), seed=0)
    c, _ = synthetic_ic_labels((32, 64, 128), seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    fa, fc = (np.mean(x == LABELS["Cu"]) for x in (a, c))
    assert fa > 0.02 and abs(fa - fc) < 0.35 * fa


def test_phase_values_follow_delta():
    dz, e = 2.5e-8, 8.8
    labels, _ = synthetic_ic_labels((16, 32, 32))
    v = synthetic_ic((16, 32, 32), (dz, 2e-8, 2e-8), energy_kev=e)
    delta_cu = 1 - xraylib.Refractive_Index_Re("Cu", e, 8.96)
    assert 1e-5 < delta_cu < 4e-5
    assert material_constants(e)["Cu"][0] == pytest.approx(delta_cu)
    cu = labels == LABELS["Cu"]
    np.testing.assert_allclose(v.data[cu], 2 * math.pi * delta_cu * dz / wavelength_m(e), rtol=1e-6)
    assert np.all(v.data[labels == LABELS["air"]] == 0)
    d = material_constants(e)
    assert d["W"][0] > d["Cu"][0] > d["Si"][0] > 0 and d["W"][1] > d["Cu"][1] > d["SiO2"][1]


def test_small_z_reduces_layers():
    v = synthetic_ic((6, 16, 16), (1e-8,) * 3, settings=ICSettings())
    assert len(json.loads(v.attrs["layers"])) <= 6


def test_analytic_phantom_is_not_mirror_symmetric():
    v = analytic_phantom((24, 16, 24), kind="spheres").data
    assert v.max() > 0 and v[0].max() == 0 and v[:, :, 0].max() == 0  # air all around
    for axis in (0, 2):
        assert np.abs(v - np.flip(v, axis)).sum() > 0.2 * np.abs(v).sum()
    c = analytic_phantom((24, 16, 24), kind="cubes").data
    assert np.count_nonzero(c) > np.count_nonzero(v)
    with pytest.raises(ValueError):
        analytic_phantom((8, 8, 8), kind="cones")
