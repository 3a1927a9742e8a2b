"""Building blocks of the RAPID network: convolutions with per-axis kernels and dilations, the
plane-restricted ASPP, and the anisotropic atrous module (paper §4.4, Fig. S1b) with the modules
of the ablation variants B and C.

Every block maps ``(B, C_in, z, y, x)`` to ``(B, C_out, z, y, x)``: padding is computed per axis
from the kernel and the dilation (``d·(k−1)/2`` for odd ``k``), so the spatial shape is kept.
Axes are ``(z, y, x)`` as everywhere in rapidtomo.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

Norm = Literal["batch", "instance", "group", "none"]
Plane = Literal["xy", "yz", "xz"]

# the axes (of z, y, x) that a plane's 3×3 kernels span; the third axis has kernel 1
PLANE_AXES: dict[str, tuple[int, int]] = {"xy": (1, 2), "yz": (0, 1), "xz": (0, 2)}


def same_padding(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """Per-axis padding ``d·(k−1)/2`` that keeps the shape of a stride-1 convolution (odd ``k``)."""
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"kernel sizes must be odd to keep the shape, got {tuple(kernel)}")
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """Normalisation after each convolution: batch, instance (affine), group (≤ 8 groups) or none."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "group":
        groups = max(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r} (batch, instance, group, none)")


class ConvNormAct(nn.Sequential):
    """Conv3d (per-axis ``kernel``, ``dilation``; shape-keeping padding) → norm → ReLU.

    ``(B, c_in, z, y, x) → (B, c_out, z, y, x)``.
    """

    def __init__(self, c_in: int, c_out: int, kernel: Sequence[int] = (3, 3, 3),
                 dilation: Sequence[int] = (1, 1, 1), norm: Norm = "batch") -> None:
        kernel, dilation = tuple(kernel), tuple(dilation)
        super().__init__(
            nn.Conv3d(c_in, c_out, kernel, padding=same_padding(kernel, dilation), dilation=dilation,
                      bias=norm in ("none", "instance")),
            norm_layer(norm, c_out), nn.ReLU(inplace=True))
        self.kernel, self.dilation = kernel, dilation


def plane_conv(c_in: int, c_out: int, plane: Plane, rates: tuple[int, int], norm: Norm) -> ConvNormAct:
    """A 3×3 convolution in one plane with dilation ``rates`` along the plane's two axes (z, y, x order)."""
    kernel, dilation = [1, 1, 1], [1, 1, 1]
    for ax, r in zip(PLANE_AXES[plane], rates):
        kernel[ax], dilation[ax] = 3, r
    return ConvNormAct(c_in, c_out, kernel, dilation, norm)


class PlaneASPP(nn.Module):
    """ASPP restricted to one plane of a 3D volume.

    Branches: one 1×1(×1) conv and one 3×3 in-plane conv per atrous rate in ``rates`` (the same
    rate along both in-plane axes), plus, for the y–z and x–z planes, one 3×3 conv per entry of
    ``z_rates`` with dilation ``a`` along z and ``max(rates)`` along the plane's other axis (our
    reading of the paper's "two more anisotropic atrous convolutions a = a1, a2", see
    docs/network.md). The branches are concatenated and projected by a 1×1×1 conv.

    ``(B, c_in, z, y, x) → (B, c_out, z, y, x)``.
    """

    def __init__(self, c_in: int, c_out: int, plane: Plane, rates: Sequence[int] = (6, 12, 18),
                 z_rates: Sequence[int] = (), norm: Norm = "batch") -> None:
        super().__init__()
        if plane not in PLANE_AXES:
            raise ValueError(f"plane must be one of {sorted(PLANE_AXES)}, got {plane!r}")
        if z_rates and plane == "xy":
            raise ValueError("z_rates apply to the y–z and x–z planes only (the x–y plane has no z axis)")
        branches = [ConvNormAct(c_in, c_out, (1, 1, 1), norm=norm)]
        branches += [plane_conv(c_in, c_out, plane, (r, r), norm) for r in rates]
        # PLANE_AXES of yz/xz list z first: dilation a along z, max(rates) in-plane
        branches += [plane_conv(c_in, c_out, plane, (a, max(rates, default=1)), norm) for a in z_rates]
        self.branches = nn.ModuleList(branches)
        self.project = ConvNormAct(len(branches) * c_out, c_out, (1, 1, 1), norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class IsotropicASPP(nn.Module):
    """3D ASPP with isotropic rates (variant C): a 1×1×1 conv and a 3×3×3 conv per rate ``r``
    (dilation ``(r, r, r)``), concatenated and projected by a 1×1×1 conv. Shape-keeping."""

    def __init__(self, c_in: int, c_out: int, rates: Sequence[int] = (6, 12, 18), norm: Norm = "batch") -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvNormAct(c_in, c_out, (1, 1, 1), norm=norm)]
                                      + [ConvNormAct(c_in, c_out, (3, 3, 3), (r, r, r), norm) for r in rates])
        self.project = ConvNormAct(len(self.branches) * c_out, c_out, (1, 1, 1), norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class AtrousModule(nn.Module):
    """The anisotropic atrous module (paper Fig. S1b) and its ablation relatives.

    Branches, each ``c_in → c_out``, concatenated and fused by a 3×3×3 conv to ``c_out``:

    - ``kind="anisotropic"`` (variants D–G): x–y, y–z and x–z :class:`PlaneASPP` with ``rates``;
      the y–z and x–z ones carry the extra z-dilated convs ``z_rates = (a1, a2)``; plus a plain
      3×3×3 conv branch.
    - ``kind="planes"`` (variant B): the three plane blocks without atrous (``rates = (1,)``, no
      z extras) plus the 3×3×3 branch.
    - ``kind="isotropic"`` (variant C): one :class:`IsotropicASPP` with ``rates`` plus the 3×3×3
      branch.

    ``(B, c_in, z, y, x) → (B, c_out, z, y, x)``.
    """

    def __init__(self, c_in: int, c_out: int, kind: Literal["anisotropic", "planes", "isotropic"] = "anisotropic",
                 rates: Sequence[int] = (6, 12, 18), z_rates: Sequence[int] = (24, 30),
                 norm: Norm = "batch") -> None:
        super().__init__()
        if kind == "anisotropic":
            branches = [PlaneASPP(c_in, c_out, "xy", rates, (), norm),
                        PlaneASPP(c_in, c_out, "yz", rates, z_rates, norm),
                        PlaneASPP(c_in, c_out, "xz", rates, z_rates, norm)]
        elif kind == "planes":
            branches = [PlaneASPP(c_in, c_out, p, (1,), (), norm) for p in ("xy", "yz", "xz")]
        elif kind == "isotropic":
            branches = [IsotropicASPP(c_in, c_out, rates, norm)]
        else:
            raise ValueError(f"unknown atrous module kind {kind!r}")
        branches.append(ConvNormAct(c_in, c_out, (3, 3, 3), norm=norm))
        self.branches = nn.ModuleList(branches)
        self.fuse = ConvNormAct(len(branches) * c_out, c_out, (3, 3, 3), norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
