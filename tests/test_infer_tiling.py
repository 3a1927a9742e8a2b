"""Tiled inference against whole-volume inference for real RAPID networks, and the warning when
the tile overlap does not cover the receptive field."""
import logging
import math

import numpy as np
import pytest
import torch

from rapidtomo.infer import PredictSettings, _plan, predict, sliding_window, tile_margins
from rapidtomo.errors import UserError
from rapidtomo.io import Volume
from rapidtomo.nn import LoadedModel, NetworkSettings, build_network, receptive_field

NORM = {"approximant_mean": 0.0, "approximant_std": 1.0, "output_scale": 1.0, "output_offset": 0.0}

pytestmark = pytest.mark.usefixtures("one_thread")


def model(variant="A", widths=(2, 4), rates=(1,), z_rates=(1,), inputs=("approximant",)):
    torch.manual_seed(2)
    s = NetworkSettings(variant=variant, widths=list(widths), rates=list(rates), z_rates=list(z_rates),
                        inputs=list(inputs))
    net = build_network(s).eval()
    for m in net.modules():   # non-trivial batch-norm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    norm = {**NORM, **{f"{i}_{k}": v for i in inputs for k, v in (("mean", 0.0), ("std", 1.0))}}
    return LoadedModel(net, s, norm, 8)


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

    sliding_window(m.network, lambda x0, x1: (a[None, ..., x0:x1], torch.zeros(0, shape[0], 2 * shape[1], 2 * (x1 - x0))),
                   write, shape, window, 0.5, 3, margin=0)
    assert np.abs(out.numpy() - whole.data).max() > 1e-3
    assert margin <= (window - window // 2) // 2


@pytest.mark.parametrize("variant, inputs, shape, window", [
    ("A", ("approximant", "sart"), (4, 60, 100), 40),
    ("E", ("approximant", "sart"), (5, 72, 72), 56),
    ("A", ("sart",), (3, 60, 100), 40),
])
def test_tiles_of_two_inputs_equal_whole_volume(variant, inputs, shape, window, tmp_path):
    """With the SART input on the 2x grid, tiles (windows of both inputs) equal whole-volume
    inference, in memory and streamed from files; the output grid is the approximant's 2x."""
    from rapidtomo.infer import predict_file
    from rapidtomo.io import read_volume, write_volume
    m = model(variant, (2, 4), inputs=inputs)
    z, y, x = shape
    appx = volume(shape)
    sart = Volume(np.random.default_rng(5).standard_normal((z + 2, 2 * y, 2 * x)).astype(np.float32) * 3 + 1,
                  (3e-8 * z / (z + 2), 1e-8, 1e-8))
    a = appx if "approximant" in inputs else None
    tiled = predict(m, a, PredictSettings(window=window, overlap=0.5, batch_size=3), baselines={"sart": sart})
    whole = predict(m, a, PredictSettings(window=max(shape)), baselines={"sart": sart})
    nz = z if a is not None else z + 2  # the first input's slices (the model records no target z)
    assert tiled.shape == (nz, 2 * y, 2 * x) and tiled.voxel_size_m == pytest.approx((3e-8 * z / nz, 1e-8, 1e-8))
    np.testing.assert_allclose(tiled.data, whole.data, atol=2e-5)
    write_volume(tmp_path / "a.h5", appx)
    write_volume(tmp_path / "s.h5", sart)
    predict_file(m, tmp_path / "a.h5" if a is not None else None, tmp_path / "p.h5",
                 PredictSettings(window=window, batch_size=3), baselines={"sart": tmp_path / "s.h5"})
    np.testing.assert_allclose(read_volume(tmp_path / "p.h5").data, tiled.data, atol=1e-5)
    # the SART input matters: another SART, another prediction
    other = predict(m, a, PredictSettings(window=window), baselines={"sart": Volume(sart.data[:, ::-1].copy(),
                                                                                    sart.voxel_size_m)})
    assert np.abs(other.data - tiled.data).max() > 1e-3
    with pytest.raises(UserError, match="the model takes"):
        predict(m, appx, PredictSettings(window=window))


def test_too_small_an_overlap_warns_with_the_window_that_would_do(caplog):
    m = model("E", (2, 4), rates=(1, 2), z_rates=(2, 3))
    vol = volume((3, 24, 80))
    with caplog.at_level(logging.WARNING, logger="rapidtomo.infer"):
        predict(m, vol, PredictSettings(window=16))
    # window 56: one window in y (24), x starts 0 and 24, so (56 − 24)/2 = 16 voxels kept from inner edges
    assert "receptive field reaches 16" in caplog.text and "--window 56 or more" in caplog.text
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rapidtomo.infer"):
        predict(m, vol, PredictSettings(window=m.patch))   # the training condition: a note, not a warning
    assert "receptive field" in caplog.text and {r.levelname for r in caplog.records} == {"INFO"}
    # uncovered, no output is dropped (it would make nothing exact); covered, the radius is
    assert _plan(m, vol.shape, PredictSettings(window=16), "v")[2] == 0
    assert _plan(m, vol.shape, PredictSettings(window=56), "v")[2] == 16
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
