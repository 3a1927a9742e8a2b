import pytest
import torch

from rapidtomo.nn import (VARIANTS, AtrousModule, NetworkSettings, PlaneASPP, build_network, count_parameters,
                          network_preset, receptive_field, same_padding, scale_rates, scale_z_rates)


def tiny(variant="E", **kw):
    return NetworkSettings(variant=variant, widths=[2, 4], rates=[1, 2], z_rates=[2, 3], **kw)


@pytest.mark.parametrize("variant", ["A", "B", "C", "E"])
@pytest.mark.parametrize("shape", [(1, 1, 4, 8, 8), (2, 1, 5, 7, 9), (1, 1, 3, 1, 2), (1, 1, 6, 12, 5)])
def test_output_is_twice_finer_in_y_and_x(variant, shape):
    net = build_network(tiny(variant)).eval()
    with torch.no_grad():
        y = net(torch.randn(shape))
    b, _, z, ny, nx = shape
    assert y.shape == (b, 1, z, 2 * ny, 2 * nx)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("inputs", [["approximant", "sart"], ["sart"], ["fbp", "approximant", "sart"]])
@pytest.mark.parametrize("zyx", [(4, 8, 8), (5, 7, 9), (3, 1, 2), (6, 12, 5)])
def test_full_resolution_inputs_any_shape(inputs, zyx):
    """With SART/FBP inputs on the 2x grid the output is still (Z, 2Y, 2X) for any Z, Y, X, and a
    wrong channel count or grid is a ValueError naming the inputs."""
    s = tiny(inputs=inputs)
    net = build_network(s).eval()
    z, y, x = zyx
    coarse = torch.randn(2, len(s.coarse_inputs), z, y, x) if s.coarse_inputs else None
    fine = torch.randn(2, len(s.fine_inputs), z, 2 * y, 2 * x)
    with torch.no_grad():
        out = net(coarse, fine)
    assert out.shape == (2, 1, z, 2 * y, 2 * x) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="takes"):
        net(torch.randn(2, 1, z, y, x), None)
    if s.coarse_inputs:
        with pytest.raises(ValueError, match="must be"):
            net(coarse, torch.randn(2, len(s.fine_inputs), z, 2 * y + 2, 2 * x))


def test_full_resolution_detail_reaches_the_output():
    """Space-to-depth keeps every fine voxel: the output depends on each of the four fine voxels
    under one approximant voxel, each differently (an average over them would not)."""
    torch.manual_seed(0)
    net = build_network(tiny(inputs=["approximant", "sart"])).eval()
    coarse = torch.randn(1, 1, 4, 8, 8)
    fine = torch.randn(1, 1, 4, 16, 16, requires_grad=True)
    out = net(coarse, fine)
    out[0, 0, 2, 7, 9].backward()
    g = fine.grad[0, 0, 2, 6:8, 8:10]   # the 2x2 fine voxels under approximant voxel (3, 4)
    assert (g.abs() > 0).all() and len({round(float(v), 6) for v in g.flatten()}) == 4
    from rapidtomo.nn.unet import space_to_depth
    t = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(1, 2, 3, 4, 6)
    d = space_to_depth(t)
    assert d.shape == (1, 8, 3, 2, 3) and torch.equal(d[0, 4 * 1 + 2 * 1 + 0], t[0, 1, :, 1::2, 0::2])
    assert torch.equal(torch.sort(d.flatten())[0], torch.sort(t.flatten())[0])


@pytest.mark.parametrize("shape", [(1, 1, 3, 11, 13), (1, 1, 4, 16, 16), (1, 1, 1, 4, 4), (1, 1, 7, 5, 8)])
def test_default_small_network_shapes(shape):
    """Depth 3 pools z, y, x twice: any Z, Y, X is padded to a multiple of 4 and cropped back."""
    net = build_network(network_preset("small", "E")).eval()
    with torch.no_grad():
        assert net(torch.randn(shape)).shape == (1, 1, shape[2], 2 * shape[3], 2 * shape[4])


def test_same_padding_keeps_shape_for_large_dilations():
    assert same_padding((3, 3, 1), (24, 5, 1)) == (24, 5, 0)
    with pytest.raises(ValueError):
        same_padding((2, 3, 3), (1, 1, 1))
    m = AtrousModule(3, 5, "anisotropic", rates=(2, 3, 5), z_rates=(6, 8), norm="none")
    assert m(torch.randn(1, 3, 5, 6, 7)).shape == (1, 5, 5, 6, 7)


@pytest.mark.parametrize("plane, spread", [("xy", (False, True, True)), ("yz", (True, True, False)),
                                           ("xz", (True, False, True))])
def test_plane_aspp_stays_in_its_plane(plane, spread):
    """An impulse spreads only along the plane's two axes (norm none, positive weights)."""
    torch.manual_seed(0)
    z_rates = (3,) if plane != "xy" else ()
    m = PlaneASPP(1, 2, plane, rates=(1, 2), z_rates=z_rates, norm="none")
    for p in m.parameters():
        p.data = p.data.abs()
    x = torch.zeros(1, 1, 9, 9, 9)
    x[0, 0, 4, 4, 4] = 1.0
    zero = m(torch.zeros_like(x))
    resp = (m(x) - zero).abs().sum(dim=(0, 1)) > 1e-7
    for axis, expected in enumerate(spread):
        others = [a for a in range(3) if a != axis]
        line = resp.permute(axis, *others)[:, 4, 4]  # the line through the impulse along `axis`
        assert bool(line.sum() > 1) == expected, (plane, axis)


