"""Network throughput: training samples/s and inference output voxels/s for a preset.

Training: Adam steps with the NPCC loss on random patch pairs of the preset's size (batch 2, the
paper's), timed after warm-up steps. Inference: ``rapidtomo.infer.predict`` (tiled, blended) on
a random approximant, timed end to end. Prints one JSON line per measurement.

Usage: python benchmarks/network.py [--preset small|paper] [--device cpu|cuda] [--z 32]
       [--threads 2] [--steps 10] [--volume Y X]
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
    settings = network_preset(preset, "E")
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
    settings = network_preset(preset, "E")
    net = build_network(settings).eval()
    norm = {"input_mean": 0.0, "input_std": 1.0, "output_scale": 1.0, "output_offset": 0.0}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=["small", "paper"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--z", type=int, default=32, help="slices of the patches and of the volume")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--volume", type=int, nargs=2, default=(32, 64), metavar=("Y", "X"),
                    help="approximant y, x of the inference volume")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    info = {"device": device_name(dev, args.threads), "torch": torch.__version__}
    print(json.dumps({**info, **bench_train(args.preset, dev, args.z, args.steps)}))
    print(json.dumps({**info, **bench_predict(args.preset, dev, args.z, *args.volume)}))


if __name__ == "__main__":
    main()
