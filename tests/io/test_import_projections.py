"""rapidtomo import ptychoshelves | ptychodus | dxchange | tiff: layouts, phase sign, units, errors."""
import json

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from rapidtomo.cli import main
from rapidtomo.io import read_volume
from rapidtomo.io.importers import ImportReport, read_ptychodus, read_ptychoshelves, stack_objects

PIX = 50e-9
H, W, R, DENSITY = 12, 20, 5.0, 0.1  # object rows, columns; a cylinder along y of radius R px, phase/voxel


def cylinder_projection() -> np.ndarray:
    """(H, W) projected phase ψ ≥ 0 of a cylinder along y centred on the axis at column (W − 1)/2."""
    c = np.arange(W) - (W - 1) / 2
    chord = 2 * np.sqrt(np.clip(R ** 2 - c ** 2, 0, None))
    return np.tile(DENSITY * chord, (H, 1))


def external_object(psi: np.ndarray, offset=0.7) -> np.ndarray:
    """The object another code stores: O = exp(−iψ) (matter delays phase) times a vacuum phase offset."""
    return (0.95 * np.exp(-1j * psi + 1j * offset)).astype(np.complex64)


def write_recons_v6(path, obj, dx_spec=(PIX, PIX)):
    scipy.io.savemat(path, {"object": obj, "probe": np.ones((8, 8), np.complex64),
                            "p": {"dx_spec": np.array(dx_spec), "lambda": 1.4e-10}})


def write_niter_v73(path, obj, dx_spec=(PIX, PIX)):
    """MATLAB v7.3 as h5py sees it: column-major (transposed), complex as a real/imag compound."""
    cplx = np.dtype([("real", "<f4"), ("imag", "<f4")])
    a = np.empty(obj.T.shape, cplx)
    a["real"], a["imag"] = obj.T.real, obj.T.imag
    with h5py.File(path, "w") as f:
        f["object"] = a
        f["p/dx_spec"] = np.array(dx_spec).reshape(2, 1)


def write_ptychodus(path, obj, angle=None, pix=PIX):
    with h5py.File(path, "w") as f:
        d = f.create_dataset("object", data=obj[None])  # (layers, H, W)
        d.attrs["pixel_width_m"] = d.attrs["pixel_height_m"] = pix
        d.attrs["center_x_m"] = d.attrs["center_y_m"] = 0.0
        f.attrs["probe_energy_eV"] = 8800.0
        if angle is not None:
            f.attrs["tomography_angle_deg"] = angle


def run_import(*argv):
    return main(["import", *map(str, argv)])


@pytest.mark.parametrize("writer", [write_recons_v6, write_niter_v73])
def test_ptychoshelves_layouts_give_the_true_phase_with_auto_sign(tmp_path, writer):
    psi = cylinder_projection()
    obj = external_object(psi)
    writer(tmp_path / "a.mat", obj)
    rep = ImportReport("ptychoshelves")
    im = read_ptychoshelves(tmp_path / "a.mat", rep)
    assert im.obj.shape == (H, W) and im.pixel_m == (PIX, PIX)
    im.angle_deg = 0.0
    proj = stack_objects([im], "auto", rep)
    np.testing.assert_allclose(proj.phase[0], psi, atol=1e-5)
    assert any("phase sign -1" in n for n in rep.notes)
    assert stack_objects([im], "+1", ImportReport("x")).phase[0].mean() < 0  # the flag is obeyed


def test_ptychodus_multislice_object_and_angle(tmp_path):
    psi = cylinder_projection()
    with h5py.File(tmp_path / "p.h5", "w") as f:  # two layers whose phases add up to ψ
        d = f.create_dataset("object", data=np.stack([external_object(psi / 2, 0.3), external_object(psi / 2, 0.4)]))
        d.attrs["pixel_width_m"] = d.attrs["pixel_height_m"] = PIX
        f.attrs["tomography_angle_deg"] = 12.5
    im = read_ptychodus(tmp_path / "p.h5", ImportReport("ptychodus"))
    assert im.angle_deg == 12.5 and im.obj.shape == (2, H, W)
    np.testing.assert_allclose(stack_objects([im], "auto", ImportReport("x")).phase[0], psi, atol=1e-5)


