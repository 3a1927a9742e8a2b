"""Per-angle ptychography and tiled inference as dask tasks on a loopback LocalCluster of 2 worker
processes: the same volumes as the serial run, a killed worker costs only a retried task, and a
rerun after a crash computes only what was not finished."""
import contextlib
import importlib
import json
import os
import signal
import sys
import time

import cloudpickle
import numpy as np
import pytest
import torch
from distributed import get_task_stream
from distributed.diagnostics.plugin import WorkerPlugin

from rapidtomo.cli import main
from rapidtomo.cluster import Cluster, ClusterSettings
from rapidtomo.errors import UserError
from rapidtomo.infer import PredictSettings, predict_file
from rapidtomo.io import read_volume, write_scan, write_volume
from rapidtomo.phantom import synthetic_ic
from rapidtomo.pipeline import PipelineSettings, stage_settings
from rapidtomo.recon import TwoStepSettings
from rapidtomo.recon.two_step import phase_projections
from rapidtomo.simulate import SimulateSettings, simulate
from rapidtomo.stages import run_two_step
from test_infer_tiling import model, volume

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this module
pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = TwoStepSettings(epochs=2, refine_probe=False, method="sart", sweeps=2, workers=1)


@pytest.fixture(scope="module")
def cluster():
    """The local cluster that rapidtomo starts: 2 worker processes of one thread, 2 retries."""
    with Cluster(ClusterSettings(scheduler="local", workers=2, retries=2)) as c:
        yield c


@pytest.fixture(scope="module")
def scan():
    ph = synthetic_ic((12, 16, 64), (28e-9,) * 3, seed=2)
    return simulate(SimulateSettings(shape=ph.shape, n_nominal=4, n_reduced=2, photons=1e5), ph)[1]


