import pytest
import torch

from rapidtomo.errors import UserError
from rapidtomo.nn import NetworkSettings, build_network, load_model, save_model

NORM = {"approximant_mean": 0.1, "approximant_std": 2.0, "output_scale": 0.5, "output_offset": -1.0}


def tiny(**kw):
    return NetworkSettings(**{"variant": "E", "widths": [2, 4], "rates": [1, 2], "z_rates": [2, 3], **kw})


def test_round_trip_weights_only(tmp_path):
    torch.manual_seed(0)
    net = build_network(tiny()).eval()
    path = save_model(tmp_path / "m.pt", net, NORM, 8, {"note": "x"})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "rapidtomo-model"
    m = load_model(path)
    assert m.settings == net.settings and m.patch == 8 and m.normalisation == NORM and m.training == {"note": "x"}
    x = torch.randn(1, 1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(m.network(x), net(x))


def test_round_trip_with_sart_input_and_mismatch_refusal(tmp_path):
    from rapidtomo.nn import check_inputs
    torch.manual_seed(0)
    net = build_network(tiny(inputs=["approximant", "sart"])).eval()
    with pytest.raises(ValueError, match="sart_mean"):
        save_model(tmp_path / "m.pt", net, NORM, 8)        # no statistics for the SART input
    norm = {**NORM, "sart_mean": 0.3, "sart_std": 1.5}
    path = save_model(tmp_path / "m.pt", net, norm, 8)
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 3 and raw["inputs"] == ["approximant", "sart"]
    m = load_model(path)
    assert m.settings.inputs == ["approximant", "sart"] and m.normalisation == norm
    c, f = torch.randn(1, 1, 3, 8, 8), torch.randn(1, 1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m.network(c, f), net(c, f))
    check_inputs(m, ["sart", "approximant"], "m.pt")            # any order
    for given in (["approximant"], ["approximant", "sart", "fbp"], []):
        with pytest.raises(UserError) as e:
            check_inputs(m, given, "m.pt")
        assert str(e.value).count("\n") == 0 and "m.pt: the model takes approximant + sart" in str(e.value)
    raw["inputs"] = ["approximant"]
    torch.save(raw, tmp_path / "lying.pt")
    with pytest.raises(UserError, match="differ from its network"):
        load_model(tmp_path / "lying.pt")


def test_version_2_files_read_as_approximant_only(tmp_path):
    net = build_network(tiny()).eval()
    raw = torch.load(save_model(tmp_path / "m.pt", net, NORM, 8), weights_only=True)
    raw["format_version"] = 2
    del raw["inputs"]
    raw["normalisation"] = {"input_mean": 0.1, "input_std": 2.0, "output_scale": 0.5, "output_offset": -1.0}
    torch.save(raw, tmp_path / "v2.pt")
    m = load_model(tmp_path / "v2.pt")
    assert m.settings.inputs == ["approximant"] and m.normalisation == NORM


def test_malformed_model_files_give_clear_errors(tmp_path):
    net = build_network(tiny())
    good = save_model(tmp_path / "good.pt", net, NORM, 8)
    blob = good.read_bytes()
    cases = {"garbage.pt": b"not a model at all",
             "truncated.pt": blob[: len(blob) // 2]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    # another architecture: weights of a wider network under this network's settings
    other = torch.load(good, weights_only=True)
    other["state_dict"] = build_network(tiny(widths=[3, 6])).state_dict()
    torch.save(other, tmp_path / "other_arch.pt")
    other["architecture"] = "SomethingElse"
    torch.save(other, tmp_path / "other_name.pt")
    old = torch.load(good, weights_only=True)
    old["format_version"] = 1   # before the network pooled in z
    torch.save(old, tmp_path / "version1.pt")
    expected = {"version1.pt": "retrain it with `rapidtomo train`", "garbage.pt": "not a readable",
                "truncated.pt": "not a readable", "foreign.pt": "not a rapidtomo model file", "other_arch.pt": "do not match",
                "other_name.pt": "architecture", "missing.pt": "not found"}
    for name, words in expected.items():
        with pytest.raises(UserError) as e:
            load_model(tmp_path / name)
        msg = str(e.value)
        assert name in msg and words in msg and "\n" not in msg, msg