def check_cylinder(vol, sign=1):
    assert vol.shape == (W, 4, W)
    z, x = np.indices((W, W)) - (W - 1) / 2
    inside, outside = np.hypot(z, x) < R - 1.5, np.hypot(z, x) > R + 1.5
    assert sign * vol.data[inside[:, None, :].repeat(4, 1)].mean() == pytest.approx(DENSITY, rel=0.2)
    assert abs(vol.data[outside[:, None, :].repeat(4, 1)].mean()) < 0.2 * DENSITY


def test_cli_ptychodus_to_volume_by_fbp(tmp_path, capsys):
    psi = cylinder_projection()
    angles = np.linspace(-90, 90, 24, endpoint=False)
    files = []
    for i, a in enumerate(angles):
        files.append(tmp_path / f"angle_{i:02d}.h5")
        write_ptychodus(files[-1], external_object(psi), angle=a)
    out = tmp_path / "golden.h5"
    assert run_import("ptychodus", *files, "-o", out, "--volume-shape", W, 4, W, "--method", "fbp") == 0
    vol = read_volume(out)
    check_cylinder(vol)
    assert vol.voxel_size_m == (PIX, PIX, PIX) and vol.attrs["quantity"] == "phase_rad_per_voxel"
    assert vol.attrs["phase_sign"] == -1 and vol.attrs["imported_from"] == "ptychodus"
    info = json.loads(out.with_suffix(".json").read_text())
    assert "tomography" in info["timings_s"] and info["settings"]["phase_sign"] == "auto"
    assert "phase sign -1" in capsys.readouterr().out


def test_cli_ptychoshelves_angles_csv_dxchange_and_phase_sign_flag(tmp_path):
    psi = cylinder_projection()
    angles = np.linspace(-90, 90, 24, endpoint=False)
    rows = ["file,angle_deg"]
    for i, a in enumerate(angles):
        write_recons_v6(tmp_path / f"S{i:05d}_recons.mat", external_object(psi))
        rows.append(f"S{i:05d}_recons.mat,{a}")
    (tmp_path / "angles.csv").write_text("\n".join(rows) + "\n")
    files = sorted(tmp_path.glob("S*_recons.mat"))
    assert run_import("ptychoshelves", *files, "-o", tmp_path / "g.h5", "--volume-shape", W, 4, W,
                      "--angles-csv", tmp_path / "angles.csv", "--method", "fbp", "--voxel-size", 2 * PIX, PIX, PIX) == 0
    vol = read_volume(tmp_path / "g.h5")
    assert vol.voxel_size_m == (2 * PIX, PIX, PIX)
    with h5py.File(tmp_path / "proj.h5", "w") as f:  # DXchange: phase projections, theta in degrees
        f["exchange/data"] = np.tile(-psi, (len(angles), 1, 1))
        f["exchange/theta"] = angles
    assert run_import("dxchange", tmp_path / "proj.h5", "-o", tmp_path / "d.h5", "--volume-shape", W, 4, W,
                      "--voxel-size", PIX, "--phase-sign", "-1") == 0  # the default SART
    check_cylinder(read_volume(tmp_path / "d.h5"))
    assert run_import("dxchange", tmp_path / "proj.h5", "-o", tmp_path / "d2.h5", "--volume-shape", W, 4, W,
                      "--voxel-size", PIX, "--method", "fbp", "--phase-sign", "+1") == 0
    check_cylinder(read_volume(tmp_path / "d2.h5"), sign=-1)


