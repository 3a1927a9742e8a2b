"""Samples from GDS layouts and process stacks (rapidtomo.phantom.layout, `rapidtomo phantom`)."""
import json
import math

import h5py
import numpy as np
import pytest
import xraylib

gdstk = pytest.importorskip("gdstk")

from rapidtomo.cli import main  # noqa: E402
from rapidtomo.io import read_volume  # noqa: E402
from rapidtomo.phantom.layout import (PhantomSettings, layout_block_phantom, load_stack, make_sample,  # noqa: E402
                                      parse_stack, render_layout)
from rapidtomo.phantom.layout.raster import coverage  # noqa: E402
from rapidtomo.physics.geometry import wavelength_m  # noqa: E402

UM = 1e-6
VOX = 0.1  # µm: lateral voxel of the small tests
DZ = 0.05  # µm

STACK_TOML = """
name = "test"
fill = "SiO2"
substrate = "Si"
substrate_thickness_um = 0.1
top_um = 0.4

[[layer]]
name = "m1"
gds = ["1/0"]
material = "Cu"
bottom_um = 0.0
top_um = 0.1

[[layer]]
name = "v1"
gds = ["2/0"]
material = "W"
bottom_um = 0.15
top_um = 0.3
"""


def phi(material, energy_kev=8.8, dz_m=DZ * UM):
    """Phase per voxel of a material of the test stack, from xraylib directly."""
    compound, density = {"Cu": ("Cu", 8.96), "W": ("W", 19.3), "SiO2": ("SiO2", 2.2), "Si": ("Si", 2.33)}[material]
    delta = 1 - xraylib.Refractive_Index_Re(compound, energy_kev, density)
    return 2 * math.pi * delta * dz_m / wavelength_m(energy_kev)


def stack():
    import tomllib
    return parse_stack(tomllib.loads(STACK_TOML), "test stack")


def write_gds(path, shapes, cells=()):
    """GDS with top cell TOP holding ``shapes`` (gdstk objects) and references ``cells``; a 1x1 µm frame on 1/0 corner."""
    lib = gdstk.Library()
    top = lib.new_cell("TOP")
    for s in shapes:
        top.add(s)
    for c in {id(c): c for c, _ in cells}.values():
        lib.add(c)
    for _, ref in cells:
        top.add(ref)
    lib.write_gds(path)
    return path


def render(path, window=(0, 0, 1.0, 1.0), **kw):
    return render_layout(path, stack(), (DZ * UM, VOX * UM, VOX * UM), window_um=window, **kw)


def test_two_layers_right_material_height_position_and_delta(tmp_path):
    # Cu on 1/0 at x 0.2-0.5, y 0.3-0.6 µm; W on 2/0 at x 0.6-0.9, y 0.1-0.2 µm: whole voxels
    gds = write_gds(tmp_path / "two.gds", [gdstk.rectangle((0.2, 0.3), (0.5, 0.6), layer=1),
                                           gdstk.rectangle((0.6, 0.1), (0.9, 0.2), layer=2)])
    (tmp_path / "test.toml").write_text(STACK_TOML)
    out = tmp_path / "s.h5"
    assert main(["phantom", "--layout", str(gds), "--stack", str(tmp_path / "test.toml"), "--window", "0", "0", "1",
                 "1", "--voxel-size", str(DZ * UM), str(VOX * UM), str(VOX * UM), "-o", str(out)]) == 0
    vol = read_volume(out)
    with h5py.File(out) as f:
        labels = f["labels"][()]
        names = json.loads(f["labels"].attrs["label_names"])
    # z: top 0.4 µm, 0.1 µm substrate → 10 voxels of 50 nm; index 0 is the top
    assert vol.shape == (10, 10, 10) and labels.shape == vol.shape
    cu = np.zeros(vol.shape, bool)
    cu[6:8, 3:6, 2:5] = True     # heights 0-0.1 µm → z 6, 7; y index grows with layout y
    w = np.zeros(vol.shape, bool)
    w[2:5, 1, 6:9] = True        # heights 0.15-0.3 µm → z 2, 3, 4
    si = np.zeros(vol.shape, bool)
    si[8:] = True
    assert np.array_equal(labels == names.index("Cu"), cu)
    assert np.array_equal(labels == names.index("W"), w)
    assert np.array_equal(labels == names.index("Si"), si)
    assert np.all(labels[~(cu | w | si)] == names.index("SiO2"))
    np.testing.assert_allclose(vol.data[cu], phi("Cu"), rtol=1e-6)
    np.testing.assert_allclose(vol.data[w], phi("W"), rtol=1e-6)
    np.testing.assert_allclose(vol.data[~(cu | w | si)], phi("SiO2"), rtol=1e-6)
    beta_w = xraylib.Refractive_Index_Im("W", 8.8, 19.3)
    np.testing.assert_allclose(vol.attenuation[w], 2 * math.pi * beta_w * DZ * UM / wavelength_m(8.8), rtol=1e-6)
    assert vol.attrs["phantom"] == "layout" and vol.attrs["cell"] == "TOP"
    assert json.loads(vol.attrs["window_m"]) == pytest.approx([0, 0, 1e-6, 1e-6])
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["stage"] == "phantom" and "render" in info["timings_s"]


