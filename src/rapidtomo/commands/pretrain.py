"""``rapidtomo pretrain``: a network pre-trained on simulated chips in a scan's geometry."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings, preset, preset_names
from .flags import add_settings_arguments, settings_overrides

HELP = ("pre-train the network on simulated samples (synthetic ICs, sky130 blocks) in the geometry of a "
        "reduced scan or of a [simulate] section; writes a model file for train --init or predict")


# the pipeline-only fields (whether to pre-train, a ready model) are no flags of this command
FIELDS = ("corpus_size", "seed", "layout_fraction", "sample_yx", "workers", "epochs", "val_samples")


def _settings_class():
    from ..pretrain import PretrainSettings
    return PretrainSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scan", type=Path, help="your reduced-angle scan file: the corpus gets its geometry (energy, "
                   "detector, probe, angles, photons, object grid); default: the [simulate] section")
    p.add_argument("--probe", type=Path, help="the probe the samples are simulated with: a retrieved-probe file "
                   "(the golden standard's golden_probe.h5, /probe) or a scan file (/entry/probe); default: the "
                   "--scan file's /entry/probe, or the [simulate] section's probe")
    p.add_argument("--corpus", type=Path, required=True, help="corpus folder (one HDF5 per sample and "
                   "manifest.json); samples already there are kept, so a killed run resumes")
    p.add_argument("-o", "--out", type=Path, required=True, help="model file (.pt); OUT.json gets settings, "
                   "timings and the corpus record")
    p.add_argument("--config", type=Path, help="TOML/YAML settings file: sections [pretrain], [approximant] (the "
                   "settings the real scan's approximant gets), [golden] (the probe retrieval), [baseline] (the "
                   "network's SART/FBP inputs), [train] (network, inputs, patch) and, without --scan, [simulate]")
    p.add_argument("--preset", choices=preset_names(), help="built-in settings file whose sections are the "
                   "defaults (the --config file's values and flags override them)")
    p.add_argument("--exclude-seed", type=int, action="append", metavar="SEED",
                   help="a seed that no corpus sample may use (the sample under test's); repeatable")
    add_settings_arguments(p, _settings_class(), FIELDS)


def run(args) -> int:
    import shlex
    import sys

    from ..errors import UserError
    from ..pipeline import PIPELINE_INPUTS
    from ..pretrain import geometry_from_scan, geometry_from_simulate, read_reduced_scan, run_pretrain
    from ..recon import ApproximantSettings, TwoStepSettings
    from ..simulate import SimulateSettings
    from ..io import read_probe_file
    from ..train import TrainSettings
    base = preset(args.preset) if args.preset else {}
    cls = _settings_class()
    preset_fields = {k: v for k, v in base.get("pretrain", {}).items() if k in FIELDS}  # not the pipeline's
    settings = build_settings(cls, "pretrain", args.config, settings_overrides(args, FIELDS), preset_fields)
    approx = build_settings(ApproximantSettings, "approximant", args.config, None, base.get("approximant"))
    # the network the pipeline trains: its inputs default to the pipeline's (approximant + SART)
    train = build_settings(TrainSettings, "train", args.config, None, {"inputs": PIPELINE_INPUTS, **base.get("train", {})})
    golden = build_settings(TwoStepSettings, "golden", args.config, None, {"method": "sart", **base.get("golden", {})})
    baseline = {**golden.to_dict(), **base.get("baseline", {}), **_section(args.config, "baseline")}
    fine = {i: build_settings(TwoStepSettings, "baseline", None, {"method": i}, baseline)
            for i in train.inputs if i != "approximant"}
    seeds = set(args.exclude_seed or [])
    exclude = {"seeds": sorted(seeds)}
    if args.scan:
        scan, source = read_reduced_scan(args.scan)
        probe = read_probe_file(args.probe, scan)[0] if args.probe else None
        if args.probe:
            source["probe"] = str(args.probe)
        geometry = geometry_from_scan(scan, approx, source, settings.sample_yx, probe, golden, fine)
        exclude["scan_sha256"] = source["scan_sha256"]
    elif args.probe:
        raise UserError(f"{args.probe}: --probe needs --scan (a [simulate] section makes its own probe)")
    else:
        sim = build_settings(SimulateSettings, "simulate", args.config, None, base.get("simulate"))
        geometry = geometry_from_simulate(sim, approx, settings.sample_yx, golden, fine)
    r = run_pretrain(args.corpus, args.out, geometry, settings, train, seeds, exclude,
                     command=shlex.join(["rapidtomo", *sys.argv[1:]]))
    print(f"wrote {args.out}: {r['samples']} samples ({r['seconds_per_sample']:.1f} s each, {r['workers']} "
          f"workers), {r['epochs']} epochs, best validation NPCC {r['best_val_npcc']:.4f}; corpus {args.corpus}")
    return 0


def _section(config_path: Path | None, name: str) -> dict:
    """The config file's ``[name]`` table ({} without a file or the table)."""
    from ..config import load_config_file
    return dict(load_config_file(config_path).get(name, {})) if config_path else {}