@pytest.fixture(scope="module")
def serial_projections(scan):
    """On one torch thread, as each worker (module fixtures run before ``one_thread``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return phase_projections(scan, SETTINGS)
    finally:
        torch.set_num_threads(n)


class KillOnce(WorkerPlugin):
    """Kills its worker process (SIGKILL) when the first task whose key starts with ``prefix`` starts."""

    def __init__(self, prefix: str, marker: str):
        self.prefix, self.marker = prefix, marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith(self.prefix):
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def killing(cluster, prefix, marker):
    """The :class:`KillOnce` plugin on every worker; afterwards both workers are back."""
    cluster.client().register_plugin(KillOnce(prefix, str(marker)), name="kill-once")
    try:
        yield
    finally:
        client = cluster.client()
        client.unregister_worker_plugin("kill-once")
        # the nanny restarts the killed worker; on a loaded machine the local cluster may instead
        # close that nanny (a race in distributed), so ask for 2 workers again before waiting
        client.cluster.scale(2)
        client.wait_for_workers(2, timeout=180)


def wait_idle(client):
    """Until no worker executes a task (cancelled tasks of a crashed run finish first)."""
    for _ in range(600):
        if sum(client.run(lambda dask_worker: dask_worker.state.executing_count).values()) == 0:
            return
        time.sleep(0.1)


def crash_after(n):
    """A stand-in for ``progress`` that lets ``n`` results through, then raises (the caller crashes)."""
    def fake(iterable, *args, **kwargs):
        for k, item in enumerate(iterable):
            if k == n:
                raise RuntimeError("crash")
            yield item
    return fake


def task_keys(ts, prefix):
    return [t["key"] for t in ts.data if str(t["key"]).startswith(prefix)]


def test_golden_standard_on_the_cluster_equals_the_serial_run(cluster, scan, tmp_path):
    write_scan(tmp_path / "scan.h5", scan)
    run_two_step(tmp_path / "scan.h5", tmp_path / "serial.h5", SETTINGS)
    with get_task_stream(cluster.client()) as ts:
        run_two_step(tmp_path / "scan.h5", tmp_path / "dask.h5", SETTINGS, cluster=cluster)
    assert len(task_keys(ts, "ptychography-")) == scan.n_angles  # one task per angle, each on a worker
    serial, dist = read_volume(tmp_path / "serial.h5").data, read_volume(tmp_path / "dask.h5").data
    np.testing.assert_allclose(dist, serial, atol=1e-5 * np.abs(serial).max())
    info = json.loads((tmp_path / "dask.json").read_text())
    assert info["cluster"]["worker_threads"] == 2 and info["cluster"]["scheduler"] == "local"


def test_a_killed_worker_loses_only_its_angle(cluster, scan, serial_projections, tmp_path):
    client = cluster.client()
    pids = set(client.run(os.getpid).values())
    with killing(cluster, "ptychography-1-", tmp_path / "killed"):
        P = phase_projections(scan, SETTINGS, cluster=cluster)
    assert (tmp_path / "killed").exists()  # a worker died running angle 1 ...
    assert set(client.run(os.getpid).values()) != pids  # ... and was replaced
    np.testing.assert_allclose(P, serial_projections, atol=1e-6)  # ... and angle 1 was solved again


def test_a_rerun_after_a_crash_skips_finished_angles(cluster, scan, serial_projections, tmp_path, monkeypatch):
    ts_module = importlib.import_module("rapidtomo.recon.two_step")  # not the function recon.two_step
    cache = tmp_path / "c.h5"
    with monkeypatch.context() as m:
        m.setattr(ts_module, "progress", crash_after(2))
        with pytest.raises(RuntimeError, match="crash"):
            phase_projections(scan, SETTINGS, cache, cluster=cluster)
    wait_idle(cluster.client())
    with get_task_stream(cluster.client()) as ts:
        P = phase_projections(scan, SETTINGS, cache, cluster=cluster)
    assert len(task_keys(ts, "ptychography-")) == scan.n_angles - 2
    np.testing.assert_allclose(P, serial_projections, atol=1e-6)
    with get_task_stream(cluster.client()) as ts:  # all cached: no task at all
        phase_projections(scan, SETTINGS, cache, cluster=cluster)
    assert task_keys(ts, "ptychography-") == []


def test_simulation_on_the_cluster_equals_the_serial_run(cluster, tmp_path):
    ph = synthetic_ic((8, 16, 48), (28e-9,) * 3, seed=3)
    s = SimulateSettings(shape=ph.shape, n_nominal=3, n_reduced=2, photons=1e4)
    files = {k: (tmp_path / f"{k}_nominal.h5", tmp_path / f"{k}_reduced.h5") for k in ("serial", "dask")}
    _, serial, _ = simulate(s, ph, files["serial"])
    with get_task_stream(cluster.client()) as ts:
        _, dist, _ = simulate(s, ph, files["dask"], cluster=cluster)
    assert len(task_keys(ts, "nominal-scan-")) == 3 and len(task_keys(ts, "reduced-scan-")) == 2
    # the same noise generator per angle: the counts agree except where the expected intensity
    # differs in its last bits between a worker and this process (another FFT plan), which can move
    # a Poisson draw (seen: 4 of 122880 counts)
    a, b = dist.intensities[:], serial.intensities[:]
    assert np.mean(a != b) < 1e-3 and abs(float(a.sum()) / float(b.sum()) - 1) < 1e-4


@pytest.fixture(scope="module")
def inference(tmp_path_factory):
    """A two-input network, its inputs as files, and the serial prediction (5 blocks of 20 columns)."""
    d = tmp_path_factory.mktemp("infer")
    m = model("A", (2, 4), inputs=("approximant", "sart"))
    z, y, x = 4, 30, 100
    write_volume(d / "a.h5", volume((z, y, x)))
    write_volume(d / "s.h5", volume((z, 2 * y, 2 * x), seed=3))
    settings = PredictSettings(window=20, block_windows=1)
    predict_file(m, d / "a.h5", d / "serial.h5", settings, baselines={"sart": d / "s.h5"})
    return m, d, settings, read_volume(d / "serial.h5").data


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_tiled_inference_on_the_cluster_equals_the_serial_run(cluster, inference, tmp_path, suffix):
    m, d, settings, serial = inference
    out = tmp_path / f"p{suffix}"
    with get_task_stream(cluster.client()) as ts:
        r = predict_file(m, d / "a.h5", out, settings, baselines={"sart": d / "s.h5"}, cluster=cluster)
    assert len(task_keys(ts, "predict-")) == r["blocks"] == 5 and r["blocks_reused"] == 0
    np.testing.assert_allclose(read_volume(out).data, serial, atol=1e-5)
    assert os.listdir(tmp_path) == [out.name]  # the workers' store became the output or was removed


def test_a_killed_worker_loses_only_its_tile(cluster, inference, tmp_path):
    m, d, settings, serial = inference
    with killing(cluster, "predict-", tmp_path / "killed"):
        predict_file(m, d / "a.h5", tmp_path / "p.zarr", settings, baselines={"sart": d / "s.h5"}, cluster=cluster)
    assert (tmp_path / "killed").exists()
    np.testing.assert_allclose(read_volume(tmp_path / "p.zarr").data, serial, atol=1e-5)


def test_a_rerun_after_a_crash_skips_finished_tiles(cluster, inference, tmp_path, monkeypatch):
    import rapidtomo.infer as infer_module
    m, d, settings, serial = inference
    out = tmp_path / "p.h5"
    with monkeypatch.context() as mp:
        mp.setattr(infer_module, "progress", crash_after(2))
        with pytest.raises(RuntimeError, match="crash"):
            predict_file(m, d / "a.h5", out, settings, baselines={"sart": d / "s.h5"}, cluster=cluster)
    wait_idle(cluster.client())
    finished = len(os.listdir(tmp_path / "p.tiles.zarr" / "done"))
    assert not out.exists() and finished >= 2
    with get_task_stream(cluster.client()) as ts:
        r = predict_file(m, d / "a.h5", out, settings, baselines={"sart": d / "s.h5"}, cluster=cluster)
    assert r["blocks_reused"] == finished and len(task_keys(ts, "predict-")) == 5 - finished
    np.testing.assert_allclose(read_volume(out).data, serial, atol=1e-5)
    # another model: the store left by a crash is not reused
    with monkeypatch.context() as mp:
        mp.setattr(infer_module, "progress", crash_after(2))
        with pytest.raises(RuntimeError, match="crash"):
            predict_file(m, d / "a.h5", out, settings, baselines={"sart": d / "s.h5"}, cluster=cluster)
    wait_idle(cluster.client())
    other = model("A", (2, 4), inputs=("approximant", "sart"))
    with torch.no_grad():
        next(other.network.parameters()).add_(0.1)
    assert predict_file(other, d / "a.h5", out, settings, baselines={"sart": d / "s.h5"},
                        cluster=cluster)["blocks_reused"] == 0


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[cluster]\nscheduler = "tcp://127.0.0.1:9"\nconnect_timeout_s = 1\n')
    assert main(["golden", str(tmp_path / "scan.h5"), "-o", str(tmp_path / "g.h5"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "[cluster] scheduler tcp://127.0.0.1:9: cannot connect" in err
    assert not (tmp_path / "g.h5").exists()


def test_the_pipeline_accepts_a_cluster_section():
    pipe = PipelineSettings()
    s = stage_settings({"cluster": {"scheduler": "off", "workers": 3}}, pipe)
    assert s["cluster"].scheduler == "off" and not Cluster(s["cluster"]).active
    with pytest.raises(UserError, match=r"\[cluster\] nodes"):
        stage_settings({"cluster": {"nodes": 3}}, pipe)


def test_cluster_flags_do_not_collide_with_the_stage_settings(tmp_path):
    from rapidtomo.cli import build_parser
    from rapidtomo.commands.flags import cluster_settings
    cfg = tmp_path / "g.toml"
    cfg.write_text("epochs = 3\n")  # a stage's keys at top level: not the cluster's
    args = build_parser().parse_args(["golden", "s.h5", "-o", "g.h5", "--config", str(cfg), "--workers", "2",
                                      "--scheduler", "off", "--cluster-workers", "3"])
    assert args.workers == 2 and cluster_settings(args, cfg) == ClusterSettings(scheduler="off", workers=3)
    cfg.write_text("[golden]\nepochs = 3\n[cluster]\nretries = 5\nworkers = 1\n")
    args = build_parser().parse_args(["predict", "m.pt", "a.h5", "-o", "p.h5", "--cluster-workers", "4"])
    assert cluster_settings(args, cfg) == ClusterSettings(retries=5, workers=4)  # the flag over the file