def test_partial_voxels_in_proportion_to_area_and_height(tmp_path):
    # Cu edges off the grid: x 0.23-0.47, y 0.31-0.58 µm; W from 0.17 to 0.26 µm (partial in z)
    gds = write_gds(tmp_path / "p.gds", [gdstk.rectangle((0.23, 0.31), (0.47, 0.58), layer=1),
                                         gdstk.rectangle((0.6, 0.1), (0.9, 0.2), layer=2)])
    st = stack()
    st.levels[1] = type(st.levels[1])("v1", ((2, 0),), "W", 0.17 * UM, 0.26 * UM)
    s = render_layout(gds, st, (DZ * UM, VOX * UM, VOX * UM), window_um=(0, 0, 1, 1))
    edges = np.arange(11) * VOX
    fx = np.clip(np.minimum(edges[1:], 0.47) - np.maximum(edges[:-1], 0.23), 0, None) / VOX
    fy = np.clip(np.minimum(edges[1:], 0.58) - np.maximum(edges[:-1], 0.31), 0, None) / VOX
    f = np.outer(fy, fx)
    expect = f * phi("Cu") + (1 - f) * phi("SiO2")
    np.testing.assert_allclose(s.volume.data[6], expect, rtol=1e-5)
    assert f[3, 2] == pytest.approx(0.9 * 0.7) and f[5, 4] == pytest.approx(0.8 * 0.7)  # partial voxels checked
    # W in z: voxel 2 is 0.25-0.30 µm (W in 0.25-0.26 → 20 %), voxel 4 0.15-0.20 (W in 0.17-0.20 → 60 %)
    zf = {2: 0.2, 3: 1.0, 4: 0.6}
    for iz, g in zf.items():
        assert s.volume.data[iz, 1, 7] == pytest.approx(g * phi("W") + (1 - g) * phi("SiO2"), rel=1e-5)


def test_general_polygons_exact_to_1_percent():
    # a triangle and a 45° octagon against 400x400 supersampling per pixel
    from matplotlib.path import Path as MplPath
    tri = np.array([[0.13, 0.07], [3.31, 0.72], [1.24, 2.93]])
    octagon = np.array(gdstk.regular_polygon((2.0, 1.5), 1.2, 8).points)
    n = 200
    xs = (np.arange(4 * n) + 0.5) / n
    ys = (np.arange(3 * n) + 0.5) / n
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    # in metres on a 7.3 nm grid (off the 1 nm database grid) as well as in pixel units
    for poly, pitch in ((tri, 1.0), (octagon, 1.0), (tri, 7.3e-9), (octagon, 7.3e-9)):
        cov = coverage([poly * pitch], (0.0, 0.0), (pitch, pitch), (3, 4), precision=1e-3 * pitch)
        ref = MplPath(poly).contains_points(pts).reshape(3, n, 4, n).mean(axis=(1, 3))
        assert np.abs(cov - ref).max() < 0.01
        assert cov.sum() == pytest.approx(gdstk.Polygon(poly).area(), rel=1e-6)