def test_cli_tiff_volume(tmp_path):
    data = np.zeros((3, 4, 5), np.float32)
    data[1, 1:3, 1:4] = -0.2  # a golden standard from a code with ψ < 0 in matter
    tifffile.imwrite(tmp_path / "g.tif", data)
    assert run_import("tiff", tmp_path / "g.tif", "-o", tmp_path / "g.h5", "--voxel-size", 3e-8, 2e-8, 2e-8) == 0
    v = read_volume(tmp_path / "g.h5")
    np.testing.assert_array_equal(v.data, -data)
    assert v.voxel_size_m == (3e-8, 2e-8, 2e-8)


def _h5_edit(path, field, value, attr=None):
    with h5py.File(path, "a") as f:
        if attr is not None:
            del f[field].attrs[attr]
            if value is not None:
                f[field].attrs[attr] = value
            return
        del f[field]
        if value is not None:
            f[field] = value


def _ptychodus(tmp_path):
    p = tmp_path / "in.h5"
    write_ptychodus(p, external_object(cylinder_projection()), angle=0.0)
    return p


def _shelves_v6(tmp_path, **kw):
    p = tmp_path / "in_recons.mat"
    write_recons_v6(p, external_object(cylinder_projection()), **kw)
    return p


def _shelves_v73(tmp_path):
    p = tmp_path / "Niter100.mat"
    write_niter_v73(p, external_object(cylinder_projection()))
    return p


def _dxchange(tmp_path):
    p = tmp_path / "in.h5"
    with h5py.File(p, "w") as f:
        f["exchange/data"] = np.tile(cylinder_projection(), (4, 1, 1))
        f["exchange/theta"] = np.array([0.0, 45, 90, 135])
    return p


@pytest.mark.parametrize("fmt,make,edit,extra,words", [
    ("ptychodus", _ptychodus, ("object", None, None), [], "missing dataset /object"),
    ("ptychodus", _ptychodus, ("object", None, "pixel_width_m"), [], "missing attribute /object@pixel_width_m"),
    ("ptychodus", _ptychodus, ("object", 50.0, "pixel_width_m"), [], "not an object pixel in metres"),
    ("ptychodus", _ptychodus, ("object", np.full((H, W), np.nan + 0j, np.complex64), None), [], "NaN"),
    ("ptychodus", _ptychodus, ("object", np.ones((H, W), np.float32), None), [], "must be complex"),
    ("ptychodus", _ptychodus, ("/", None, "tomography_angle_deg"), [], "no rotation angle"),
    ("ptychoshelves", _shelves_v73, ("p/dx_spec", None, None), ["--angles-csv", "A"], "missing dataset /p/dx_spec"),
    ("ptychoshelves", _shelves_v73, ("object", np.zeros(5), None), ["--angles-csv", "A"], "/object must have 2 or 3"),
    ("dxchange", _dxchange, ("exchange/theta", np.zeros(3), None), ["--voxel-size", PIX], "/exchange/theta has 3"),
    ("dxchange", _dxchange, ("exchange/theta", None, None), ["--voxel-size", PIX], "missing dataset /exchange/theta"),
    ("dxchange", _dxchange, ("exchange/theta", np.array([0, 90, 180, 720.0]), None), ["--voxel-size", PIX], "degrees"),
    ("dxchange", _dxchange, ("exchange/data", np.full((4, H, W), np.nan), None), ["--voxel-size", PIX], "NaN"),
    ("dxchange", _dxchange, None, [], "give --voxel-size"),
    ("dxchange", _dxchange, None, ["--voxel-size", 50], "not in metres"),
])
def test_malformed_is_one_line_exit_2_nothing_written(tmp_path, capsys, fmt, make, edit, extra, words):
    path = make(tmp_path)
    if edit is not None:
        _h5_edit(path, *edit)
    (tmp_path / "A").write_text(f"file,angle_deg\n{path.name},0\n")
    extra = [str(tmp_path / "A") if e == "A" else e for e in extra]
    out = tmp_path / "out.h5"
    assert run_import(fmt, path, "-o", out, "--volume-shape", W, 4, W, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err, err
    assert str(path) in err or "--voxel-size" in err
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize("case,words", [
    ("no_dx_spec", "missing variable p.dx_spec"),
    ("dx_spec_nm", "must be the object pixel [dy, dx] in metres"),
    ("not_mat", "not a readable MATLAB file"),
    ("no_csv", "no rotation angle"),
])
def test_ptychoshelves_v6_malformed(tmp_path, capsys, case, words):
    p = tmp_path / "in_recons.mat"
    obj = external_object(cylinder_projection())
    if case == "no_dx_spec":
        scipy.io.savemat(p, {"object": obj, "p": {"lambda": 1e-10}})
    elif case == "dx_spec_nm":
        write_recons_v6(p, obj, dx_spec=(50.0, 50.0))
    elif case == "not_mat":
        p.write_text("not a mat file")
    else:
        write_recons_v6(p, obj)
    assert run_import("ptychoshelves", p, "-o", tmp_path / "o.h5", "--volume-shape", W, 4, W) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(p) in err and words in err, err
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("args,words", [
    ([], "give --voxel-size"),
    (["--voxel-size", 2e-8, 2e-8], "one or three positive lengths"),
    (["--voxel-size", 20], "not in metres"),
])
def test_tiff_malformed(tmp_path, capsys, args, words):
    tifffile.imwrite(tmp_path / "g.tif", np.ones((3, 4, 5), np.float32))
    assert run_import("tiff", tmp_path / "g.tif", "-o", tmp_path / "g.h5", *args) == 2
    assert words in capsys.readouterr().err
    (tmp_path / "bad.tif").write_text("no tiff")
    assert run_import("tiff", tmp_path / "bad.tif", "-o", tmp_path / "g.h5", "--voxel-size", 1e-8) == 2
    assert "not a readable TIFF file" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "flat.tif", np.ones((4, 5), np.float32))
    assert run_import("tiff", tmp_path / "flat.tif", "-o", tmp_path / "g.h5", "--voxel-size", 1e-8) == 2
    assert "pages must have 3 dimensions" in capsys.readouterr().err
    assert not (tmp_path / "g.h5").exists()


