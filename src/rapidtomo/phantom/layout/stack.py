"""Process stacks: which GDS layer becomes which material between which heights (TOML files).

A stack file (docs/phantoms.md, "Process stacks") gives heights in µm above the substrate top;
:func:`load_stack` validates it and returns a :class:`Stack` in metres. Built-in stacks live in
``rapidtomo/phantom/stacks/<name>.toml`` and are named by ``name`` (``sky130``, ``generic-cu``).
"""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import pydantic

from ...errors import UserError
from ..materials import STACK_MATERIALS, delta_beta

UM = 1e-6

GdsSpec = str  # "layer/datatype", e.g. "68/20"; in ``ignore`` either part may be "*"


def _parse_gds(spec: str) -> tuple[int, int]:
    try:
        layer, datatype = spec.split("/")
        return int(layer), int(datatype)
    except ValueError:
        raise ValueError(f"GDS layer {spec!r} must be 'layer/datatype', e.g. '68/20'") from None


class _File(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class MaterialSpec(_File):
    compound: str = pydantic.Field(description="xraylib compound formula, e.g. 'SiO2'")
    density_g_cm3: float = pydantic.Field(gt=0, description="density (g/cm³)")


class LinerSpec(_File):
    material: str
    thickness_um: float = pydantic.Field(gt=0)


class LayerSpec(_File):
    name: str
    gds: list[GdsSpec] = pydantic.Field(min_length=1, description="GDS layer/datatype pairs drawn as this layer")
    material: str
    bottom_um: float
    top_um: float
    over: list[str] = pydantic.Field(default_factory=list,
                                     description="layers this one may overlap in height; it wins where both are drawn")
    liner: LinerSpec | None = pydantic.Field(None, description="barrier on the sides and bottom (damascene)")

    @pydantic.field_validator("gds")
    @classmethod
    def _gds(cls, v):
        for s in v:
            _parse_gds(s)
        return v


class SheetSpec(_File):
    material: str
    bottom_um: float
    top_um: float


class TrenchSpec(_File):
    gds: list[GdsSpec] = pydantic.Field(min_length=1, description="active-area layers: silicon inside the trench level")
    material: str = "Si"
    fill: str = "SiO2"
    bottom_um: float = 0.0
    top_um: float


class RoutingSpec(_File):
    layer: str = pydantic.Field(description="name of a [[layer]] to route on")
    direction: Literal["x", "y"]
    pitch_um: float = pydantic.Field(gt=0)
    width_um: float = pydantic.Field(gt=0)
    via: str | None = pydantic.Field(None, description="name of the [[layer]] of vias down to the layer below")
    via_size_um: float = pydantic.Field(0.0, ge=0)


class RailSpec(_File):
    layer: str
    width_um: float = pydantic.Field(gt=0)


class CellsSpec(_File):
    boundary: GdsSpec | None = pydantic.Field(None, description="layer of the cells' abutment box (not rendered)")
    rail: RailSpec | None = None
    routing: list[RoutingSpec] = pydantic.Field(default_factory=list)


class StackFile(_File):
    name: str
    description: str = ""
    sources: list[str] = pydantic.Field(default_factory=list)
    fill: str = "SiO2"
    substrate: str = "Si"
    substrate_thickness_um: float = pydantic.Field(0.5, ge=0)
    top_um: float | None = None
    materials: dict[str, MaterialSpec] = pydantic.Field(default_factory=dict)
    trench: TrenchSpec | None = None
    layer: list[LayerSpec] = pydantic.Field(min_length=1)
    dielectric: list[SheetSpec] = pydantic.Field(default_factory=list)
    ignore: list[GdsSpec] = pydantic.Field(default_factory=list, description="GDS layers with no physical content")
    cells: CellsSpec | None = None


@dataclass(frozen=True)
class Level:
    """A drawn layer: polygons on ``gds`` extruded from ``bottom_m`` to ``top_m`` (heights above the substrate)."""

    name: str
    gds: tuple[tuple[int, int], ...]
    material: str
    bottom_m: float
    top_m: float
    over: tuple[str, ...] = ()
    liner: tuple[str, float] | None = None  # (material, thickness in m) on the sides and the bottom


@dataclass(frozen=True)
class Sheet:
    """A blanket dielectric between two heights (replaces the fill there, under drawn layers)."""

    material: str
    bottom_m: float
    top_m: float


@dataclass
class Stack:
    """A validated process stack in metres; ``levels`` bottom-up, the trench as a level plus a sheet."""

    name: str
    levels: list[Level]
    sheets: list[Sheet]
    fill: str
    substrate: str
    substrate_thickness_m: float
    top_m: float
    materials: dict[str, tuple[str | None, float]]
    ignore: tuple[str, ...]
    cells: CellsSpec | None
    source: str
    definition: dict = field(default_factory=dict)

    def level(self, name: str) -> Level:
        return next(lv for lv in self.levels if lv.name == name)

    def level_of(self, gds: tuple[int, int]) -> Level | None:
        """The level that draws GDS ``(layer, datatype)``, or None."""
        return next((lv for lv in self.levels if gds in lv.gds), None)

    def ignored(self, gds: tuple[int, int]) -> bool:
        return any(fnmatch.fnmatchcase(f"{gds[0]}/{gds[1]}", pat) for pat in self.ignore)

    def constants(self, energy_kev: float) -> dict[str, tuple[float, float]]:
        """``{material: (δ, β)}`` at ``energy_kev`` for every material of the stack."""
        return {m: delta_beta(c, d, energy_kev) for m, (c, d) in self.materials.items()}


def builtin_stacks() -> list[str]:
    """Names of the stacks shipped with rapidtomo."""
    return sorted(p.name[:-5] for p in resources.files("rapidtomo.phantom").joinpath("stacks").iterdir()
                  if p.name.endswith(".toml"))


def load_stack(spec: str | Path) -> Stack:
    """A built-in stack by name, or a stack TOML file; any problem is a one-line :class:`UserError`."""
    if str(spec) in builtin_stacks():
        res = resources.files("rapidtomo.phantom").joinpath("stacks", f"{spec}.toml")
        return parse_stack(tomllib.loads(res.read_text()), f"stack {spec}")
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{path}: stack file not found (built-in stacks: {', '.join(builtin_stacks())})")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a TOML stack file: {str(e).splitlines()[0]}") from None
    return parse_stack(data, str(path))


