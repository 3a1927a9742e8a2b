"""``rapidtomo demo --sample layout``: a sky130 standard-cell block as the simulated sample."""
import json
import sys

import pytest

from rapidtomo.cli import main

def test_sample_layout_makes_the_block_and_names_it_the_phantom(tmp_path, tiny_config, monkeypatch):
    pytest.importorskip("gdstk")
    from rapidtomo import pipeline
    from rapidtomo.io import read_volume
    calls = []

    def run_pipeline(*a, **kw):
        calls.append((a, kw))
        a[0].mkdir(parents=True, exist_ok=True)
        return []
    monkeypatch.setattr(pipeline, "run_pipeline", run_pipeline)
    run = tmp_path / "run"
    assert main(["demo", "--sample", "layout", "--out", str(run), "--config", str(tiny_config), "--seed", "3"]) == 0
    block = run / "layout_block.h5"
    (args, kw), = calls
    assert args == (run, tiny_config) and kw["seed"] == 3
    assert kw["overrides"] == {"pipeline": {"phantom": str(block)}}
    vol = read_volume(block)
    assert vol.shape == (8, 32, 64) and vol.voxel_size_m[1:] == (28e-9, 28e-9)
    assert vol.voxel_size_m[0] > 28e-9  # the stack's height over Z
    assert json.loads(vol.attrs["block_request"])["seed"] == 3 and "sky130" in vol.attrs["stack"]
    # made once per settings and seed: a rerun keeps the file (the simulate stage keys on its stamp)
    stamp = block.stat().st_mtime_ns
    assert main(["demo", "--sample", "layout", "--out", str(run), "--config", str(tiny_config), "--seed", "3"]) == 0
    assert block.stat().st_mtime_ns == stamp
    assert main(["demo", "--sample", "layout", "--out", str(run), "--config", str(tiny_config), "--seed", "4"]) == 0
    assert json.loads(read_volume(block).attrs["block_request"])["seed"] == 4
    # the shipped IC model does not fit the block's geometry (its stack is thicker): the block's own
    shipped = tmp_path / "shipped.toml"
    shipped.write_text(tiny_config.read_text().replace('enabled = "off"', 'model = "builtin:demo"'))
    calls.clear()
    assert main(["demo", "--sample", "layout", "--out", str(run), "--config", str(shipped), "--seed", "4"]) == 0
    assert calls[0][1]["overrides"]["pretrain"] == {"model": "builtin:layout"}
    # the default sample is the synthetic IC: no block, no override
    calls.clear()
    assert main(["demo", "--out", str(tmp_path / "ic"), "--config", str(tiny_config)]) == 0
    assert calls[0][1]["overrides"] == {} and not (tmp_path / "ic" / "layout_block.h5").exists()


def test_sample_layout_without_gdstk_is_one_line(tmp_path, tiny_config, monkeypatch, capsys):
    from rapidtomo import pipeline
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *a, **kw: pytest.fail("ran without a sample"))
    monkeypatch.setitem(sys.modules, "gdstk", None)
    for name in [m for m in sys.modules if m.startswith("rapidtomo.phantom.layout")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["demo", "--sample", "layout", "--out", str(tmp_path / "run"), "--config", str(tiny_config)]) == 2
    err = capsys.readouterr().err
    assert "needs gdstk: pip install 'rapidtomo[layouts]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "layout_block.h5").exists()


@pytest.mark.slow
def test_the_whole_pipeline_runs_on_a_layout_block(tmp_path, tiny_config):
    pytest.importorskip("gdstk")
    from rapidtomo.io import read_scan, read_volume
    run = tmp_path / "run"
    assert main(["demo", "--sample", "layout", "--out", str(run), "--config", str(tiny_config)]) == 0
    truth = read_volume(run / "phantom.h5")
    block = read_volume(run / "layout_block.h5")
    assert truth.shape == block.shape == (8, 32, 64) and truth.voxel_size_m == block.voxel_size_m
    assert read_scan(run / "scan_reduced.h5").voxel_size_m == block.voxel_size_m
    metrics = json.loads((run / "metrics.json").read_text())
    for ref in ("vs_golden", "vs_truth"):
        assert set(metrics[ref]) == {"rapid", "approximant", "fbp", "sart"}
        assert all(-1 <= m["pcc"] <= 1 for m in metrics[ref].values())
    settings = json.loads((run / "pipeline_settings.json").read_text())
    assert settings["pipeline"]["phantom"] == str(run / "layout_block.h5")
    assert (run / "report" / "index.html").exists()
