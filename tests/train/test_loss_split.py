import numpy as np
import pytest
import torch

from rapidtomo.errors import UserError
from rapidtomo.io import Volume
from rapidtomo.train import (TrainSettings, heldout_region, npcc, patch_starts, poly_lr, prepare_pairs,
                             resample_z, validation_index)


def test_npcc_of_identical_volumes_is_minus_one():
    x = torch.randn(3, 1, 4, 8, 8)
    assert float(npcc(x, x.clone())) == pytest.approx(-1.0, abs=1e-6)
    assert float(npcc(x, -x)) == pytest.approx(1.0, abs=1e-6)
    # invariant to an affine map of either argument (per sample)
    assert float(npcc(3 * x + 2, x)) == pytest.approx(-1.0, abs=1e-6)
    y = torch.randn(3, 1, 4, 8, 8)
    v = float(npcc(x, y))
    assert -1 < v < 1
    ref = -np.mean([np.corrcoef(x[i].ravel(), y[i].ravel())[0, 1] for i in range(3)])
    assert v == pytest.approx(ref, abs=1e-5)


def test_poly_schedule_endpoints_and_shape():
    assert poly_lr(0, 100) == pytest.approx(2e-4)
    assert poly_lr(100, 100) == pytest.approx(5e-5)
    assert poly_lr(1000, 100) == pytest.approx(5e-5)
    assert poly_lr(75, 100) == pytest.approx((2e-4 - 5e-5) * 0.5 + 5e-5)  # (1 − 0.75)^0.5 = 0.5
    lrs = [poly_lr(s, 50) for s in range(51)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("n, p", [(16, 8), (17, 8), (40, 16), (8, 8), (5, 8)])
def test_patch_starts_cover_with_half_overlap(n, p):
    starts = patch_starts(n, p, 0.5)
    if n < p:
        assert starts == []
        return
    covered = np.zeros(n, bool)
    for s in starts:
        assert 0 <= s <= n - p
        covered[s:s + p] = True
    assert covered.all()
    assert all(b - a <= p // 2 for a, b in zip(starts, starts[1:]))


def test_split_keeps_training_patches_out_of_the_heldout_part(make_pair):
    a, g = make_pair(xa=41)
    s = TrainSettings(train_fraction=0.6, **{"patch": 8})
    sa, sg = heldout_region(a.shape, s)
    assert (sa.start, sa.stop) == (24, 41) and (sg.start, sg.stop) == (48, 82)
    data, _ = prepare_pairs(a, g, 8, 0.5, 0.6)
    assert data.x_split == sa.start
    assert (data.corners[:, 1] + 8 <= sa.start).all()
    assert (data.corners[:, 0] + 8 <= a.shape[1]).all()
    # target patches are the same region on the 2x grid
    (x, f), y = data.batch([0, len(data.corners) - 1])
    assert x.shape == (2, 1, 6, 8, 8) and f.shape == (2, 0, 6, 16, 16) and y.shape == (2, 1, 6, 16, 16)
    # normalisation: whole approximant, training part of the target
    assert float(data.coarse.mean()) == pytest.approx(0, abs=1e-5)
    assert float(data.target[..., : 2 * sa.start].mean()) == pytest.approx(0, abs=1e-5)


def test_flips_apply_to_both_volumes_alike(make_pair):
    a, g = make_pair()
    data, _ = prepare_pairs(a, g, 8, 0.5, 0.6)
    (x0, _), y0 = data.batch([1])
    (x1, _), y1 = data.batch([1], torch.tensor([[True, True]]))
    assert torch.equal(x1, torch.flip(x0, (3, 4))) and torch.equal(y1, torch.flip(y0, (3, 4)))


@pytest.mark.parametrize("zs, inputs", [(6, ["approximant", "sart"]), (3, ["sart"]), (6, ["sart", "approximant"])])
def test_a_patchs_sart_is_the_volume_region_under_its_target(make_pair, zs, inputs):
    """The SART patch is the (normalised, z-resampled) SART volume under the target patch, for
    training and validation patches, flipped like the target; the split does not change."""
    a, g = make_pair(xa=40)
    rng = np.random.default_rng(1)
    sart = Volume((g.data[:: 6 // zs] + 0.3 * rng.standard_normal((zs, *g.shape[1:]))).astype(np.float32),
                  g.voxel_size_m)
    data, notes = prepare_pairs(a, g, 8, 0.5, 0.6, 0.2, inputs=inputs, baselines={"sart": sart},
                                baseline_names={"sart": "sart.h5"})
    alone, _ = prepare_pairs(a, g, 8, 0.5, 0.6, 0.2)
    assert np.array_equal(data.corners, alone.corners) and np.array_equal(data.val_corners, alone.val_corners)
    assert data.coarse.shape[0] == ("approximant" in inputs) and data.fine.shape == (1, 6, 32, 80)
    assert (zs != 6) == any("sart.h5: resampled along z" in n for n in notes)
    s = resample_z(sart.data, 6)
    s = (s - data.norm["sart_mean"]) / data.norm["sart_std"]
    assert data.norm["sart_mean"] == pytest.approx(float(resample_z(sart.data, 6).double().mean()), rel=1e-5)
    for val, corners in ((False, data.corners), (True, data.val_corners)):
        k = len(corners) - 1
        (c, f), y = data.batch([k], val=val)
        cy, cx = corners[k]
        region = (slice(None), slice(2 * cy, 2 * cy + 16), slice(2 * cx, 2 * cx + 16))
        assert torch.equal(f[0, 0], s[region]) and torch.equal(y[0, 0], data.target[region])
    (_, f0), y0 = data.batch([1])
    (_, f1), y1 = data.batch([1], torch.tensor([[True, False]]))
    assert torch.equal(f1, torch.flip(f0, (3,))) and torch.equal(y1, torch.flip(y0, (3,)))
    with pytest.raises(UserError, match="need the sart volume"):
        prepare_pairs(a, g, 8, 0.5, 0.6, inputs=inputs)
    with pytest.raises(UserError, match="sart.h5: shape"):
        prepare_pairs(a, g, 8, 0.5, 0.6, inputs=inputs, baselines={"sart": a}, baseline_names={"sart": "sart.h5"})


def test_z_resampling_and_shape_errors(make_pair):
    a, g = make_pair(za=5, zg=10)
    data, notes = prepare_pairs(a, g, 8, 0.5, 0.6)
    assert data.coarse.shape[1] == 10 and any("resampled along z" in n for n in notes)
    lin = torch.arange(4.0)[:, None, None].expand(4, 2, 2)
    up = resample_z(lin, 8)[:, 0, 0]
    assert torch.all(up[1:] >= up[:-1]) and float(up.mean()) == pytest.approx(1.5)
    with pytest.raises(UserError, match="twice"):
        prepare_pairs(a, a, 8, 0.5, 0.6, names=("A.h5", "G.h5"))
    with pytest.raises(UserError, match="smaller than one"):
        prepare_pairs(a, g, 17, 0.5, 0.6)  # y = 16 < 17


@pytest.mark.parametrize("xa, patch, val_fraction", [(41, 8, 0.1), (64, 8, 0.3), (33, 4, 0.05), (50, 6, 0.2)])
def test_no_validation_voxel_is_in_a_training_patch(make_pair, xa, patch, val_fraction):
    a, g = make_pair(xa=xa)
    data, _ = prepare_pairs(a, g, patch, 0.5, 0.6, val_fraction)
    assert len(data.corners) and len(data.val_corners)
    ny, nx = a.shape[1:]
    train_mask, val_mask = np.zeros((ny, nx), bool), np.zeros((ny, nx), bool)
    for mask, corners in ((train_mask, data.corners), (val_mask, data.val_corners)):
        for y, x in corners:
            mask[y:y + patch, x:x + patch] = True
    assert not (train_mask & val_mask).any()
    assert not train_mask[:, data.x_split:].any() and not val_mask[:, data.x_split:].any()
    assert val_mask[:, data.x_val:data.x_split].all()              # the band is covered
    assert data.x_split - data.x_val >= max(patch, round(val_fraction * data.x_split))
    # the target patches of each set are the same regions on the 2x grid: disjoint too
    _, y_t = data.batch(np.arange(len(data.val_corners)), val=True)
    cy, cx = data.val_corners[0]
    assert torch.equal(y_t[0, 0], data.target[:, 2 * cy:2 * cy + 2 * patch, 2 * cx:2 * cx + 2 * patch])
    # the target normalisation saw the training band only
    assert float(data.target[..., : 2 * data.x_val].mean()) == pytest.approx(0, abs=1e-5)


def test_validation_band_needs_room(make_pair):
    assert validation_index(24, 8, 0.0) == 24
    assert validation_index(24, 8, 0.1) == 16                      # at least one patch wide
    assert validation_index(100, 8, 0.2) == 80
    a, g = make_pair(xa=20)                                        # x_split = 12 < 2 patches
    with pytest.raises(UserError, match="validation band"):
        prepare_pairs(a, g, 8, 0.5, 0.6, 0.1)
    data, _ = prepare_pairs(a, g, 8, 0.5, 0.6, 0.0)
    assert len(data.val_corners) == 0 and data.x_val == data.x_split


def test_a_patch_override_scales_the_preset_rates_to_the_patch():
    from rapidtomo.nn.unet import PAPER_RATES, scale_rates
    small = TrainSettings().network_settings()
    assert small.rates == scale_rates(PAPER_RATES, 16) == [2, 3, 5]
    assert TrainSettings(patch=32).network_settings().rates == scale_rates(PAPER_RATES, 32) == [3, 6, 9]
    assert TrainSettings(preset="paper", patch=16).network_settings().rates == [2, 3, 5]
    # explicit rates are kept whatever the patch
    assert TrainSettings(patch=32, rates=[1, 2]).network_settings().rates == [1, 2]
    # z rates follow the volume's Z, not the patch
    assert TrainSettings(patch=32).network_settings(nz=64).z_rates == TrainSettings().network_settings(nz=64).z_rates