def test_objects_of_different_sizes_crop_and_disagreeing_pixels_refuse(tmp_path, capsys):
    psi = cylinder_projection()
    write_ptychodus(tmp_path / "a.h5", external_object(psi), angle=0.0)
    write_ptychodus(tmp_path / "b.h5", external_object(np.pad(psi, 2)), angle=90.0)  # 4 px larger each way
    rep = ImportReport("ptychodus")
    proj = stack_objects([read_ptychodus(tmp_path / p, rep) for p in ("a.h5", "b.h5")], "auto", rep)
    assert proj.phase.shape == (2, H, W)
    np.testing.assert_allclose(proj.phase[1], psi, atol=1e-5)
    assert any("cropped to their common central 12x20" in n for n in rep.notes)
    write_ptychodus(tmp_path / "c.h5", external_object(psi), angle=45.0, pix=2 * PIX)
    files = [tmp_path / "a.h5", tmp_path / "c.h5"]
    assert run_import("ptychodus", *files, "-o", tmp_path / "o.h5", "--volume-shape", W, 4, W) == 2
    assert f"{files[1]}: pixel size" in capsys.readouterr().err
    assert run_import("ptychodus", tmp_path / "a.h5", "-o", tmp_path / "o.h5", "--volume-shape", W, 50, W) == 2
    assert "fewer than --volume-shape Y = 50" in capsys.readouterr().err
    assert run_import("ptychodus", tmp_path / "a.h5", "-o", tmp_path / "o.h5", "--volume-shape", W, 4, W,
                      "--voxel-size", PIX, 2 * PIX, PIX) == 2
    assert "differ from the files' pixel" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()
