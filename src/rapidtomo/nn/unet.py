"""The RAPID 3D U-Net (paper §4.4, Fig. S1a), its presets and the ablation family A–G (Fig. 4).

The network maps an approximant patch ``(B, 1, Z, Y, X)`` to ``(B, 1, Z, 2Y, 2X)``: the golden
standard is 2x finer in y and x, and has the approximant's z (resample the approximant along z
first when they differ). Pooling and upsampling act on y and x only (kernel ``(1, 2, 2)``), so any
Z works; Y and X of any size work too (they are padded internally, by edge replication, to a
multiple of ``2**(depth-1)`` and the output is cropped back).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from ..config import Settings
from .blocks import AtrousModule, ConvNormAct, Norm

Variant = Literal["A", "B", "C", "D", "E", "F", "G"]
Preset = Literal["small", "paper"]

# the paper's rates, for 64×64 approximant patches (Fig. 4: A plain, B planes, C isotropic,
# D anisotropic a1 = a2 = 18, E–G anisotropic with growing (a1, a2); E is RAPID)
PAPER_RATES = (6, 12, 18)
PAPER_Z_RATES: dict[str, tuple[int, int]] = {"D": (18, 18), "E": (24, 30), "F": (30, 36), "G": (36, 42)}
PAPER_PATCH = 64
# preset → (approximant patch size in y and x, depth, base width)
PRESETS: dict[str, tuple[int, int, int]] = {"small": (16, 3, 8), "paper": (64, 4, 32)}
VARIANTS = ("A", "B", "C", "D", "E", "F", "G")


class NetworkSettings(Settings):
    """Architecture of the RAPID network (stored in every model file)."""

    variant: Variant = Field("E", description="A plain 3D U-Net; B x–y/y–z/x–z convs without atrous; C isotropic "
                             "3D atrous; D–G anisotropic atrous module (E = RAPID)")
    widths: list[int] = Field([8, 16, 32], description="channels per encoder level; depth = len(widths)")
    rates: list[int] = Field([2, 3, 5], description="in-plane atrous rates of the plane ASPPs (C: isotropic rates)")
    z_rates: list[int] = Field([6, 8], description="(a1, a2): z dilations of the extra y–z/x–z convs (D–G)")
    norm: Norm = Field("batch", description="normalisation after each conv; batch keeps tiled inference "
                       "seamless (no per-window statistics in eval mode)")

    @field_validator("widths", "rates", "z_rates")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1:
            raise ValueError("must be a non-empty list of positive integers")
        return v

    @property
    def depth(self) -> int:
        return len(self.widths)


def scale_rates(rates, patch: int) -> list[int]:
    """Rates for ``patch``-voxel approximant patches: ``max(1, round_half_up(r · patch / 64))``.

    The paper's rates belong to 64×64 patches; the same rule scales the in-plane rates and the
    z rates (a1, a2), so that the dilated kernels span the same fraction of a patch.
    """
    return [max(1, int(r * patch / PAPER_PATCH + 0.5)) for r in rates]


def _module_kind(variant: str) -> str | None:
    return {"A": None, "B": "planes", "C": "isotropic"}.get(variant, "anisotropic")


class RapidUNet3D(nn.Module):
    """3D U-Net whose first convolution at every encoder level is an atrous module.

    Encoder level ``l`` (width ``w_l``): first block (atrous module per the variant; a 3×3×3 conv
    for variant A) → 3×3×3 conv; then max pooling ``(1, 2, 2)``. Decoder level ``l``: transposed
    conv ``(1, 2, 2)`` → concatenation with the skip → two 3×3×3 convs. Head: transposed conv
    ``(1, 2, 2)`` (the 2x finer target grid) → 3×3×3 conv → 1×1×1 conv to one channel.

    ``forward``: ``(B, 1, Z, Y, X) → (B, 1, Z, 2Y, 2X)`` for any Z, Y, X ≥ 1.
    """

    def __init__(self, settings: NetworkSettings) -> None:
        super().__init__()
        self.settings = settings
        s, w = settings, settings.widths
        kind = _module_kind(s.variant)
        self.encoder = nn.ModuleList()
        c_in = 1
        for c in w:
            first = (ConvNormAct(c_in, c, norm=s.norm) if kind is None else
                     AtrousModule(c_in, c, kind, s.rates, s.z_rates, s.norm))
            self.encoder.append(nn.Sequential(first, ConvNormAct(c, c, norm=s.norm)))
            c_in = c
        self.up = nn.ModuleList(nn.ConvTranspose3d(w[l + 1], w[l], (1, 2, 2), stride=(1, 2, 2))
                                for l in range(len(w) - 1))
        self.decoder = nn.ModuleList(nn.Sequential(ConvNormAct(2 * w[l], w[l], norm=s.norm),
                                                   ConvNormAct(w[l], w[l], norm=s.norm))
                                     for l in range(len(w) - 1))
        self.head = nn.Sequential(nn.ConvTranspose3d(w[0], w[0], (1, 2, 2), stride=(1, 2, 2)),
                                  ConvNormAct(w[0], w[0], norm=s.norm), nn.Conv3d(w[0], 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"expected input (B, 1, Z, Y, X), got {tuple(x.shape)}")
        ny, nx = x.shape[-2:]
        m = 2 ** (self.settings.depth - 1)
        py, px = -ny % m, -nx % m
        if py or px:
            x = F.pad(x, (0, px, 0, py, 0, 0), mode="replicate")
        skips = []
        for l, level in enumerate(self.encoder):
            if l:
                x = F.max_pool3d(x, (1, 2, 2))
            x = level(x)
            skips.append(x)
        for l in reversed(range(len(self.decoder))):
            x = self.decoder[l](torch.cat([self.up[l](x), skips[l]], dim=1))
        return self.head(x)[..., : 2 * ny, : 2 * nx]


def build_network(settings: NetworkSettings) -> RapidUNet3D:
    """The network described by ``settings`` (fresh weights from torch's current RNG)."""
    return RapidUNet3D(settings)


def count_parameters(settings: NetworkSettings) -> int:
    """Number of trainable parameters of ``build_network(settings)`` (built on the meta device)."""
    with torch.device("meta"):
        net = RapidUNet3D(settings)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _widths(base: int, depth: int, mult: float) -> list[int]:
    return [max(1, round(base * 2 ** l * mult)) for l in range(depth)]


@lru_cache(maxsize=None)
def _matched_multiplier(preset: str, variant: str, norm: str) -> float:
    """Width multiplier (0.01 grid in [0.4, 3]) giving ``variant`` the parameter count closest to
    the preset's E; the count grows with the multiplier, so a bisection finds it."""
    if variant == "E":
        return 1.0

    def count(m: int) -> int:
        return count_parameters(network_preset(preset, variant, norm=norm, width_multiplier=m / 100,
                                               match_parameters=False))

    ref = count_parameters(network_preset(preset, "E", norm=norm, match_parameters=False))
    lo, hi = 40, 300
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < ref else (lo, mid)
    return min((abs(count(m) - ref), m) for m in (lo, hi))[1] / 100


def network_preset(preset: Preset = "small", variant: Variant = "E", *, norm: Norm = "batch",
                   width_multiplier: float | None = None, match_parameters: bool = True) -> NetworkSettings:
    """Settings of a preset (``small``: 16×16 approximant patches, depth 3, widths 8·2^l;
    ``paper``: 64×64, depth 4, widths 32·2^l) for an ablation ``variant``.

    Rates follow :func:`scale_rates` for the preset's patch. With ``match_parameters`` every
    variant's widths are scaled by one multiplier (a 0.01 grid) so that its parameter count is
    the closest to the preset's variant E (the paper's "similar number of total parameters").
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (one of {sorted(PRESETS)})")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {VARIANTS})")
    patch, depth, base = PRESETS[preset]
    if width_multiplier is None:
        width_multiplier = _matched_multiplier(preset, variant, norm) if match_parameters else 1.0
    z_rates = scale_rates(PAPER_Z_RATES[variant], patch) if variant in PAPER_Z_RATES else [1]
    rates = scale_rates(PAPER_RATES, patch) if variant != "B" else [1]
    return NetworkSettings(variant=variant, widths=_widths(base, depth, width_multiplier), rates=rates,
                           z_rates=z_rates, norm=norm)


def preset_patch(preset: Preset) -> int:
    """Approximant patch size in y and x of a preset (target patches are twice as large)."""
    return PRESETS[preset][0]
