"""Shared checks for operators (in the spirit of tike's ``OperatorTests`` and CIL's ``dot_test``).

``dot_test``: for a linear operator A and a claimed adjoint A*, ``<A x, y> = <x, A* y>`` on random
x, y (complex inner product ``<a, b> = Σ conj(a)·b``), and autograd's gradient of
``Re <A x, y>`` with respect to x is ``A* y`` (so what autograd back-propagates through A is the
adjoint). ``gradient_test``: the autograd gradient of a real function against central finite
differences along random directions.
"""
import torch


def inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    """``Σ conj(a)·b`` over all elements, as a Python complex."""
    return complex(torch.vdot(a.reshape(-1).to(torch.complex128), b.reshape(-1).to(torch.complex128)))


def dot_test(fwd, adj, x: torch.Tensor, y: torch.Tensor, rtol: float = 1e-10) -> float:
    """Assert ``<A x, y> = <x, A* y>`` to ``rtol`` (relative to ``‖A x‖·‖y‖``); returns the mismatch."""
    ax, ay = fwd(x), adj(y)
    assert ax.shape == y.shape and ay.shape == x.shape, (ax.shape, y.shape, ay.shape, x.shape)
    lhs, rhs = inner(ax, y), inner(x, ay)
    scale = float(torch.linalg.vector_norm(ax)) * float(torch.linalg.vector_norm(y))
    mismatch = abs(lhs - rhs) / scale
    assert mismatch < rtol, f"<A x, y> = {lhs}, <x, A* y> = {rhs}: relative mismatch {mismatch:.2e}"
    leaf = x.detach().clone().requires_grad_(True)
    out = fwd(leaf)
    (torch.vdot(out.reshape(-1), y.reshape(-1).to(out.dtype)).real if out.is_complex() else (out * y).sum()).backward()
    scale = float(torch.linalg.vector_norm(ay))
    assert float(torch.linalg.vector_norm(leaf.grad - ay)) <= rtol * scale, "autograd's gradient is not A* y"
    return mismatch


def gradient_test(f, x: torch.Tensor, *, n_directions: int = 2, eps: float = 1e-6, rtol: float = 1e-6,
                  seed: int = 0) -> None:
    """Assert that autograd's ``∇f(x)·d`` equals ``(f(x + εd) − f(x − εd)) / 2ε`` for random d.

    ``f`` maps a real float64 tensor to a real scalar tensor.
    """
    g = torch.Generator().manual_seed(seed)
    leaf = x.detach().clone().requires_grad_(True)
    f(leaf).backward()
    for _ in range(n_directions):
        d = torch.randn(x.shape, dtype=x.dtype, generator=g)
        with torch.no_grad():
            fd = float(f(x + eps * d) - f(x - eps * d)) / (2 * eps)
        ad = float((leaf.grad * d).sum())
        assert abs(fd - ad) <= rtol * max(abs(fd), abs(ad)), f"finite differences {fd}, autograd {ad}"