def test_mirrored_and_rotated_references_match_flat_geometry(tmp_path):
    l_shape = [(0.0, 0.0), (0.3, 0.0), (0.3, 0.1), (0.1, 0.1), (0.1, 0.25), (0.0, 0.25)]
    cell = gdstk.Cell("L")
    cell.add(gdstk.Polygon(l_shape, layer=1))
    refs = [gdstk.Reference(cell, (0.5, 0.5), rotation=math.pi / 2),
            gdstk.Reference(cell, (0.55, 0.55), x_reflection=True),
            gdstk.Reference(cell, (0.1, 0.6), rotation=math.pi / 6)]
    gds = write_gds(tmp_path / "refs.gds", [], [(cell, r) for r in refs])
    flat = []
    for r in refs:
        p = np.array(l_shape)
        if r.x_reflection:
            p[:, 1] *= -1
        c, s = math.cos(r.rotation), math.sin(r.rotation)
        flat.append(gdstk.Polygon(p @ np.array([[c, s], [-s, c]]) + r.origin, layer=1))
    gds_flat = write_gds(tmp_path / "flat.gds", flat)
    a, b = render(gds), render(gds_flat)
    np.testing.assert_allclose(a.volume.data, b.volume.data, rtol=1e-6)
    # the rotated L occupies x 0.25-0.5 (left of its origin), the mirrored one y 0.3-0.55 (below its origin)
    cu = a.labels[6] == a.label_names.index("Cu")
    assert cu[5, 3] and cu[4, 5] and not cu[6, 6]


def test_paths_with_widths_and_polygons_with_holes(tmp_path):
    path = gdstk.FlexPath([(0.05, 0.15), (0.95, 0.15)], 0.1, layer=1)      # 0.9 x 0.1 µm wire
    ring = gdstk.boolean(gdstk.rectangle((0.2, 0.4), (0.8, 1.0)), gdstk.rectangle((0.4, 0.6), (0.6, 0.8)), "not",
                         layer=1)
    s = render(write_gds(tmp_path / "ph.gds", [path, *ring]))
    cu_phase = s.volume.data[6] - phi("SiO2")
    frac = cu_phase / (phi("Cu") - phi("SiO2"))
    assert frac.sum() * VOX ** 2 == pytest.approx(0.9 * 0.1 + 0.36 - 0.04, rel=1e-5)
    assert frac[1, 0] == pytest.approx(0.5, rel=1e-5) and frac[1, 5] == pytest.approx(1, rel=1e-5)
    assert frac[7, 5] == pytest.approx(0, abs=1e-6) and frac[5, 3] == pytest.approx(1, rel=1e-5)  # hole, ring


def test_oasis_reads_like_gds(tmp_path):
    lib = gdstk.Library()
    lib.new_cell("TOP").add(gdstk.rectangle((0.23, 0.31), (0.47, 0.58), layer=1))
    lib.write_gds(tmp_path / "a.gds")
    lib.write_oas(tmp_path / "a.oas")
    np.testing.assert_allclose(render(tmp_path / "a.oas").volume.data, render(tmp_path / "a.gds").volume.data)


BAD_STACKS = {
    "overlap": (STACK_TOML.replace("bottom_um = 0.15", "bottom_um = 0.05"), "overlap in height"),
    "material": (STACK_TOML.replace('material = "W"', 'material = "unobtainium"'), "unknown material"),
    "toml": ("name = [", "not a TOML stack file"),
}


