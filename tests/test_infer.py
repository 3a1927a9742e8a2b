import numpy as np
import pytest
import torch
from torch import nn

from rapidtomo.errors import UserError
from rapidtomo.infer import PredictSettings, blend_weights, predict, predict_file
from rapidtomo.io import Volume, read_volume, write_volume
from rapidtomo.nn import LoadedModel, NetworkSettings, build_network, save_model

NORM = {"approximant_mean": 0.0, "approximant_std": 1.0, "output_scale": 2.0, "output_offset": 0.5}


pytestmark = pytest.mark.usefixtures("one_thread")


class Pointwise(nn.Module):
    """A nonlinear network without spatial context: its windows must blend to the whole result."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv3d(1, 3, 1)
        self.b = nn.Conv3d(3, 1, 1)

    def forward(self, x, fine=None):
        y = self.b(torch.tanh(self.a(x)))
        return y.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def tiny_model(target_z=None):
    torch.manual_seed(1)
    net = build_network(NetworkSettings(widths=[2, 4], rates=[1, 2], z_rates=[2, 3])).eval()
    return LoadedModel(net, net.settings, dict(NORM), 8, {"target_z": target_z} if target_z else {})


def volume(shape, seed=0):
    return Volume(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), (3e-8, 2e-8, 2e-8))


@pytest.mark.parametrize("shape", [(4, 16, 16), (3, 13, 21), (2, 9, 40)])
@pytest.mark.parametrize("window, overlap", [(8, 0.5), (5, 0.25), (6, 0.0)])
def test_blended_tiles_equal_whole_volume_inference(shape, window, overlap):
    torch.manual_seed(0)
    m = LoadedModel(Pointwise().eval(), NetworkSettings(), dict(NORM), 8)
    vol = volume(shape)
    tiled = predict(m, vol, PredictSettings(window=window, overlap=overlap, batch_size=3))
    whole = predict(m, vol, PredictSettings(window=max(shape)))
    assert tiled.shape == (shape[0], 2 * shape[1], 2 * shape[2])
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-5)


def test_whole_volume_in_one_window_is_the_network_itself():
    m = tiny_model()
    vol = volume((3, 7, 6))
    out = predict(m, vol, PredictSettings(window=8))
    a = vol.data
    x = torch.from_numpy((a - a.mean()) / a.astype(np.float64).std(ddof=1)).float()[None, None]
    with torch.no_grad():
        ref = m.network(x)[0, 0].numpy() * NORM["output_scale"] + NORM["output_offset"]
    np.testing.assert_allclose(out.data, ref, atol=1e-5)
    assert out.voxel_size_m == pytest.approx((3e-8, 1e-8, 1e-8))


def test_blend_weights_are_smooth_and_positive():
    w = blend_weights(16, 12)
    assert w.shape == (16, 12) and float(w.min()) >= 1e-3 and float(w.max()) <= 1
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))
    assert torch.equal(blend_weights(4, 4, "constant"), torch.ones(4, 4))


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_streaming_files_equal_in_memory_inference(tmp_path, suffix):
    m = tiny_model(target_z=5)
    vol = volume((3, 12, 30))
    src = write_volume(tmp_path / f"a{suffix}", vol)
    s_mem = PredictSettings(batch_size=64)      # one group: every window before any output
    s_stream = PredictSettings(batch_size=1)    # one x start at a time: columns flushed as they finish
    mem = predict(m, vol, s_mem)
    assert mem.shape == (5, 24, 60)  # resampled to the training target's z
    out = tmp_path / f"p{suffix}"
    summary = predict_file(m, src, out, s_stream)
    assert summary["output_shape"] == [5, 24, 60]
    got = read_volume(out)  # .h5 or .zarr alike
    np.testing.assert_allclose(got.data, mem.data, atol=1e-5)
    assert got.voxel_size_m == pytest.approx(mem.voxel_size_m) and got.attrs["quantity"] == "phase_rad_per_voxel"


def test_predict_file_errors_leave_outputs_alone(tmp_path):
    m = tiny_model()
    out = tmp_path / "p.h5"
    out.write_bytes(b"old")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="bad.h5"):
        predict_file(m, tmp_path / "bad.h5", out)
    const = write_volume(tmp_path / "c.h5", Volume(np.ones((2, 8, 8), np.float32), (1e-8,) * 3))
    with pytest.raises(UserError, match="constant"):
        predict_file(m, const, out)
    assert out.read_bytes() == b"old"


def test_predict_from_a_model_file(tmp_path):
    m = tiny_model()
    path = save_model(tmp_path / "m.pt", m.network, NORM, 8)
    vol = volume((2, 10, 12))
    np.testing.assert_allclose(predict(path, vol).data, predict(m, vol).data, atol=1e-6)
