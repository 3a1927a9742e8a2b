"""Tiled inference against whole-volume inference for real RAPID networks, and the warning when
the tile overlap does not cover the receptive field."""
import logging
import math

import numpy as np
import pytest
import torch

from rapidtomo.infer import PredictSettings, predict, sliding_window, tile_margins
from rapidtomo.io import Volume
from rapidtomo.nn import LoadedModel, NetworkSettings, build_network, receptive_field

NORM = {"input_mean": 0.0, "input_std": 1.0, "output_scale": 1.0, "output_offset": 0.0}

pytestmark = pytest.mark.usefixtures("one_thread")


def model(variant="A", widths=(2, 4), rates=(1,), z_rates=(1,)):
    torch.manual_seed(2)
    s = NetworkSettings(variant=variant, widths=list(widths), rates=list(rates), z_rates=list(z_rates))
    net = build_network(s).eval()
    for m in net.modules():   # non-trivial batch-norm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return LoadedModel(net, s, dict(NORM), 8)


def volume(shape, seed=0):
    return Volume(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), (3e-8, 2e-8, 2e-8))


@pytest.mark.parametrize("variant, widths, shape, window", [
    ("A", (2, 4), (4, 60, 100), 40),      # r = 9.75: margin 10 = (40 − 20)/2; starts on multiples of 2
    ("E", (2, 4), (5, 72, 72), 56),       # r = 12.75 with the atrous module; y, x starts 0, 16 (last aligned)
])
def test_tiles_equal_whole_volume_when_the_overlap_covers_the_receptive_field(variant, widths, shape, window, caplog):
    m = model(variant, widths)
    margin = math.ceil(max(receptive_field(m.settings)[1:]))
    vol = volume(shape)
    with caplog.at_level(logging.WARNING, logger="rapidtomo.infer"):
        tiled = predict(m, vol, PredictSettings(window=window, overlap=0.5, batch_size=3))
    assert "receptive field" not in caplog.text
    whole = predict(m, vol, PredictSettings(window=max(shape)))
    np.testing.assert_allclose(tiled.data, whole.data, atol=2e-5)
    # the same tiles without dropping the edge outputs differ: the margin is what makes them equal
    a = torch.from_numpy((vol.data - vol.data.mean()) / vol.data.astype(np.float64).std(ddof=1)).float()
    out = torch.empty(shape[0], 2 * shape[1], 2 * shape[2])

    def write(x0, x1, o):
        out[..., 2 * x0:2 * x1] = o

    sliding_window(m.network, lambda x0, x1: a[..., x0:x1], write, shape, window, 0.5, 3, margin=0)
    assert np.abs(out.numpy() - whole.data).max() > 1e-3
    assert margin <= (window - window // 2) // 2


def test_too_small_an_overlap_warns_with_the_window_that_would_do(caplog):
    m = model("E", (2, 4), rates=(1, 2), z_rates=(2, 3))
    vol = volume((3, 24, 80))
    with caplog.at_level(logging.WARNING, logger="rapidtomo.infer"):
        predict(m, vol, PredictSettings(window=16))
    # window 56: one window in y (24), x starts 0 and 24, so (56 − 24)/2 = 16 voxels kept from inner edges
    assert "receptive field reaches 16" in caplog.text and "--window 56 " in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rapidtomo.infer"):
        predict(m, vol, PredictSettings(window=80))    # one window covers the volume: exact
    assert "receptive field" not in caplog.text


@pytest.mark.parametrize("starts, window, margin, kept", [([0], 16, 9, 0), ([0, 8, 16], 16, 9, 4),
                                                          ([0, 8, 11], 16, 3, 3), ([0, 6, 12], 12, 9, 3)])
def test_margins_keep_every_voxel_in_some_window(starts, window, margin, kept):
    assert tile_margins(starts, window, margin) == kept
    n = starts[-1] + window
    cover = np.zeros(n, int)
    for i, s in enumerate(starts):
        lo = s + (kept if i > 0 else 0)
        hi = s + window - (kept if i < len(starts) - 1 else 0)
        cover[lo:hi] += 1
    assert cover.min() >= 1