@pytest.mark.parametrize("case", ["overlap", "material", "toml", "unknown-layer", "not-gds", "truncated-gds"])
def test_malformed_inputs_stop_with_one_line_and_write_nothing(tmp_path, capsys, case):
    gds = write_gds(tmp_path / "l.gds", [gdstk.rectangle((0, 0), (1, 1), layer=1)])
    text, words = BAD_STACKS.get(case, (STACK_TOML, None))
    if case == "unknown-layer":
        gds = write_gds(tmp_path / "l.gds", [gdstk.rectangle((0, 0), (1, 1), layer=7, datatype=3)])
        words = "layer 7/3"
    if case == "not-gds":
        gds = tmp_path / "l.gds"
        gds.write_text("this is not a layout\n")
        words = "not a GDSII or OASIS file"
    if case == "truncated-gds":
        gds.write_bytes(gds.read_bytes()[:60])
        words = "cannot read the layout"
    (tmp_path / "st.toml").write_text(text)
    out = tmp_path / "o" / "s.h5"
    assert main(["phantom", "--layout", str(gds), "--stack", str(tmp_path / "st.toml"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err
    assert (str(tmp_path / "st.toml") in err) or (str(gds) in err)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_builtin_stacks_are_consistent():
    for name in ("sky130", "generic-cu"):
        st = load_stack(name)
        assert st.levels and st.top_m > max(lv.top_m for lv in st.levels) - 1e-12
    sky = load_stack("sky130")
    assert sky.level("met1").material == "Al" and sky.level("li1").material == "TiN"
    assert sky.level("met1").bottom_m == pytest.approx(1.3761e-6) and sky.level("met5").top_m == pytest.approx(6.6311e-6)
    assert sum(lv.material == "Cu" for lv in load_stack("generic-cu").levels) == 11


def test_config_file_section(tmp_path):
    gds = write_gds(tmp_path / "c.gds", [gdstk.rectangle((0, 0), (0.4, 0.4), layer=1)])
    (tmp_path / "test.toml").write_text(STACK_TOML)
    (tmp_path / "cfg.toml").write_text(f'[phantom]\nlayout = "{gds}"\nstack = "{tmp_path / "test.toml"}"\n'
                                       f'voxel_size_m = 1e-7\nenergy_kev = 10.0\n')
    out = tmp_path / "c.h5"
    assert main(["phantom", "--config", str(tmp_path / "cfg.toml"), "-o", str(out)]) == 0
    vol = read_volume(out)
    assert vol.shape == (5, 4, 4) and vol.attrs["energy_kev"] == 10.0


def test_sky130_cell_block_renders_with_its_materials(tmp_path):
    s = make_sample(PhantomSettings(cells="sky130_fd_sc_hd", rows=2, row_width_um=6.0, voxel_size_m=50e-9, seed=3),
                    write_gds=tmp_path / "block.gds")
    z, y, x = s.volume.shape
    assert (y, x) == (round(2 * 2.72 / 0.05), round(6.0 / 0.05)) and z == math.ceil((7.2611 + 0.5) / 0.05)
    present = {s.label_names[i] for i in np.unique(s.labels)}
    assert {"Al", "W", "TiN", "polySi", "Si", "SiO2", "Si3N4"} <= present
    # the met1 rails: Al along the row boundaries at met1's heights (1.3761-1.7361 µm)
    iz = int((7.2611 - 1.55) / 0.05)
    assert np.all(s.labels[iz, 0, :] == s.label_names.index("Al"))
    assert read_back_gds_cells(tmp_path / "block.gds") > 2
    other = make_sample(PhantomSettings(cells="sky130_fd_sc_hd", rows=2, row_width_um=6.0, voxel_size_m=50e-9,
                                        seed=4))
    assert not np.array_equal(other.labels, s.labels)


def read_back_gds_cells(path):
    return len(gdstk.read_gds(path).cells)


def test_tiny_layout_block_simulates():
    from rapidtomo.simulate import SimulateSettings, simulate
    vol = layout_block_phantom((8, 16, 32), 60e-9, seed=1)
    assert vol.shape == (8, 16, 32) and vol.voxel_size_m[1] == vol.voxel_size_m[2] == 60e-9
    assert vol.attenuation is not None and vol.data.min() > 0
    _, nominal, reduced = simulate(SimulateSettings(n_nominal=2, n_reduced=1, photons=0), vol)
    assert nominal.intensities.shape[0] == 2 and np.all(np.isfinite(nominal.intensities))
    assert nominal.pixel_size_m == pytest.approx(60e-9)


def test_cli_sample_file_simulates(tmp_path):
    out = tmp_path / "sample.h5"
    assert main(["phantom", "--cells", "sky130_fd_sc_hd", "--rows", "1", "--row-width-um", "3", "--voxel-size",
                 "0.25e-6", "60e-9", "60e-9", "--window", "0", "0", "1.92", "0.96", "-o", str(out)]) == 0
    assert read_volume(out).shape == (32, 16, 32)
    assert main(["simulate", "--phantom", str(out), "--out", str(tmp_path / "sim"), "--n-nominal", "2",
                 "--n-reduced", "1", "--photons", "0"]) == 0
    assert (tmp_path / "sim" / "scan_reduced.h5").exists()


def test_sky130_trench_contacts_under_poly_and_nitride(tmp_path):
    gds = write_gds(tmp_path / "fe.gds", [
        gdstk.rectangle((0.0, 0.0), (1.0, 0.5), layer=65, datatype=20),    # diffusion
        gdstk.rectangle((0.2, 0.0), (0.4, 1.0), layer=66, datatype=20),    # poly gate
        gdstk.rectangle((0.25, 0.7), (0.35, 0.8), layer=66, datatype=44),  # licon on poly
        gdstk.rectangle((0.6, 0.1), (0.7, 0.2), layer=66, datatype=44),    # licon on diffusion
        gdstk.rectangle((0.0, 0.0), (1.0, 1.0), layer=64, datatype=20),    # n-well: ignored
    ])
    s = render_layout(gds, load_stack("sky130"), (0.01 * UM, 0.05 * UM, 0.05 * UM), window_um=(0, 0, 1, 1))
    top = 7.2611
    n = s.label_names

    def at(h):
        return s.labels[int((top - h) / 0.01)]
    assert np.all(at(0.2)[:10] == n.index("Si")) and np.all(at(0.2)[10:] == n.index("SiO2"))   # trench
    assert at(0.4)[15, 5] == n.index("polySi") and at(0.4)[3, 13] == n.index("W")             # poly wins
    assert s.volume.data[int((top - 0.4) / 0.01), 15, 5] == pytest.approx(phi("Si", dz_m=0.01 * UM), rel=1e-6)
    assert at(0.7)[15, 5] == n.index("W") and at(0.7)[15, 2] == n.index("SiO2")               # contact above
    assert np.all(at(1.07) == n.index("Si3N4")) and np.all(at(-0.2) == n.index("Si"))         # lint, substrate


def test_liner_on_the_sides_and_bottom(tmp_path):
    # a Cu line 0.2-0.8 x 0.2-0.8 µm, 0-0.1 µm high, with a 0.05 µm TaN liner: at 25 nm voxels the
    # liner fills the bottom two voxels and a rim two voxels wide, the core is Cu
    gds = write_gds(tmp_path / "ln.gds", [gdstk.rectangle((0.2, 0.2), (0.8, 0.8), layer=1)])
    import tomllib
    data = tomllib.loads(STACK_TOML)
    data["layer"][0]["liner"] = {"material": "TaN", "thickness_um": 0.05}
    s = render_layout(gds, parse_stack(data, "liner stack"), (0.025 * UM, 0.025 * UM, 0.025 * UM),
                      window_um=(0, 0, 1, 1))
    n = s.label_names
    top = int(0.4 / 0.025)              # z index of height 0 (the bottom of the layer) is top - 1
    bottom, upper = s.labels[top - 1], s.labels[top - 3]
    assert np.all(bottom[8:32, 8:32] == n.index("TaN"))
    assert np.all(upper[10:30, 10:30] == n.index("Cu"))
    rim = np.zeros((40, 40), bool)
    rim[8:32, 8:32] = True
    rim[10:30, 10:30] = False
    assert np.all(upper[rim] == n.index("TaN")) and upper[5, 5] == n.index("SiO2")
    assert "TaN" in load_stack("generic-cu").materials


def test_generic_cu_lines_vias_and_low_k(tmp_path):
    gds = write_gds(tmp_path / "cu.gds", [gdstk.rectangle((-0.5, 0.1), (1.5, 0.3), layer=10),  # M1 along x
                                          gdstk.rectangle((0.4, 0.1), (0.6, 0.3), layer=11),   # V1
                                          gdstk.rectangle((0.4, 0.0), (0.6, 1.0), layer=12)])  # M2 along y
    s = render_layout(gds, load_stack("generic-cu"), (0.01 * UM, 0.1 * UM, 0.1 * UM), window_um=(0, 0, 1, 1))
    n = s.label_names

    def at(h):
        return s.labels[int((3.08 - h) / 0.01)]
    assert at(0.19)[2, 0] == n.index("Cu") and at(0.19)[6, 0] == n.index("low-k")       # M1
    assert at(0.25)[2, 5] == n.index("Cu") and at(0.25)[2, 0] == n.index("low-k")       # V1 only at the via
    assert at(0.235)[2, 0] == n.index("SiCN")                                            # cap on M1
    assert np.all(at(0.31)[:, 4:6] == n.index("Cu")) and at(2.0)[0, 0] == n.index("SiO2")
    # the window cuts M1 at x = 0 and 1 µm: no liner along the cut (TaN only on its y sides)
    cu_phase = s.volume.data[int((3.08 - 0.19) / 0.01), 2]
    assert cu_phase[0] == pytest.approx(cu_phase[2], rel=1e-6) and cu_phase[-1] == pytest.approx(cu_phase[2], rel=1e-6)


CELLS_TOML = STACK_TOML + """
[[layer]]
name = "m2"
gds = ["3/0"]
material = "Cu"
bottom_um = 0.3
top_um = 0.4

[cells]
boundary = "100/0"
rail = { layer = "m1", width_um = 0.1 }

[[cells.routing]]
layer = "m2"
direction = "y"
pitch_um = 0.2
width_um = 0.1
via = "v1"
via_size_um = 0.1
"""


def test_block_from_a_users_cell_directory(tmp_path):
    lib_dir = tmp_path / "cells"
    lib_dir.mkdir()
    for name, width in (("a", 0.6), ("b", 1.0), ("fill1", 0.2)):
        lib = gdstk.Library()
        c = lib.new_cell(name)
        c.add(gdstk.rectangle((0, 0), (width, 1.2), layer=100))           # abutment box
        c.add(gdstk.rectangle((0.05, 0.3), (width - 0.05, 0.5), layer=1))  # a wire inside
        lib.write_gds(lib_dir / f"{name}.gds")
    (tmp_path / "cells.toml").write_text(CELLS_TOML.replace("top_um = 0.4\n", "top_um = 0.45\n", 1))
    out = tmp_path / "b.h5"
    args = ["phantom", "--cells", str(lib_dir), "--stack", str(tmp_path / "cells.toml"), "--rows", "3",
            "--row-width-um", "5", "--routing-density", "1", "--voxel-size", "0.05e-6", "-o", str(out)]
    assert main(args) == 0
    vol = read_volume(out)
    with h5py.File(out) as f:
        labels, names = f["labels"][()], json.loads(f["labels"].attrs["label_names"])
    assert vol.shape[1:] == (round(3 * 1.2 / 0.05), round(5 / 0.05))
    # rails on m1 (0-0.1 µm high) along y = 0, 1.2, 2.4 and 3.6 µm; every m2 track (x = 0.1, 0.3, ...) carries wire
    m1 = labels[int((0.45 - 0.05) / 0.05)]
    assert np.all(m1[0, :] == names.index("Cu")) and np.all(m1[24, :] == names.index("Cu"))
    m2 = labels[int((0.45 - 0.35) / 0.05)] == names.index("Cu")
    assert m2[:, 2::4].mean() > 0.5 and not m2[:, 4::4].any()
    # the same library with a stack that has no [cells] table: one line, exit 2
    (tmp_path / "plain.toml").write_text(STACK_TOML)
    assert main(args[:4] + [str(tmp_path / "plain.toml")] + args[5:]) == 2


def test_window_sets_the_grid_origin(tmp_path):
    gds = write_gds(tmp_path / "w.gds", [gdstk.rectangle((0.2, 0.3), (0.5, 0.6), layer=1),
                                         gdstk.rectangle((0.0, 0.0), (0.1, 0.1), layer=1)])
    s = render(gds, window=(0.2, 0.3, 0.7, 0.8))
    cu = s.labels[6] == s.label_names.index("Cu")
    expect = np.zeros((5, 5), bool)
    expect[0:3, 0:3] = True
    assert np.array_equal(cu, expect)
    assert s.volume.attrs["window_m"] == pytest.approx([0.2e-6, 0.3e-6, 0.7e-6, 0.8e-6])


def test_too_large_a_volume_stops_before_allocating(tmp_path, capsys):
    gds = write_gds(tmp_path / "big.gds", [gdstk.rectangle((0, 0), (100, 100), layer=1)])
    (tmp_path / "test.toml").write_text(STACK_TOML)
    out = tmp_path / "big.h5"
    assert main(["phantom", "--layout", str(gds), "--stack", str(tmp_path / "test.toml"), "--voxel-size", "1e-9",
                 "-o", str(out)]) == 2
    assert "GiB" in capsys.readouterr().err and not out.exists()
