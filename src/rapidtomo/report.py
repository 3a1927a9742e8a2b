"""Figures and a self-contained HTML report of a run directory.

``build_report(run_dir)`` writes ``run_dir/report/index.html`` and the PNG figures it shows, all in
``run_dir/report/`` (no other files, no network), one section per step: metrics, layer views and
PSD planes, curves, timings, settings. Everything it finds is used and every missing piece is
skipped: the volumes of :data:`rapidtomo.rundir.VOLUMES`; ``metrics.json``; ``timings.json``; the
training log (``train_log.csv`` or ``*.log.csv``); ``sweep_*.json``; ``ablation.json``; settings
files (``*.json``, ``*.toml``, ``*.yaml``). The plotting functions are reusable by the
experiments (``plot_metric_curves``, ``plot_metric_bars``).
"""
from __future__ import annotations

import csv
import html
import json
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from . import __version__, rundir
from .io import Volume, read_volume
from .io.atomic import atomic_path

LABELS = {"truth": "truth (phantom)", "golden": "golden standard", "approximant": "approximant",
          "rapid": "RAPID", "rapid_scratch": "RAPID, no pre-training", "rapid_zero_shot": "RAPID zero-shot",
          "fbp": "FBP", "sart": "SART"}
METRICS = ("pcc", "ms_ssim", "ber", "dice")
METRIC_LABELS = {"pcc": "PCC", "ms_ssim": "MS-SSIM", "ber": "BER", "dice": "DICE"}
NOT_SETTINGS = {rundir.METRICS, rundir.TIMINGS, "ablation.json", rundir.STATE}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out_png: Path) -> Path:
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    _plt().close(fig)
    return out_png


def label(name: str) -> str:
    return LABELS.get(name, name)


# ---------------------------------------------------------------- figures

def plot_metric_curves(records: list[dict], x_key: str, out_png, metrics=METRICS, group_key: str = "method",
                       x_label: str | None = None, title: str | None = None) -> Path:
    """One panel per metric: ``record[metric]`` against ``record[x_key]``, one line per ``group_key``.

    ``records``: dicts holding ``x_key``, the metrics and optionally ``group_key`` (e.g. the method).
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    groups = list(dict.fromkeys(r.get(group_key, "") for r in records))
    for ax, metric in zip(axes[0], metrics):
        for g in groups:
            rs = sorted((r for r in records if r.get(group_key, "") == g and metric in r), key=lambda r: r[x_key])
            ax.plot([r[x_key] for r in rs], [r[metric] for r in rs], "o-", ms=3, label=label(str(g)) or None)
        ax.set_xlabel(x_label or x_key)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    if any(groups):
        axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out_png)


def plot_metric_bars(rows: dict[str, dict[str, float]], out_png, metrics=METRICS, title: str | None = None) -> Path:
    """One panel per metric, a bar per row (method or variant): ``rows[name][metric]``."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    names = list(rows)
    for ax, metric in zip(axes[0], metrics):
        values = [float(rows[n].get(metric, np.nan)) for n in names]
        ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), [label(n) for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out_png)


