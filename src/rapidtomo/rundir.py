"""File names in a run directory (``rapidtomo pipeline``/``demo``), in one place.

The stages write these names, the pipeline checks them, and evaluation, the report and the
experiments read them.
"""
from __future__ import annotations

PHANTOM = "phantom.h5"
LAYOUT_SAMPLE = "layout_block.h5"  # rapidtomo demo --sample layout: the standard-cell block simulated as phantom.h5
SCAN_NOMINAL = "scan_nominal.h5"
SCAN_REDUCED = "scan_reduced.h5"
GOLDEN = "golden.h5"
GOLDEN_CACHE = "golden.cache.h5"
GOLDEN_PROBE = "golden_probe.h5"  # the probe the golden standard retrieved; the approximant uses it
BASELINE_CACHE = "baseline.cache.h5"  # shared by the baselines: the per-angle ptychography does not depend on the method
APPROXIMANT = "approximant.h5"
MODEL = "model.pt"
PREDICTION = "prediction.h5"
PRETRAINED = "pretrained.pt"  # the pre-trained network (pretrain stage); model.pt is then it fine-tuned
CORPUS = "corpus"  # the pre-training corpus (one HDF5 per sample, manifest.json)
MODEL_SCRATCH = "model_scratch.pt"  # with pre-training: the network trained on the golden standard alone
PREDICTION_SCRATCH = "prediction_scratch.h5"
PREDICTION_ZERO_SHOT = "prediction_zero_shot.h5"  # the pre-trained network without fine-tuning
METRICS = "metrics.json"
REPORT = "report/index.html"
SIMULATE_INFO = "simulate.json"
STATE = "pipeline_state.json"
TIMINGS = "timings.json"
SETTINGS = "pipeline_settings.json"
STAGES = "stages.txt"


def baseline(method: str) -> str:
    """The volume of a two-step baseline from the reduced scan: ``fbp.h5``, ``sart.h5``."""
    return f"{method}.h5"


# the run's volumes by the names used in metrics.json and the report, in the report's panel order
VOLUMES = {"truth": PHANTOM, "golden": GOLDEN, "approximant": APPROXIMANT, "rapid": PREDICTION,
           "rapid_scratch": PREDICTION_SCRATCH, "rapid_zero_shot": PREDICTION_ZERO_SHOT,
           "fbp": baseline("fbp"), "sart": baseline("sart")}
# file stem → name, for volumes given by path (``prediction.h5`` is RAPID's, ``phantom.h5`` the truth)
STEM_NAMES = {PREDICTION.removesuffix(".h5"): "rapid", PHANTOM.removesuffix(".h5"): "truth"}
