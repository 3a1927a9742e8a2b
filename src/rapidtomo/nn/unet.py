"""The RAPID 3D U-Net (paper §4.4, Fig. S1a), its presets and the ablation family A–G (Fig. 4).

The network maps an approximant patch ``(B, 1, Z, Y, X)`` to ``(B, 1, Z, 2Y, 2X)``: the golden
standard is 2x finer in y and x, and has the approximant's z (resample the approximant along z
first when they differ). It may also take full-resolution inputs on the target's grid
(``NetworkSettings.inputs``: the reduced-angle SART or FBP baseline, ``(B, F, Z, 2Y, 2X)``), which
lose no lateral detail: a 2×2 pixel-unshuffle (space-to-depth) turns each into 4 channels on the
approximant's grid for the encoder, and they are concatenated again at full resolution before the
head's last 3×3×3 conv (docs/network.md, "Inputs"). Pooling and upsampling are ``2×2×2`` in z, y and x, as in the 3D U-Net
of Çiçek et al. that the paper builds on. Shape rule: Z, Y and X of any size ≥ 1 work; each is
padded internally, by edge replication at its end, to the next multiple of ``2**(depth-1)``, and
the output is cropped back, so the output shape never depends on that divisibility (the paper's
Z = 280 = 8·35 needs no padding at depth 4).

Atrous rates: the in-plane ones are a fraction of the xy patch (the paper's (6, 12, 18) for 64×64
patches, :func:`scale_rates`), the z ones ``(a1, a2)`` a fraction of Z, since a patch always spans
all of Z (the paper's (24, 30) for Z = 280, :func:`scale_z_rates`).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field, field_validator
from torch import nn

from ..config import Settings
from .blocks import AtrousModule, ConvNormAct, IsotropicASPP, Norm, PlaneASPP

Variant = Literal["A", "B", "C", "D", "E", "F", "G"]
Input = Literal["approximant", "sart", "fbp"]


def _distinct(v: list[str]) -> list[str]:
    if not v or len(set(v)) != len(v):
        raise ValueError("must name at least one input, each once")
    return v


#: the network's inputs in channel order: at least one, each once
Inputs = Annotated[list[Input], AfterValidator(_distinct)]
COARSE_INPUTS = ("approximant",)  # on the approximant's grid (Y, X); the others are on the target's (2Y, 2X)
Preset = Literal["small", "paper"]
POOL = (2, 2, 2)  # pooling and upsampling between levels, (z, y, x)

# the paper's rates, for 64×64 approximant patches (Fig. 4: A plain, B planes, C isotropic,
# D anisotropic a1 = a2 = 18, E–G anisotropic with growing (a1, a2); E is RAPID)
PAPER_RATES = (6, 12, 18)
PAPER_Z_RATES: dict[str, tuple[int, int]] = {"D": (18, 18), "E": (24, 30), "F": (30, 36), "G": (36, 42)}
PAPER_PATCH = 64
PAPER_Z = 280  # slices of the paper's volumes, to which its (a1, a2) belong
# preset → (approximant patch size in y and x, depth, base width, nominal Z for the z rates)
PRESETS: dict[str, tuple[int, int, int, int]] = {"small": (16, 3, 8, 32), "paper": (64, 4, 32, PAPER_Z)}
VARIANTS = ("A", "B", "C", "D", "E", "F", "G")


class NetworkSettings(Settings):
    """Architecture of the RAPID network (stored in every model file)."""

    variant: Variant = Field("E", description="A plain 3D U-Net; B x–y/y–z/x–z convs without atrous; C isotropic "
                             "3D atrous; D–G anisotropic atrous module (E = RAPID)")
    widths: list[int] = Field([8, 16, 32], description="channels per encoder level; depth = len(widths)")
    rates: list[int] = Field([2, 3, 5], description="in-plane atrous rates of the plane ASPPs (C: isotropic rates)")
    z_rates: list[int] = Field([3, 3], description="(a1, a2): z dilations, in slices, of the extra y–z/x–z convs "
                               "(D–G); network_preset scales the paper's (24, 30) for Z = 280 to the volume's Z")
    norm: Norm = Field("batch", description="normalisation after each conv; batch keeps tiled inference "
                       "seamless (no per-window statistics in eval mode)")
    inputs: Inputs = Field(["approximant"], description="input volumes, in channel order: approximant (the "
                                "paper's, 2x coarser in y, x) and/or the reduced-angle baselines sart, fbp (on "
                                "the target's grid)")

    @field_validator("widths", "rates", "z_rates")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1:
            raise ValueError("must be a non-empty list of positive integers")
        return v

    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def coarse_inputs(self) -> list[str]:
        """Inputs on the approximant's grid ``(Z, Y, X)``, in channel order."""
        return [i for i in self.inputs if i in COARSE_INPUTS]

    @property
    def fine_inputs(self) -> list[str]:
        """Inputs on the target's grid ``(Z, 2Y, 2X)``, in channel order."""
        return [i for i in self.inputs if i not in COARSE_INPUTS]