def parse_stack(data: dict, source: str) -> Stack:
    """Validate a stack's TOML table (``source`` names it in errors) and convert it to metres."""
    try:
        f = StackFile(**data)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{source}: {where}: {err['msg']}") from None

    def fail(msg: str):
        raise UserError(f"{source}: {msg}")

    materials = dict(STACK_MATERIALS)
    for name, m in f.materials.items():
        try:
            delta_beta(m.compound, m.density_g_cm3, 10.0)
        except ValueError:
            fail(f"materials.{name}: xraylib does not know the compound {m.compound!r}")
        materials[name] = (m.compound, m.density_g_cm3)

    def check_material(m: str, where: str) -> None:
        if m not in materials:
            fail(f"{where}: unknown material {m!r} (known: {', '.join(sorted(materials))}; "
                 f"add it under [materials])")

    for m, where in ((f.fill, "fill"), (f.substrate, "substrate")):
        check_material(m, where)
    levels = []
    sheets = []
    if f.trench is not None:
        t = f.trench
        check_material(t.material, "trench.material")
        check_material(t.fill, "trench.fill")
        if not t.top_um > t.bottom_um:
            fail(f"trench: top_um {t.top_um} must be above bottom_um {t.bottom_um}")
        levels.append(Level("active", tuple(_parse_gds(s) for s in t.gds), t.material, t.bottom_um * UM, t.top_um * UM))
        sheets.append(Sheet(t.fill, t.bottom_um * UM, t.top_um * UM))
    for i, ls in enumerate(f.layer):
        check_material(ls.material, f"layer[{i}] {ls.name}")
        if not ls.top_um > ls.bottom_um:
            fail(f"layer {ls.name}: top_um {ls.top_um} must be above bottom_um {ls.bottom_um}")
        if ls.bottom_um < 0:
            fail(f"layer {ls.name}: bottom_um {ls.bottom_um} is below the substrate top (0)")
        liner = None
        if ls.liner is not None:
            check_material(ls.liner.material, f"layer {ls.name} liner")
            if not ls.liner.thickness_um < ls.top_um - ls.bottom_um:
                fail(f"layer {ls.name}: liner thickness_um {ls.liner.thickness_um} must be below the layer's height")
            liner = (ls.liner.material, ls.liner.thickness_um * UM)
        levels.append(Level(ls.name, tuple(_parse_gds(s) for s in ls.gds), ls.material, ls.bottom_um * UM,
                            ls.top_um * UM, tuple(ls.over), liner))
    names = [lv.name for lv in levels]
    for n in names:
        if names.count(n) > 1:
            fail(f"layer name {n!r} appears twice")
    owner: dict[tuple[int, int], str] = {}
    for lv in levels:
        for g in lv.gds:
            if g in owner:
                fail(f"GDS layer {g[0]}/{g[1]} is drawn by both {owner[g]!r} and {lv.name!r}")
            owner[g] = lv.name
        for o in lv.over:
            if o not in names:
                fail(f"layer {lv.name}: over names an unknown layer {o!r}")
    for i, a in enumerate(levels):
        for b in levels[i + 1:]:
            if a.bottom_m < b.top_m and b.bottom_m < a.top_m and b.name not in a.over and a.name not in b.over:
                fail(f"layers {a.name!r} ({a.bottom_m / UM:g}-{a.top_m / UM:g} µm) and {b.name!r} "
                     f"({b.bottom_m / UM:g}-{b.top_m / UM:g} µm) overlap in height "
                     f"(list one in the other's 'over' if that is meant)")
    top_m = max(lv.top_m for lv in levels) if f.top_um is None else f.top_um * UM
    if top_m < max(lv.top_m for lv in levels) - 1e-15:
        fail(f"top_um {f.top_um} is below the top of layer {max(levels, key=lambda lv: lv.top_m).name!r}")
    for i, s in enumerate(f.dielectric):
        check_material(s.material, f"dielectric[{i}]")
        if not s.top_um > s.bottom_um or s.bottom_um < 0 or s.top_um * UM > top_m + 1e-15:
            fail(f"dielectric[{i}] ({s.material}): needs 0 <= bottom_um < top_um <= the stack top "
                 f"({top_m / UM:g} µm), got {s.bottom_um}-{s.top_um}")
        sheets.append(Sheet(s.material, s.bottom_um * UM, s.top_um * UM))
    sheets.sort(key=lambda s: s.bottom_m)
    for a, b in zip(sheets, sheets[1:]):
        if b.bottom_m < a.top_m - 1e-15:
            fail(f"dielectrics {a.material} and {b.material} (or the trench) overlap in height")
    for s in f.ignore:
        if not all(p == "*" or p.isdigit() for p in s.split("/")) or s.count("/") != 1:
            fail(f"ignore: {s!r} must be 'layer/datatype' ('*' allowed)")
    if f.cells is not None:
        for r in f.cells.routing:
            for n in (r.layer, r.via):
                if n is not None and n not in names:
                    fail(f"cells.routing: unknown layer {n!r}")
        if f.cells.rail is not None and f.cells.rail.layer not in names:
            fail(f"cells.rail: unknown layer {f.cells.rail.layer!r}")
    used = {f.fill, f.substrate} | {lv.material for lv in levels} | {s.material for s in sheets} \
        | {lv.liner[0] for lv in levels if lv.liner}
    return Stack(name=f.name, levels=levels, sheets=sheets, fill=f.fill, substrate=f.substrate,
                 substrate_thickness_m=f.substrate_thickness_um * UM, top_m=top_m,
                 materials={m: materials[m] for m in materials if m in used},
                 ignore=tuple(f.ignore) + ((f.cells.boundary,) if f.cells and f.cells.boundary else ()),
                 cells=f.cells, source=source, definition=f.model_dump())