def plot_panels(images: dict[str, np.ndarray], extent_um: tuple[float, float, float, float], out_png,
                vmin: float, vmax: float, xlabel: str, ylabel: str, title: str, marker_x: float | None = None) -> Path:
    """Images in a grid (columns chosen for a ~2:1 figure) with one colour scale and one colour bar.

    ``extent_um`` = (left, right, bottom, top) in µm, as for ``imshow``; ``marker_x`` draws a
    dashed vertical line (the start of the held-out part).
    """
    plt = _plt()
    n = len(images)
    aspect = abs(extent_um[3] - extent_um[2]) / abs(extent_um[1] - extent_um[0])  # panel height / width
    cols = min(range(1, n + 1), key=lambda c: abs(c / (-(-n // c) * aspect) - 2.0))
    rows = -(-n // cols)
    panel_w = min(4.5, 13.0 / cols)
    width, height = panel_w * cols + 1.6, (panel_w * aspect + 0.45) * rows + 0.9
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, sharex=True, sharey=True)
    fig.subplots_adjust(left=0.8 / width, right=1 - 1.1 / width, bottom=0.55 / height, top=1 - 0.5 / height,
                        wspace=0.08, hspace=0.45 / (panel_w * aspect + 0.45) + 0.05)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for i, (ax, (name, img)) in enumerate(zip(axes.ravel(), images.items())):
        im = ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, extent=extent_um, origin="upper",
                       interpolation="nearest", aspect="equal")
        if marker_x is not None:
            ax.axvline(marker_x, color="tab:orange", ls="--", lw=1)
        ax.set_title(label(name), fontsize=9)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel(ylabel, fontsize=8)
        if i + cols >= n:
            ax.set_xlabel(xlabel, fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle(title, fontsize=10)
    cax = fig.add_axes((1 - 0.95 / width, 0.15, 0.18 / width, 0.7))
    fig.colorbar(im, cax=cax, label="phase (rad/voxel)")
    return _save(fig, out_png)


def plot_psd(psds: dict[str, dict[str, np.ndarray]], freqs: dict[str, np.ndarray], out_png,
             decades: float = 6.0) -> Path:
    """log10 PSD planes: a row per volume, columns kx–kz, ky–kz, kx–ky, one colour scale per column.

    ``freqs`` maps "kz", "ky", "kx" to the axis frequencies in cycles/µm.
    """
    from .metrics.spectra import PLANES
    plt = _plt()
    names = list(psds)
    height = 2.6 * len(names) + 0.3
    fig, axes = plt.subplots(len(names), 3, figsize=(10, height), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / height, top=1 - 0.3 / height, wspace=0.3,
                        hspace=0.5)
    axis_key = {0: "kz", 1: "ky", 2: "kx"}
    for j, (plane, ((r, c), _)) in enumerate(PLANES.items()):
        top = max(np.log10(psds[n][plane].max() + 1e-300) for n in names)
        for i, n in enumerate(names):
            ax = axes[i, j]
            fr, fc = freqs[axis_key[r]], freqs[axis_key[c]]
            ax.imshow(np.log10(psds[n][plane] + 1e-300), cmap="magma", vmin=top - decades, vmax=top,
                      extent=(fc[0], fc[-1], fr[0], fr[-1]), origin="lower", aspect="auto", interpolation="nearest")
            ax.set_title(f"{label(n)}: {axis_key[c]}–{axis_key[r]}", fontsize=9)
            ax.set_xlabel(f"{axis_key[c]} (1/µm)", fontsize=8)
            ax.set_ylabel(f"{axis_key[r]} (1/µm)", fontsize=8)
            ax.tick_params(labelsize=7)
    return _save(fig, out_png)


def plot_training(rows: list[dict[str, str]], out_png) -> Path | None:
    """Loss columns (``*loss*``) against ``epoch`` from a training log; None if there are none."""
    keys = [k for k in (rows[0] if rows else {}) if "loss" in k]
    if not keys or "epoch" not in rows[0]:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    epoch = [float(r["epoch"]) for r in rows]
    for k in keys:
        ys = [float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]
        ax.plot(epoch, ys, "o-", ms=3, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_png)


# ---------------------------------------------------------------- views

def _depths(ref: np.ndarray) -> list[int]:
    """Two x–y depths: the z slices of largest variance in the reference, ≥ Z/4 apart."""
    Z = ref.shape[0]
    order = np.argsort(ref.reshape(Z, -1).var(1))[::-1]
    first = int(order[0])
    second = next((int(k) for k in order if abs(int(k) - first) >= max(1, Z // 4)), None)
    return sorted({first} | ({second} if second is not None else set()))


def layer_views(volumes: dict[str, Volume], reference: Volume, out_dir: Path,
                region_x: tuple[float, float] | None = None) -> list[tuple[str, Path]]:
    """PNG of x–y at two depths, y–z and x–z of every volume on the reference grid; (caption, path) pairs."""
    from .metrics.evaluate import Region, resample_to
    Z, Y, X = reference.shape
    dz, dy, dx = (d * 1e6 for d in reference.voxel_size_m)
    ref = np.asarray(reference.data, np.float64)
    vmin, vmax = np.percentile(ref, [1, 99])
    if vmax <= vmin:
        vmin, vmax = float(ref.min()), float(ref.max()) + 1e-12
    x_mark = None if region_x is None else (region_x[0] * X - X / 2) * dx
    x0 = X // 2 if region_x is None else min(X - 1, int(round((region_x[0] + region_x[1]) / 2 * X)))
    views = [(f"x–y at depth z = {z} ({(z - (Z - 1) / 2) * dz:+.3g} µm)", {"z": (z, z + 1)}, 0,
              (-X * dx / 2, X * dx / 2, Y * dy / 2, -Y * dy / 2), "x (µm)", "y (µm)", x_mark, f"view_xy_z{z}.png")
             for z in _depths(ref)]
    views.append((f"y–z at x = {x0}", {"x": (x0, x0 + 1)}, 2, (-Y * dy / 2, Y * dy / 2, Z * dz / 2, -Z * dz / 2),
                  "y (µm)", "z (µm)", None, "view_yz.png"))
    views.append((f"x–z at y = {Y // 2}", {"y": (Y // 2, Y // 2 + 1)}, 1,
                  (-X * dx / 2, X * dx / 2, Z * dz / 2, -Z * dz / 2), "x (µm)", "z (µm)", x_mark, "view_xz.png"))
    out = []
    for caption, ranges, axis, extent, xl, yl, mark, fname in views:
        images = {n: np.take(resample_to(v, reference, Region(ranges)), 0, axis=axis) for n, v in volumes.items()}
        out.append((caption, plot_panels(images, extent, out_dir / fname, vmin, vmax, xl, yl, caption, mark)))
    return out


def psd_figure(volumes: dict[str, Volume], reference: Volume, out_png: Path, region_x=None) -> Path:
    """PSD planes of every volume on the reference grid, restricted to the held-out x range if given."""
    from .metrics import psd_planes
    from .metrics.evaluate import resample_to
    from .metrics.spectra import frequencies
    region = None if region_x is None else tuple(region_x)
    psds = {n: psd_planes(resample_to(v, reference, region)) for n, v in volumes.items()}
    shape = next(iter(psds.values()))
    Z, Y, X = shape["kx_kz"].shape[0], shape["kx_ky"].shape[0], shape["kx_ky"].shape[1]
    freqs = {k: frequencies(n, d) * 1e-6 for k, n, d in zip(("kz", "ky", "kx"), (Z, Y, X), reference.voxel_size_m)}
    return plot_psd(psds, freqs, out_png)


# ---------------------------------------------------------------- HTML

def _table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else html.escape(str(v))


def _img(path: Path, alt: str) -> str:
    return f'<figure><img src="{html.escape(path.name)}" alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _n_angles(run_dir: Path, which: str, settings: dict) -> int | None:
    """Angles of the nominal/reduced scan: from the scan file, else the simulate settings."""
    import h5py
    path = run_dir / {"nominal": rundir.SCAN_NOMINAL, "reduced": rundir.SCAN_REDUCED}[which]
    try:
        with h5py.File(path, "r") as f:
            return int(f["/entry/data/angles_deg"].shape[0])
    except (OSError, KeyError):
        value = settings.get("simulate", {}).get(f"n_{which}")
        return int(value) if value else None


def _timing_section(run_dir: Path, timings: dict, settings: dict) -> str:
    from .experiments.timing import acquisition_time_table, computation_from_stages
    parts = [_table(["stage", "seconds"], [[html.escape(k), f"{v:.2f}"] for k, v in timings.items()])]
    comp = computation_from_stages(timings)
    n_nom, n_red = _n_angles(run_dir, "nominal", settings), _n_angles(run_dir, "reduced", settings)
    if "golden" in comp and n_nom and n_red:
        rows = acquisition_time_table(comp, n_nom, n_red)
        header = [""] + [h for m in rows for h in (f"{label(m)} time (s)", "ratio")]
        body = [[key] + [c for m in rows for c in (f"{rows[m][key + '_s']:,.1f}", f"×{rows[m][key + '_ratio']:.3g}")]
                for key in ("acquisition", "computation", "total")]
        parts.append(f"<p>Table 1 model: acquisition = {rows['golden']['acquisition_s'] / n_nom:.4g} s per angle × "
                     f"angles ({n_nom} nominal for the golden standard, {n_red} reduced for the others) × volume "
                     "fraction 1; computation measured here (RAPID = approximant + predict; training not counted). "
                     "Ratios: golden standard / method.</p>" + _table(header, body))
    return "".join(parts)


CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 0.8em 0; } img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; font-size: 0.8em; } .note { color: #777; }
"""


def _read_dict(path: Path) -> dict:
    data = _read_json(path)
    return data if isinstance(data, dict) else {}


def _metrics_section(metrics: dict, out_dir: Path) -> str:
    """A table and a bar chart per reference (``vs_golden``, ``vs_truth``); empty without metrics."""
    blocks = {k: v for k, v in metrics.items() if k.startswith("vs_") and isinstance(v, dict)}
    if not blocks:
        return ""
    html_blocks = []
    background = metrics.get("background_ber", {})
    for ref_name, rows in blocks.items():
        cells = [[html.escape(label(n)), *[_fmt(r.get(m, "–")) for m in METRICS]] for n, r in rows.items()]
        if ref_name in background:  # what a volume with no feature at all scores (docs/metrics.md)
            cells.append(["(all background)", *[_fmt(background[ref_name]) if m == "ber" else "–" for m in METRICS]])
        table = _table(["method", *[METRIC_LABELS[m] for m in METRICS]], cells)
        png = plot_metric_bars(rows, out_dir / f"metrics_{ref_name}.png", title=f"against {ref_name[3:]}")
        html_blocks.append(f"<h3>against {html.escape(ref_name[3:])}</h3>{table}{_img(png, f'metrics {ref_name}')}")
    region_x = metrics.get("region_x_fraction")
    where = f" on the x range {region_x} of the width (held out from training)" if region_x else ""
    return f"<h2>Metrics</h2><p>PCC, MS-SSIM, BER, DICE{html.escape(where)}.</p>" + "".join(html_blocks)


def volume_paths(run_dir: Path, settings: dict) -> dict[str, Path]:
    """The run's volume files by name; the user's own golden standard or truth if the run names them."""
    paths = {n: run_dir / f for n, f in rundir.VOLUMES.items()}
    for name, key in (("golden", "golden"), ("truth", "phantom")):
        given = (settings.get("pipeline") or {}).get(key)
        if given and not paths[name].exists() and Path(given).is_file():
            paths[name] = Path(given)
    return paths


def _volume_sections(volumes: dict[str, Volume], out_dir: Path, region_x) -> str:
    """Layer-wise views and PSD planes of every volume on the golden standard's grid."""
    if not volumes:
        return ""
    ref_name = "golden" if "golden" in volumes else next(iter(volumes))
    reference = volumes[ref_name]
    grid = " × ".join(str(n) for n in reference.shape)
    views = layer_views(volumes, reference, out_dir, region_x)
    png = psd_figure(volumes, reference, out_dir / "psd.png", region_x)
    return (f"<h2>Layer-wise views</h2><p>All volumes on the {html.escape(label(ref_name))} grid "
            f"({grid} voxels, z × y × x), one grey scale (its 1st–99th percentiles); the dashed line "
            "marks the start of the held-out part.</p>" + "".join(_img(p, c) for c, p in views)
            + "<h2>Power spectral density</h2><p>log10 of the PSD planes (3D PSD summed over the third "
            f"axis){' of the held-out part' if region_x else ''}, 6 decades per column.</p>"
            + _img(png, "PSD planes"))


def _curves_section(run_dir: Path, out_dir: Path) -> str:
    """Sweep curves (``sweep_*.json``), the ablation bars and the training losses, where present."""
    curves = []
    for path in sorted(run_dir.glob("sweep_*.json")):
        data = _read_json(path)
        records = data.get("records") if isinstance(data, dict) else data
        if records:
            kind = data.get("kind", path.stem[6:]) if isinstance(data, dict) else path.stem[6:]
            x_key = data.get("x_key", "value") if isinstance(data, dict) else "value"
            x_label = {"angles": "number of angles N", "range": "θmax (degrees)"}.get(kind, x_key)
            png = plot_metric_curves(records, x_key, out_dir / f"{path.stem}.png", x_label=x_label)
            curves.append(_img(png, f"quality against {x_label} ({path.name})"))
    ablation = _read_json(run_dir / "ablation.json")
    if isinstance(ablation, list) and ablation:
        png = plot_metric_bars({str(r.get("variant", i)): r for i, r in enumerate(ablation)}, out_dir / "ablation.png",
                               title="architecture variants")
        curves.append(_img(png, "architecture ablation (ablation.json)"))
    logs = [p for p in [run_dir / "train_log.csv", *sorted(run_dir.glob("*.log.csv"))] if p.exists()]
    if logs:
        with open(logs[0], newline="") as f:
            png = plot_training(list(csv.DictReader(f)), out_dir / "training.png")
        if png:
            curves.append(_img(png, f"training losses ({logs[0].name})"))
    return "<h2>Curves</h2>" + "".join(curves) if curves else ""


def _settings_section(run_dir: Path) -> str:
    """Every settings file of the run (JSON sidecars, TOML/YAML configs), each folded."""
    files = [p for p in sorted(run_dir.iterdir()) if p.is_file() and p.name not in NOT_SETTINGS
             and not p.name.startswith("sweep_") and p.suffix in (".json", ".toml", ".yaml", ".yml")]
    if not files:
        return ""
    return "<h2>Settings</h2>" + "".join(
        f"<details><summary>{html.escape(p.name)}</summary><pre>{html.escape(p.read_text())}</pre></details>"
        for p in files)


def _page(title: str, sections: list[str]) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")


def build_report(run_dir, out_dir=None) -> Path:
    """Write ``out_dir/index.html`` (default ``run_dir/report``) with its PNG figures; returns its path."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = _read_dict(run_dir / rundir.METRICS)
    timings = {k: float(v) for k, v in _read_dict(run_dir / rundir.TIMINGS).items() if isinstance(v, (int, float))}
    settings = _read_dict(run_dir / rundir.SETTINGS)
    paths = volume_paths(run_dir, settings)
    volumes = {n: read_volume(p) for n, p in paths.items() if p.exists()}
    missing = [p.name for p in paths.values() if not p.exists()]
    sections = [f"<h1>rapidtomo report</h1><p>Run directory <code>{html.escape(str(run_dir.resolve()))}</code>, "
                f"rapidtomo {__version__}, {time.strftime('%Y-%m-%d %H:%M')}.</p>",
                _metrics_section(metrics, out_dir),
                _volume_sections(volumes, out_dir, metrics.get("region_x_fraction")),
                _curves_section(run_dir, out_dir),
                "<h2>Timings</h2>" + _timing_section(run_dir, timings, settings) if timings else "",
                _settings_section(run_dir),
                f"<p class=note>Not in this run: {html.escape(', '.join(missing))}.</p>" if missing else ""]
    index = out_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(_page(f"rapidtomo report: {run_dir.name}", [s for s in sections if s]), encoding="utf-8")
    return index


class _ImageSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources += [v for k, v in attrs if k == "src" and v]


def referenced_images(index_html) -> list[Path]:
    """Paths of the images an HTML page references (``<img src>``), resolved beside the page."""
    index_html = Path(index_html)
    parser = _ImageSources()
    parser.feed(index_html.read_text(encoding="utf-8"))
    return [index_html.parent / s for s in parser.sources]
