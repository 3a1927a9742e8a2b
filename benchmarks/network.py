"""Network throughput: training samples/s and inference output voxels/s for a preset; and the
training stage on the demo's shapes (time and held-out quality).

Training: Adam steps with the NPCC loss on random patch pairs of the preset's size (batch 2, the
paper's), timed after warm-up steps. Inference: ``rapidtomo.infer.predict`` (tiled, blended) on
a random approximant, timed end to end. Prints one JSON line per measurement.

``--demo-training '{"epochs": 200}'``: ``rapidtomo.train.train`` with ``TrainSettings(**JSON)`` on
a pair of the demo's shapes made from the synthetic IC phantom (32, 64, 256) as the target and a
coarsened copy as the approximant (32, 32, 128): 5 z-slabs dilated back to 32 slices mixed with a
z-blurred copy, blurred in y and x, 2x down, 10 % noise. Prints training seconds, epochs, steps,
the best validation NPCC and the PCC of the prediction with the target on the held-out part.

Usage: python benchmarks/network.py [--preset small|paper] [--device cpu|cuda] [--z 32]
       [--threads 2] [--steps 10] [--volume Y X] [--demo-training JSON]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
from rapidtomo.device import pick_device  # noqa: E402
from rapidtomo.infer import PredictSettings, predict  # noqa: E402
from rapidtomo.io import Volume  # noqa: E402
from rapidtomo.nn import LoadedModel, build_network, count_parameters, network_preset, preset_patch  # noqa: E402
from rapidtomo.train import npcc  # noqa: E402


def device_name(dev: torch.device, threads: int) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    model = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU {model}, {threads} threads (of {os.cpu_count()} cores), load {os.getloadavg()[0]:.1f}"


def bench_train(preset: str, dev: torch.device, z: int, steps: int, batch: int = 2) -> dict:
    torch.manual_seed(0)
    settings = network_preset(preset, "E", nz=z)
    net = build_network(settings).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    p = preset_patch(preset)
    x = torch.randn(batch, 1, z, p, p, device=dev)
    y = torch.randn(batch, 1, z, 2 * p, 2 * p, device=dev)
    amp = dev.type == "cuda"

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out = net(x)
        loss = npcc(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    return {"what": "train", "preset": preset, "patch": [z, p, p], "batch": batch, "steps": steps,
            "parameters": count_parameters(settings), "samples_per_s": round(steps * batch / dt, 3),
            "s_per_step": round(dt / steps, 4)}


def bench_predict(preset: str, dev: torch.device, z: int, ny: int, nx: int) -> dict:
    torch.manual_seed(0)
    settings = network_preset(preset, "E", nz=z)
    net = build_network(settings).eval()
    norm = {"approximant_mean": 0.0, "approximant_std": 1.0, "output_scale": 1.0, "output_offset": 0.0}
    model = LoadedModel(net, settings, norm, preset_patch(preset))
    vol = Volume(np.random.default_rng(0).standard_normal((z, ny, nx)).astype(np.float32), (1e-8,) * 3)
    s = PredictSettings(device=str(dev), batch_size=8)
    predict(model, Volume(vol.data[:, : preset_patch(preset), : preset_patch(preset)], vol.voxel_size_m), s)
    t = time.perf_counter()
    out = predict(model, vol, s)
    dt = time.perf_counter() - t
    return {"what": "predict", "preset": preset, "input": [z, ny, nx], "output": list(out.shape),
            "window": preset_patch(preset), "overlap": s.overlap, "seconds": round(dt, 3),
            "output_voxels_per_s": round(out.data.size / dt), "input_voxels_per_s": round(vol.data.size / dt)}


def demo_pair(seed: int = 0) -> tuple[Volume, Volume]:
    """(approximant (32, 32, 128), target (32, 64, 256)) of the demo's shapes from the synthetic IC."""
    from scipy.ndimage import gaussian_filter

    from rapidtomo.phantom import synthetic_ic
    ph = synthetic_ic((32, 64, 256), seed=seed)
    g = np.asarray(ph.data, np.float32)
    rng = np.random.default_rng(seed)
    gold = gaussian_filter(g, 0.7) + 0.02 * g.std() * rng.standard_normal(g.shape).astype(np.float32)
    blocks = np.array_split(np.arange(g.shape[0]), 5)
    slabs = np.repeat(np.stack([g[b].mean(0) for b in blocks]), [len(b) for b in blocks], axis=0)
    a = gaussian_filter(0.5 * slabs + 0.5 * gaussian_filter(g, (6, 0, 0)), (0, 2, 2))[:, ::2, ::2]
    a = a + 0.1 * a.std() * rng.standard_normal(a.shape).astype(np.float32)
    dz, dy, dx = ph.voxel_size_m
    return Volume(a.astype(np.float32), (dz, 2 * dy, 2 * dx)), Volume(gold.astype(np.float32), (dz, dy, dx))


def bench_demo_training(overrides: dict, out_dir: str) -> dict:
    from rapidtomo.metrics import pcc
    from rapidtomo.train import TrainSettings, heldout_region, train
    a, g = demo_pair()
    s = TrainSettings(**{"epochs": 200, "seed": 0, "device": "cpu", **overrides})
    model = os.path.join(out_dir, "demo_model.pt")
    r = train(a, g, s, model)
    pred = predict(model, a, PredictSettings(device="cpu"))
    _, held = heldout_region(a.shape, s)
    vals = [h["val_loss"] for h in r["history"]]
    return {"what": "demo_training", "settings": overrides, "train_s": round(r["timings"]["train"], 1),
            "epochs": len(r["history"]), "steps": r["steps"], "best_epoch": r["best_epoch"],
            "n_train": r["n_train"], "n_val": r["n_val"], "best_val_npcc": round(min(vals), 4),
            "heldout_pcc": round(pcc(pred.data[..., held], g.data[..., held]), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=["small", "paper"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--z", type=int, default=32, help="slices of the patches and of the volume")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--volume", type=int, nargs=2, default=(32, 64), metavar=("Y", "X"),
                    help="approximant y, x of the inference volume")
    ap.add_argument("--demo-training", metavar="JSON", help="train on the demo's shapes with these TrainSettings "
                    "overrides (JSON object) instead of the throughput measurements")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    info = {"device": device_name(dev, args.threads), "torch": torch.__version__}
    if args.demo_training is not None:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({**info, **bench_demo_training(json.loads(args.demo_training), tmp)}))
        return
    print(json.dumps({**info, **bench_train(args.preset, dev, args.z, args.steps)}))
    print(json.dumps({**info, **bench_predict(args.preset, dev, args.z, *args.volume)}))


if __name__ == "__main__":
    main()