def test_yz_extra_convs_dilate_along_z():
    m = PlaneASPP(1, 1, "yz", rates=(2, 4), z_rates=(7, 9), norm="none")
    convs = [b[0] for b in m.branches]
    assert [c.kernel_size for c in convs] == [(1, 1, 1)] + [(3, 3, 1)] * 4
    assert [c.dilation for c in convs[1:]] == [(2, 2, 1), (4, 4, 1), (7, 4, 1), (9, 4, 1)]
    with pytest.raises(ValueError):
        PlaneASPP(1, 1, "xy", z_rates=(7,))


def test_scale_rates_rule():
    assert scale_rates((6, 12, 18), 64) == [6, 12, 18]
    assert scale_rates((6, 12, 18), 16) == [2, 3, 5]   # 1.5 → 2, 3, 4.5 → 5 (half up)
    assert scale_rates((6,), 4) == [1]                 # never below 1

def test_z_rates_are_a_fraction_of_z_and_rates_of_the_patch():
    assert scale_z_rates((24, 30), 280) == [24, 30]
    assert scale_z_rates((24, 30), 32) == [3, 3]       # 2.74, 3.43
    assert scale_z_rates((36, 42), 140) == [18, 21]
    assert scale_z_rates((18,), 5) == [1]              # never below 1
    with pytest.raises(ValueError):
        scale_z_rates((24,), 0)
    s = network_preset("small", "E")                   # the demo's Z = 32 by default
    assert s.rates == [2, 3, 5] and s.z_rates == [3, 3]
    assert network_preset("small", "E", nz=280).z_rates == [24, 30]
    assert network_preset("small", "E", patch=64).rates == [6, 12, 18]
    assert network_preset("paper", "G").z_rates == [36, 42]
    assert [network_preset("small", v, nz=64).z_rates for v in "DEFG"] == [[4, 4], [5, 7], [7, 8], [8, 10]]


def test_network_pools_in_z():
    """2×2×2 pooling: a depth-3 network's z reach grows with the levels, like its y reach."""
    net = build_network(tiny("A", ))
    assert [m.kernel_size for m in net.up] == [(2, 2, 2)]
    deep = NetworkSettings(variant="A", widths=[2, 2, 2], rates=[1], z_rates=[1])
    rz, ry, _ = receptive_field(deep)
    assert rz > 20 and rz == pytest.approx(ry - 0.75 + 1)   # the same pyramid in z as in y


@pytest.mark.parametrize("variant, widths", [("A", [2, 4]), ("E", [2, 4]), ("C", [2, 3]), ("E", [2, 2, 2])])
def test_receptive_field_bounds_the_gradient_of_one_output_voxel(variant, widths):
    """The analytic radius bounds the input region with a nonzero gradient, tight to 2**depth."""
    s = NetworkSettings(variant=variant, widths=widths, rates=[1, 2], z_rates=[2, 3], norm="none")
    torch.manual_seed(0)
    net = build_network(s).double()
    for p in net.parameters():      # positive weights: no ReLU is dead, every path carries gradient
        p.data = p.data.abs() + 0.05
    rf = receptive_field(s)
    n = [2 * int(r) + 16 + (-(2 * int(r)) % 8) for r in rf]
    x = torch.zeros(1, 1, *n, dtype=torch.double, requires_grad=True)
    cz, cy, cx = n[0] // 2, n[1], n[2]          # an output voxel near the centre of the 2x grid
    net(x)[0, 0, cz, cy, cx].backward()
    hit = x.grad[0, 0].nonzero()
    centre = (cz, (cy + 0.5) / 2 - 0.5, (cx + 0.5) / 2 - 0.5)   # in input voxels
    for a in range(3):
        reach = max(centre[a] - int(hit[:, a].min()), int(hit[:, a].max()) - centre[a])
        assert reach <= rf[a] <= reach + 2 ** (len(widths) - 1), (a, reach, rf)


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_ablation_family_has_similar_parameter_counts(preset):
    ref = count_parameters(network_preset(preset, "E"))
    counts = {v: count_parameters(network_preset(preset, v)) for v in VARIANTS}
    for v, n in counts.items():
        assert abs(n / ref - 1) <= 0.10, (v, n, ref)
    # without matching, the plain U-Net is far smaller: the matching is doing the work
    plain = count_parameters(network_preset(preset, "A", match_parameters=False))
    assert plain < 0.5 * ref


def test_variants_differ_in_structure():
    kinds = {}
    for v in VARIANTS:
        net = build_network(network_preset("small", v))
        first = net.encoder[0][0]
        kinds[v] = (type(first).__name__, tuple(sorted({m.dilation for m in first.modules()
                                                         if isinstance(m, torch.nn.Conv3d)})))
    assert kinds["A"][0] == "ConvNormAct"
    assert len({kinds[v] for v in "BCDEFG"}) == 6
    assert max(max(d) for d in kinds["B"][1]) == 1


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = build_network(tiny()).state_dict()
    torch.manual_seed(3)
    b = build_network(tiny()).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
