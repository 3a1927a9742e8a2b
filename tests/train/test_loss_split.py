import numpy as np
import pytest
import torch

from rapidtomo.errors import UserError
from rapidtomo.train import (TrainSettings, heldout_region, npcc, patch_starts, poly_lr, prepare_pairs,
                             resample_z)


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
    x, y = data.batch([0, len(data.corners) - 1])
    assert x.shape == (2, 1, 6, 8, 8) and y.shape == (2, 1, 6, 16, 16)
    # normalisation: whole approximant, training part of the target
    assert float(data.approx.mean()) == pytest.approx(0, abs=1e-5)
    assert float(data.target[..., : 2 * sa.start].mean()) == pytest.approx(0, abs=1e-5)


def test_flips_apply_to_both_volumes_alike(make_pair):
    a, g = make_pair()
    data, _ = prepare_pairs(a, g, 8, 0.5, 0.6)
    x0, y0 = data.batch([1])
    x1, y1 = data.batch([1], torch.tensor([[True, True]]))
    assert torch.equal(x1, torch.flip(x0, (3, 4))) and torch.equal(y1, torch.flip(y0, (3, 4)))


def test_z_resampling_and_shape_errors(make_pair):
    a, g = make_pair(za=5, zg=10)
    data, notes = prepare_pairs(a, g, 8, 0.5, 0.6)
    assert data.approx.shape[0] == 10 and any("resampled along z" in n for n in notes)
    lin = torch.arange(4.0)[:, None, None].expand(4, 2, 2)
    up = resample_z(lin, 8)[:, 0, 0]
    assert torch.all(up[1:] >= up[:-1]) and float(up.mean()) == pytest.approx(1.5)
    with pytest.raises(UserError, match="twice"):
        prepare_pairs(a, a, 8, 0.5, 0.6, names=("A.h5", "G.h5"))
    with pytest.raises(UserError, match="smaller than one"):
        prepare_pairs(a, g, 17, 0.5, 0.6)  # y = 16 < 17