def scale_rates(rates, patch: int) -> list[int]:
    """In-plane rates for ``patch``-voxel approximant patches: ``max(1, round_half_up(r · patch / 64))``.

    The paper's in-plane rates belong to 64×64 patches, so the dilated kernels span the same
    fraction of a patch in y and x.
    """
    return [max(1, int(r * patch / PAPER_PATCH + 0.5)) for r in rates]


def scale_z_rates(z_rates, nz: int) -> list[int]:
    """z rates (a1, a2) for volumes of ``nz`` slices: ``max(1, round_half_up(a · nz / 280))``.

    A patch spans all of Z, so the paper's (a1, a2), given for Z = 280, scale with Z (not with
    the xy patch): the z-dilated kernels reach the same fraction of the sample's thickness.
    """
    if nz < 1:
        raise ValueError(f"nz must be ≥ 1, got {nz}")
    return [max(1, int(a * nz / PAPER_Z + 0.5)) for a in z_rates]


def _module_kind(variant: str) -> str | None:
    return {"A": None, "B": "planes", "C": "isotropic"}.get(variant, "anisotropic")


class RapidUNet3D(nn.Module):
    """3D U-Net whose first convolution at every encoder level is an atrous module.

    Encoder level ``l`` (width ``w_l``): first block (atrous module per the variant; a 3×3×3 conv
    for variant A) → 3×3×3 conv; max pooling ``(2, 2, 2)`` between levels. Decoder level ``l``:
    transposed conv ``(2, 2, 2)`` → concatenation with the skip → two 3×3×3 convs. Head:
    transposed conv ``(1, 2, 2)`` (the 2x finer target grid in y, x) → concatenation with the
    full-resolution inputs → 3×3×3 conv → 1×1×1 conv to one channel. The encoder's input is the
    coarse inputs' channels and 4 per full-resolution input (its 2×2 pixel-unshuffle).

    ``forward(coarse, fine)``: ``coarse (B, Cc, Z, Y, X)`` (``Cc`` coarse inputs; None when there
    are none) and ``fine (B, Cf, Z, 2Y, 2X)`` (None when there are none) → ``(B, 1, Z, 2Y, 2X)``,
    for any Z, Y, X ≥ 1; each of Z, Y, X is padded (edge replication) to a multiple of
    ``2**(depth-1)`` and the output cropped back.
    """

    def __init__(self, settings: NetworkSettings) -> None:
        super().__init__()
        self.settings = settings
        s, w = settings, settings.widths
        kind = _module_kind(s.variant)
        self.encoder = nn.ModuleList()
        n_fine = len(s.fine_inputs)
        c_in = len(s.coarse_inputs) + 4 * n_fine
        for c in w:
            first = (ConvNormAct(c_in, c, norm=s.norm) if kind is None else
                     AtrousModule(c_in, c, kind, s.rates, s.z_rates, s.norm))
            self.encoder.append(nn.Sequential(first, ConvNormAct(c, c, norm=s.norm)))
            c_in = c
        self.up = nn.ModuleList(nn.ConvTranspose3d(w[l + 1], w[l], POOL, stride=POOL)
                                for l in range(len(w) - 1))
        self.decoder = nn.ModuleList(nn.Sequential(ConvNormAct(2 * w[l], w[l], norm=s.norm),
                                                   ConvNormAct(w[l], w[l], norm=s.norm))
                                     for l in range(len(w) - 1))
        self.head = nn.Sequential(nn.ConvTranspose3d(w[0], w[0], (1, 2, 2), stride=(1, 2, 2)),
                                  ConvNormAct(w[0] + n_fine, w[0], norm=s.norm), nn.Conv3d(w[0], 1, 1))

    def _check_inputs(self, coarse: torch.Tensor | None, fine: torch.Tensor | None) -> tuple[int, int, int]:
        """(Z, Y, X) of the approximant grid; ValueError unless the inputs are the declared ones."""
        cc, cf = len(self.settings.coarse_inputs), len(self.settings.fine_inputs)
        for t, c, name, form in ((coarse, cc, "coarse", "(B, {c}, Z, Y, X)"), (fine, cf, "fine", "(B, {c}, Z, 2Y, 2X)")):
            if c and (t is None or t.ndim != 5 or t.shape[1] != c) or not c and t is not None and t.shape[1]:
                raise ValueError(f"the network takes {self.settings.inputs}: expected {name} input "
                                 f"{form.format(c=c) if c else 'None'}, got {None if t is None else tuple(t.shape)}")
        if fine is not None and cf:
            z, y2, x2 = fine.shape[-3:]
            if y2 % 2 or x2 % 2 or (coarse is not None and cc and tuple(coarse.shape[-3:]) != (z, y2 // 2, x2 // 2)):
                raise ValueError(f"fine input {tuple(fine.shape)} must be (B, {cf}, Z, 2Y, 2X) for the coarse "
                                 f"input {None if coarse is None else tuple(coarse.shape)}")
            return z, y2 // 2, x2 // 2
        return tuple(coarse.shape[-3:])

    def forward(self, coarse: torch.Tensor | None, fine: torch.Tensor | None = None) -> torch.Tensor:
        nz, ny, nx = self._check_inputs(coarse, fine)
        m = self.multiple
        pz, py, px = -nz % m, -ny % m, -nx % m
        parts = []
        if self.settings.coarse_inputs:
            parts.append(F.pad(coarse, (0, px, 0, py, 0, pz), mode="replicate") if pz or py or px else coarse)
        if self.settings.fine_inputs:
            if pz or py or px:
                fine = F.pad(fine, (0, 2 * px, 0, 2 * py, 0, pz), mode="replicate")
            parts.append(space_to_depth(fine))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        skips = []
        for l, level in enumerate(self.encoder):
            if l:
                x = F.max_pool3d(x, POOL)
            x = level(x)
            skips.append(x)
        for l in reversed(range(len(self.decoder))):
            x = self.decoder[l](torch.cat([self.up[l](x), skips[l]], dim=1))
        x = self.head[0](x)
        if self.settings.fine_inputs:
            x = torch.cat([x, fine], dim=1)
        return self.head[2](self.head[1](x))[..., :nz, : 2 * ny, : 2 * nx]

    @property
    def multiple(self) -> int:
        """Z, Y and X are padded to a multiple of this, ``2**(depth-1)``, inside :meth:`forward`."""
        return 2 ** (self.settings.depth - 1)


def space_to_depth(fine: torch.Tensor) -> torch.Tensor:
    """2×2 pixel-unshuffle in y, x: ``(B, C, Z, 2Y, 2X) → (B, 4C, Z, Y, X)``; channel ``4c + 2i + j``
    holds ``fine[:, c, :, i::2, j::2]``. Lossless: every full-resolution voxel is kept."""
    b, c, z, y2, x2 = fine.shape
    t = fine.reshape(b, c, z, y2 // 2, 2, x2 // 2, 2).permute(0, 1, 4, 6, 2, 3, 5)
    return t.reshape(b, 4 * c, z, y2 // 2, x2 // 2)


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


def network_preset(preset: Preset = "small", variant: Variant = "E", *, nz: int | None = None,
                   patch: int | None = None, norm: Norm = "batch", width_multiplier: float | None = None,
                   match_parameters: bool = True) -> NetworkSettings:
    """Settings of a preset (``small``: 16×16 approximant patches, depth 3, widths 8·2^l;
    ``paper``: 64×64, depth 4, widths 32·2^l) for an ablation ``variant``.

    In-plane rates follow :func:`scale_rates` for ``patch`` (default: the preset's), z rates
    :func:`scale_z_rates` for ``nz`` slices (default: the preset's nominal Z, 32 for ``small``
    as in the demo, 280 for ``paper``); pass the training volume's Z. With ``match_parameters``
    every variant's widths are scaled by one multiplier (a 0.01 grid) so that its parameter count
    is the closest to the preset's variant E (the paper's "similar number of total parameters";
    rates do not change parameter counts).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (one of {sorted(PRESETS)})")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {VARIANTS})")
    preset_patch_, depth, base, preset_nz = PRESETS[preset]
    patch, nz = patch or preset_patch_, nz or preset_nz
    if width_multiplier is None:
        width_multiplier = _matched_multiplier(preset, variant, norm) if match_parameters else 1.0
    z_rates = scale_z_rates(PAPER_Z_RATES[variant], nz) if variant in PAPER_Z_RATES else [1]
    rates = scale_rates(PAPER_RATES, patch) if variant != "B" else [1]
    return NetworkSettings(variant=variant, widths=_widths(base, depth, width_multiplier), rates=rates,
                           z_rates=z_rates, norm=norm)


def preset_patch(preset: Preset) -> int:
    """Approximant patch size in y and x of a preset (target patches are twice as large)."""
    return PRESETS[preset][0]


def _reach(module: nn.Module) -> tuple[int, int, int]:
    """Per-axis ``(z, y, x)`` reach of a shape-keeping block: how far (in its own voxels) an output
    voxel sees. A conv adds ``d·(k−1)/2``; parallel branches take the maximum; blocks in sequence add."""
    if isinstance(module, ConvNormAct):
        return tuple(d * (k - 1) // 2 for k, d in zip(module.kernel, module.dilation))
    if isinstance(module, (AtrousModule, PlaneASPP, IsotropicASPP)):
        branches = [_reach(b) for b in module.branches]
        last = _reach(module.fuse if isinstance(module, AtrousModule) else module.project)
        return tuple(max(b[a] for b in branches) + last[a] for a in range(3))
    if isinstance(module, nn.Sequential):
        parts = [_reach(m) for m in module]
        return tuple(sum(p[a] for p in parts) for a in range(3))
    raise TypeError(f"no reach rule for {type(module).__name__}")


def receptive_field(settings: NetworkSettings) -> tuple[float, float, float]:
    """Receptive-field radius ``(rz, ry, rx)`` of :class:`RapidUNet3D`, in approximant voxels.

    An output voxel depends only on input voxels whose centres lie within ``r`` of its centre along
    each axis. Computed along the deepest path, centre to centre, exactly for the convolutions: a
    block at level ``l`` (voxel spacing ``2**l``) adds its reach (``d·(k−1)/2`` per conv, the
    maximum over parallel branches) times ``2**l``; a 2×2×2 pooling into level ``l`` adds
    ``2**l / 4``, a transposed conv into level ``l`` adds ``2**l / 2``; the head's (1, 2, 2)
    transposed conv adds (0, ¼, ¼) and its 3×3×3 conv on the 2x finer target grid (1, ½, ½).
    Tiled inference is exact where every kept output voxel is ``r`` away from a tile's inner
    edges (:mod:`rapidtomo.infer`).
    """
    with torch.device("meta"):
        net = RapidUNet3D(settings)
    r = [0.0, 0.0, 0.0]
    for l, level in enumerate(net.encoder):
        j = 2 ** l
        r = [v + (j / 4 if l else 0) + j * a for v, a in zip(r, _reach(level))]
    for l in reversed(range(len(net.decoder))):
        j = 2 ** l
        r = [v + j / 2 + j * a for v, a in zip(r, _reach(net.decoder[l]))]
    head = _reach(net.head[1])
    return (r[0] + head[0], r[1] + 0.25 + head[1] / 2, r[2] + 0.25 + head[2] / 2)
